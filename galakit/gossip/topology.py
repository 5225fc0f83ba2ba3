"""Who talks to whom, and with what weight: communication graphs, time-varying schedules, mixing matrices,
their checks and their spectra.

Convention (used everywhere in galakit)
---------------------------------------
One gossip step maps the stacked parameters X_k (shape (n, d), row i = learner i) to

    X_{k+1} = W_k X_k,

so ``W[i, j]`` is the weight learner i gives to the value it receives from learner j. In a graph, the edge
``(j, i)`` means "j sends to i" and carries ``weight = W[i, j]``; the self-loop ``(i, i)`` carries the
self-weight ``W[i, i]``. J = (1/n) 1 1ᵀ is the exact-average matrix, and ρ = ‖W − J‖₂ says how much one step
shrinks the distance to the average (for doubly stochastic W).

A `Schedule` is a list of τ graphs used in turn (graph k mod τ at gossip step k); a static graph is a schedule with
period τ = 1. `Schedule.peers(rank, step)` is the single source of truth for who a learner sends to and receives
from: the simulator in `galakit.gossip.simulate` and the GALA learners both call it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np

ATOL = 1e-9  # tolerance for "sums to 1"
WEIGHT_RULES = ("uniform", "metropolis", "given")
STOCHASTIC_KINDS = ("row", "column", "doubly", "any")

Edge = tuple[int, int]  # (sender, receiver)


# --------------------------------------------------------------------------------------------------------------
# Peers and Schedule
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peers:
    """What learner ``rank`` does at gossip step ``step``.

    It sends its parameters to every rank in ``out_peers`` and then mixes what it received:

        θ_rank ← self_weight · θ_rank + Σ_m in_weights[m] · θ_{in_peers[m]}

    ``self_weight`` = W[rank, rank] and ``in_weights[m]`` = W[rank, in_peers[m]]. Peers are sorted by rank.
    """

    rank: int
    step: int
    self_weight: float
    out_peers: tuple[int, ...]
    in_peers: tuple[int, ...]
    in_weights: tuple[float, ...]


class Schedule:
    """A gossip topology: τ weighted directed graphs on learners 0..n−1, graph ``k mod τ`` used at step k.

    Args:
        graphs: the graphs W_0, …, W_{τ−1} as ``networkx.DiGraph`` (edge ``(j, i)`` = "j sends to i" with
            ``weight`` W[i, j]; self-loop ``(i, i)`` with weight W[i, i]). A static topology is a list of one.
        name: a label for plots and error messages.

    Construction checks that every graph has the nodes 0..n−1, non-negative weights on every edge, a self-loop
    on every node, rows or columns of every W summing to 1, and that the union of the graphs over one period is
    strongly connected (otherwise some learners never hear from others). Each failure is a ``ValueError``.
    Use `Schedule.check` for stricter requirements (e.g. doubly stochastic).
    """

    def __init__(self, graphs: Sequence[nx.DiGraph], name: str = "custom") -> None:
        if len(graphs) == 0:
            raise ValueError(f"schedule {name!r} needs at least one graph, got an empty list")
        self.name = name
        self.n = _check_nodes(graphs, name)
        self._graphs = tuple(nx.freeze(_without_zero_links(g)) for g in graphs)
        self._steps = tuple(_sparse_weights(g, self.n, f"schedule {name!r}, step {k}")
                            for k, g in enumerate(self._graphs))
        self.check(stochastic="any")

    @property
    def period(self) -> int:
        """τ: the number of distinct graphs; step k uses graph k mod τ."""
        return len(self._graphs)

    def __repr__(self) -> str:
        return f"Schedule({self.name!r}, n={self.n}, period={self.period})"

    def graph(self, step: int = 0) -> nx.DiGraph:
        """The (frozen, read-only) graph used at gossip step ``step``."""
        return self._graphs[self._index(step)]

    def edges(self, step: int = 0) -> np.ndarray:
        """Messages sent at step ``step``: int array (E, 2), rows (sender j, receiver i); self-loops excluded."""
        src, dst, _, _ = self._steps[self._index(step)]
        return np.stack([src, dst], axis=1)

    def edge_weights(self, step: int = 0) -> np.ndarray:
        """W[i, j] for each row (j, i) of `edges(step)`: shape (E,)."""
        return self._steps[self._index(step)][2].copy()

    def self_weights(self, step: int = 0) -> np.ndarray:
        """The diagonal W[i, i]: shape (n,)."""
        return self._steps[self._index(step)][3].copy()

    def mixing_matrix(self, step: int = 0) -> np.ndarray:
        """W_step as a dense array (n, n) with ``W[i, j]`` = weight i gives to j's message."""
        src, dst, weight, self_weight = self._steps[self._index(step)]
        W = np.diag(self_weight)
        W[dst, src] = weight
        return W

    def peers(self, rank: int, step: int = 0) -> Peers:
        """Out-peers, in-peers and mixing weights of learner ``rank`` at gossip step ``step`` (see `Peers`)."""
        if not 0 <= rank < self.n:
            raise ValueError(f"rank must be in 0..{self.n - 1} for schedule {self.name!r}, got {rank}")
        g = self.graph(step)
        in_peers = tuple(sorted(j for j in g.predecessors(rank) if j != rank))
        return Peers(
            rank=rank,
            step=step,
            self_weight=float(g[rank][rank]["weight"]),
            out_peers=tuple(sorted(i for i in g.successors(rank) if i != rank)),
            in_peers=in_peers,
            in_weights=tuple(float(g[j][rank]["weight"]) for j in in_peers),
        )

    def check(self, stochastic: str = "doubly", *, atol: float = ATOL) -> Schedule:
        """Raise ``ValueError`` unless every W_k is ``stochastic`` ("row", "column", "doubly" or "any" = row or
        column), every node keeps a positive self-weight, and the schedule is jointly strongly connected.

        Returns the schedule, so ``build_topology("ring", 8).check("doubly")`` reads as a one-line assertion.
        """
        _check_choice("stochastic", stochastic, STOCHASTIC_KINDS)
        for k, (src, dst, weight, self_weight) in enumerate(self._steps):
            where = f"schedule {self.name!r}, step {k}"
            if np.any(self_weight <= 0):
                i = int(np.argmin(self_weight))
                raise ValueError(f"{where}: node {i} has no self-loop (W[{i}, {i}] = {self_weight[i]:g}); "
                                 "every learner must keep a positive weight on its own parameters")
            row_sums = self_weight + np.bincount(dst, weight, minlength=self.n)
            col_sums = self_weight + np.bincount(src, weight, minlength=self.n)
            _check_sums(row_sums, col_sums, stochastic, atol, where)
        _check_strongly_connected(self)
        return self

    def period_product(self) -> np.ndarray:
        """W_{τ−1} ⋯ W_1 W_0, the mixing of one whole period: shape (n, n)."""
        product = np.eye(self.n)
        for k in range(self.period):
            product = self.mixing_matrix(k) @ product
        return product

    def rho(self) -> float:
        """ρ = ‖W_{τ−1}⋯W_0 − J‖₂, the contraction of one period (= ‖W − J‖₂ for a static graph).

        For doubly stochastic W_k, the distance to the average shrinks at least by ρ every period:
        ‖X_{k+τ} − 1x̄ᵀ‖_F ≤ ρ ‖X_k − 1x̄ᵀ‖_F. One step of a time-varying schedule may not contract at all
        (``rho(schedule.mixing_matrix(k))`` can be 1) while a whole period is exact (ρ = 0).
        """
        return rho(self.period_product())

    def _index(self, step: int) -> int:
        if step < 0:
            raise ValueError(f"step must be ≥ 0, got {step}")
        return step % self.period


def _check_nodes(graphs: Sequence[nx.DiGraph], name: str) -> int:
    """Every graph must be a DiGraph on exactly the nodes 0..n−1 (same n); return n."""
    n = None
    for k, g in enumerate(graphs):
        where = f"schedule {name!r}, step {k}"
        if not isinstance(g, nx.DiGraph):
            raise ValueError(f"{where}: expected a networkx.DiGraph, got {type(g).__name__} "
                             "(use from_networkx() for undirected graphs)")
        nodes = set(g.nodes)
        if not all(isinstance(v, (int, np.integer)) and v >= 0 for v in nodes):
            raise ValueError(f"{where}: nodes must be the integers 0..n−1, got {sorted(nodes, key=str)[:8]}")
        size = (max(nodes) + 1) if nodes else 0
        if size < 1:
            raise ValueError(f"{where}: the graph has no nodes; n must be ≥ 1")
        missing = sorted(set(range(size)) - nodes)
        if missing:
            raise ValueError(f"{where}: nodes must be 0..{size - 1}, missing {missing[:8]}")
        if n is not None and size != n:
            raise ValueError(f"{where}: has {size} nodes but step 0 has {n}; all steps need the same learners")
        n = size
    return n


def _without_zero_links(g: nx.DiGraph) -> nx.DiGraph:
    """A copy of g without links of weight 0: they carry nothing, so they are not peers."""
    g = nx.DiGraph(g)
    g.remove_edges_from([(j, i) for j, i, w in g.edges(data="weight") if i != j and w == 0])
    return g


def _sparse_weights(g: nx.DiGraph, n: int, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(src, dst, weight, self_weight): the off-diagonal entries W[dst, src] = weight and the diagonal."""
    src, dst, weight = [], [], []
    self_weight = np.zeros(n)
    for j, i, w in g.edges(data="weight"):
        if w is None or not np.isfinite(w) or w < 0:
            raise ValueError(f"{where}: edge ({j}, {i}) needs a finite, non-negative 'weight', got {w}")
        if i == j:
            self_weight[i] = w
        else:
            src.append(j), dst.append(i), weight.append(float(w))
    return (np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64), np.asarray(weight, dtype=float),
            self_weight)


def _check_strongly_connected(schedule: Schedule) -> None:
    union = nx.DiGraph()
    union.add_nodes_from(range(schedule.n))
    for k in range(schedule.period):
        union.add_edges_from(map(tuple, schedule.edges(k)))
    if nx.is_strongly_connected(union):
        return
    parts = sorted(nx.strongly_connected_components(union), key=len)
    over = f"jointly over its period of {schedule.period} steps" if schedule.period > 1 else "(static graph)"
    raise ValueError(f"schedule {schedule.name!r} is not strongly connected {over}: {len(parts)} strongly "
                     f"connected components, e.g. {sorted(parts[0])[:8]}; some learners never hear from others, "
                     "so they cannot reach consensus")


# --------------------------------------------------------------------------------------------------------------
# Mixing weights and checks
# --------------------------------------------------------------------------------------------------------------


def assign_weights(graph: nx.DiGraph, rule: str = "uniform") -> nx.DiGraph:
    """Return a copy of ``graph`` with a self-loop on every node and ``weight`` set by ``rule``.

    * ``"uniform"``: every sender j splits its value equally between itself and its out-peers,
      W[i, j] = 1 / (d_out(j) + 1). Columns sum to 1 (column-stochastic); on a regular graph (every node has as
      many in- as out-peers) rows do too, so W is doubly stochastic. This is GALA's 1/(peers + 1) and SGP's
      ``UniformMixing``.
    * ``"metropolis"`` (Metropolis–Hastings, undirected graphs only): W[i, j] = 1 / (1 + max(d_i, d_j)) and
      W[i, i] = 1 − Σ_{j≠i} W[i, j]. Symmetric and doubly stochastic on any undirected graph.
    * ``"given"``: keep the graph's own ``weight`` attributes (self-loops included).
    """
    _check_choice("weights", rule, WEIGHT_RULES)
    if rule == "given":
        return nx.DiGraph(graph)
    out = nx.DiGraph()
    out.add_nodes_from(sorted(graph.nodes))
    links = [(j, i) for j, i in graph.edges if i != j]
    if rule == "uniform":
        share = {j: 1.0 / (1 + sum(1 for i in graph.successors(j) if i != j)) for j in out.nodes}
        out.add_weighted_edges_from((j, i, share[j]) for j, i in links)
        out.add_weighted_edges_from((j, j, share[j]) for j in out.nodes)
        return out
    if any(not graph.has_edge(i, j) for j, i in links):
        j, i = next((j, i) for j, i in links if not graph.has_edge(i, j))
        raise ValueError(f"weights='metropolis' needs an undirected (symmetric) graph, but edge ({j}, {i}) has no "
                         f"reverse ({i}, {j}); use weights='uniform' for directed graphs")
    degree = {v: sum(1 for u in graph.successors(v) if u != v) for v in out.nodes}
    out.add_weighted_edges_from((j, i, 1.0 / (1 + max(degree[i], degree[j]))) for j, i in links)
    for i in out.nodes:
        out.add_edge(i, i, weight=1.0 - sum(out[j][i]["weight"] for j in out.predecessors(i)))
    return out


def mixing_matrix(graph: nx.DiGraph) -> np.ndarray:
    """The dense W (n, n) of a weighted graph on nodes 0..n−1: ``W[i, j]`` = weight of edge (j, i)."""
    n = _check_nodes([graph], "graph")
    src, dst, weight, self_weight = _sparse_weights(graph, n, "graph")
    W = np.diag(self_weight)
    W[dst, src] = weight
    return W


def stochasticity(W: np.ndarray, atol: float = ATOL) -> str:
    """Which sums of W are 1: ``"doubly"``, ``"row"`` (W1 = 1), ``"column"`` (1ᵀW = 1ᵀ) or ``"none"``.

    Row-stochastic: each learner takes a convex combination (consensus, not necessarily on the average).
    Column-stochastic: the total Σ_i x_i is preserved (what push-sum needs). Doubly: the average is preserved.
    """
    W = np.asarray(W, dtype=float)
    rows = np.allclose(W.sum(axis=1), 1.0, rtol=0, atol=atol)
    cols = np.allclose(W.sum(axis=0), 1.0, rtol=0, atol=atol)
    return {(True, True): "doubly", (True, False): "row", (False, True): "column"}.get((rows, cols), "none")


def check_stochastic(W: np.ndarray, kind: str = "doubly", *, atol: float = ATOL, where: str = "W") -> None:
    """Raise ``ValueError`` unless W is non-negative and ``kind``-stochastic ("row", "column", "doubly", "any")."""
    _check_choice("stochastic", kind, STOCHASTIC_KINDS)
    W = np.asarray(W, dtype=float)
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"{where}: a mixing matrix must be square (n, n), got shape {W.shape}")
    if np.any(W < 0):
        i, j = np.argwhere(W < 0)[0]
        raise ValueError(f"{where}: weights must be non-negative, got W[{i}, {j}] = {W[i, j]:g}")
    _check_sums(W.sum(axis=1), W.sum(axis=0), kind, atol, where)


def _check_sums(row_sums: np.ndarray, col_sums: np.ndarray, kind: str, atol: float, where: str) -> None:
    row_err, col_err = np.abs(row_sums - 1), np.abs(col_sums - 1)
    row_ok, col_ok = bool(np.all(row_err <= atol)), bool(np.all(col_err <= atol))
    i, j = int(np.argmax(row_err)), int(np.argmax(col_err))
    row_msg = f"row {i} (the weights learner {i} gives) sums to {row_sums[i]:.6g}"
    col_msg = f"column {j} (the shares sender {j} hands out) sums to {col_sums[j]:.6g}"
    if kind in ("row", "doubly") and not row_ok:
        raise ValueError(f"{where} is not {kind}-stochastic: {row_msg}, expected 1 (±{atol:g})")
    if kind in ("column", "doubly") and not col_ok:
        raise ValueError(f"{where} is not {kind}-stochastic: {col_msg}, expected 1 (±{atol:g})")
    if kind == "any" and not (row_ok or col_ok):
        raise ValueError(f"{where} is neither row- nor column-stochastic: {row_msg} and {col_msg}, expected 1")


# --------------------------------------------------------------------------------------------------------------
# Spectral quantities
# --------------------------------------------------------------------------------------------------------------


def averaging_matrix(n: int) -> np.ndarray:
    """J = (1/n) 1 1ᵀ: J x replaces every entry of x by the average x̄."""
    return np.full((n, n), 1.0 / n)


def rho(W: np.ndarray) -> float:
    """ρ = ‖W − J‖₂, the largest singular value of W − J.

    For doubly stochastic W, X_{k+1} − J X_{k+1} = (W − J)(X_k − J X_k), so the distance to the average shrinks
    by at least ρ per step. For symmetric W, ρ = max(|λ₂|, |λ_n|); for directed W use this singular value.
    """
    W = np.asarray(W, dtype=float)
    return float(np.linalg.norm(W - averaging_matrix(W.shape[0]), ord=2))


def spectral_gap(W: np.ndarray) -> float:
    """1 − ρ: close to 0 means slow mixing (a ring: Θ(1/n²)), 1 means exact averaging in one step."""
    return 1.0 - rho(W)


def eigenvalues(W: np.ndarray) -> np.ndarray:
    """Eigenvalues of W sorted by decreasing modulus (complex for directed graphs); λ₁ = 1 if W is stochastic."""
    lam = np.linalg.eigvals(np.asarray(W, dtype=float))
    return lam[np.argsort(-np.abs(lam), kind="stable")]


# --------------------------------------------------------------------------------------------------------------
# Builders: each returns a Schedule. Edges are listed as (sender, receiver).
# --------------------------------------------------------------------------------------------------------------


def directed_ring(n: int, peers: int = 1, weights: str = "uniform") -> Schedule:
    """GALA as shipped: learner r sends to r+1, …, r+p (mod n) and receives from r−1, …, r−p.

    With uniform weights every entry is 1/(p+1): for p = 1, W = (I + P)/2 with P the cyclic shift, and
    ρ = cos(π/n).
    """
    _check_n(n)
    _check_peers(peers, n)
    edges = [(r, (r + s) % n) for r in range(n) for s in range(1, peers + 1)]
    return _schedule("ring", n, [edges], weights)


def undirected_ring(n: int, peers: int = 1, weights: str = "uniform") -> Schedule:
    """Learner r exchanges with r±1, …, r±p. With p = 1 and uniform weights, W = (I + P + Pᵀ)/3 and
    ρ = ⅓ + ⅔ cos(2π/n) for n ≥ 3."""
    _check_n(n)
    _check_peers(peers, n)
    edges = [(r, (r + sign * s) % n) for r in range(n) for s in range(1, peers + 1) for sign in (1, -1)]
    return _schedule("undirected_ring", n, [edges], weights)


def complete(n: int, weights: str = "uniform") -> Schedule:
    """Everyone talks to everyone: with uniform weights W = J, exact averaging in one step (ρ = 0)."""
    _check_n(n)
    return _schedule("complete", n, [[(j, i) for j in range(n) for i in range(n)]], weights)


def exponential(n: int, weights: str = "uniform") -> Schedule:
    """Static exponential graph: i sends to i + 2⁰, i + 2¹, …, i + 2^{τ−1} (mod n), τ = ⌈log₂ n⌉.

    Uniform weights 1/(τ+1); ρ = 1 − 2/(1+τ) for even n (Ying et al., NeurIPS 2021): spectral gap Θ(1/log n)
    for Θ(log n) messages per step.
    """
    _check_n(n)
    edges = [(i, (i + 2**j) % n) for i in range(n) for j in range(_log2_ceil(n))]
    return _schedule("exponential", n, [edges], weights)


def one_peer_exponential(n: int, weights: str = "uniform") -> Schedule:
    """SGP's one-peer time-varying exponential graph: at step k, r sends to r + 2^{k mod τ}, τ = ⌈log₂ n⌉.

    Each step W_k = (I + P^{2^k})/2 sends one message per learner. When n is a power of two the τ steps of a
    period multiply to J exactly (exact averaging in log₂ n steps); for other n they do not.
    """
    _check_n(n)
    steps = [[(r, (r + 2**k) % n) for r in range(n)] for k in range(max(1, _log2_ceil(n)))]
    return _schedule("one_peer_exponential", n, steps, weights)


def bipartite_exponential(n: int, weights: str = "uniform") -> Schedule:
    """Pairwise exchanges between odd ("active") and even ("passive") learners, at exponential distances.

    At step k every odd r exchanges with the even learner r + s_k, s_k cycling through ±1, ±(1+2), ±(1+4), …
    (the offsets of SGP's ``DynamicBipartiteExponentialGraph``, de-duplicated mod n). Each step is a perfect
    matching, so W_k = (I + M_k)/2 is symmetric and doubly stochastic with one message per learner. n must be even.
    """
    _check_n(n)
    if n % 2:
        raise ValueError(f"bipartite_exponential needs an even n (odd learners pair with even ones), got n = {n}")
    offsets: list[int] = []
    for i in range(_log2_floor(n - 1) + 1):
        for s in (1 + (2**i if i else 0), -(1 + (2**i if i else 0))):
            if s % n not in offsets:
                offsets.append(s % n)
    steps = [[e for r in range(1, n, 2) for e in ((r, (r + s) % n), ((r + s) % n, r))] for s in offsets]
    return _schedule("bipartite_exponential", n, steps, weights)


def torus(n: int, shape: tuple[int, int] | None = None, weights: str = "uniform") -> Schedule:
    """2-D torus (wrap-around grid) of ``rows × cols`` learners, each exchanging with its 4 grid neighbours.

    Learner r sits at (r // cols, r % cols). Without ``shape`` the most square factorisation of n is used
    (a prime n gives a 1 × n grid, i.e. an undirected ring).
    """
    _check_n(n)
    if shape is None:
        rows = max(a for a in range(1, math.isqrt(n) + 1) if n % a == 0)
        shape = (rows, n // rows)
    rows, cols = shape
    if rows < 1 or cols < 1 or rows * cols != n:
        raise ValueError(f"torus shape must be (rows, cols) with rows × cols = n = {n}, got {shape}")
    edges = [(r * cols + c, ((r + dr) % rows) * cols + (c + dc) % cols)
             for r in range(rows) for c in range(cols) for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))]
    return _schedule("torus", n, [edges], weights)


def star(n: int, weights: str = "uniform") -> Schedule:
    """Learner 0 exchanges with everyone else; nobody else talks. With uniform weights W is column- but not
    row-stochastic (the hub gives each leaf 1/n of its value, a leaf gives the hub ½): a push-sum example."""
    _check_n(n)
    return _schedule("star", n, [[e for i in range(1, n) for e in ((0, i), (i, 0))]], weights)


def random_regular(n: int, degree: int = 3, seed: int | None = None, weights: str = "uniform") -> Schedule:
    """A random undirected ``degree``-regular graph (``networkx.random_regular_graph``); uniform weights are
    1/(degree+1), doubly stochastic. A sample can be disconnected (then ``ValueError``: try another seed)."""
    _check_n(n)
    if not 1 <= degree < n or (n * degree) % 2:
        raise ValueError(f"random_regular needs 1 ≤ degree < n and n × degree even, got n = {n}, degree = {degree}")
    g = nx.random_regular_graph(degree, n, seed=seed)
    return _schedule("random_regular", n, [_both_ways(g.edges)], weights)


def erdos_renyi(n: int, edge_prob: float | None = None, seed: int | None = None, directed: bool = False,
                weights: str = "uniform") -> Schedule:
    """Erdős–Rényi G(n, p): each (ordered, if ``directed``) pair is linked with probability ``edge_prob``.

    Default p = min(1, 2 ln n / n), twice the connectivity threshold. A disconnected sample raises ValueError.
    """
    _check_n(n)
    p = min(1.0, 2 * math.log(n) / n) if edge_prob is None else edge_prob
    if not 0 < p <= 1:
        raise ValueError(f"edge_prob must be in (0, 1], got {edge_prob}")
    g = nx.gnp_random_graph(n, p, seed=seed, directed=directed)
    return _schedule("erdos_renyi", n, [list(g.edges) if directed else _both_ways(g.edges)], weights)


def from_networkx(graph: nx.Graph, weights: str = "uniform", name: str = "custom") -> Schedule:
    """A static schedule from any networkx graph on nodes 0..n−1 (undirected edges are used both ways).

    With ``weights="given"`` the ``weight`` attributes are W's entries, self-loops included; otherwise they are
    recomputed by `assign_weights`.
    """
    if not isinstance(graph, nx.Graph):
        raise ValueError(f"from_networkx expects a networkx graph, got {type(graph).__name__}")
    digraph = nx.DiGraph(graph) if graph.is_directed() else graph.to_directed()
    _check_nodes([digraph], name)
    return Schedule([assign_weights(digraph, weights)], name=name)


def from_adjacency(matrix: np.ndarray, weights: str = "given", name: str = "custom") -> Schedule:
    """A static schedule from a square matrix in galakit's convention: ``matrix[i, j] != 0`` means j sends to i.

    With ``weights="given"`` (default) the matrix *is* W and must be row- or column-stochastic with a positive
    diagonal; a 0/1 adjacency matrix needs ``weights="uniform"`` or ``"metropolis"``.
    """
    A = np.asarray(matrix, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
        raise ValueError(f"from_adjacency expects a square matrix (n, n) with n ≥ 1, got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise ValueError("from_adjacency: the matrix has non-finite entries")
    g = nx.DiGraph()
    g.add_nodes_from(range(A.shape[0]))
    g.add_weighted_edges_from((int(j), int(i), A[i, j]) for i, j in zip(*np.nonzero(A), strict=True))
    return Schedule([assign_weights(g, weights)], name=name)


TOPOLOGIES: dict[str, Callable[..., Schedule]] = {
    "ring": directed_ring,
    "undirected_ring": undirected_ring,
    "complete": complete,
    "exponential": exponential,
    "one_peer_exponential": one_peer_exponential,
    "bipartite_exponential": bipartite_exponential,
    "torus": torus,
    "star": star,
    "random_regular": random_regular,
    "erdos_renyi": erdos_renyi,
}


def build_topology(name: str, n: int, *, peers: int = 1, seed: int | None = None, weights: str = "uniform",
                   **kw) -> Schedule:
    """Build a named topology for n learners; ``build_topology("ring", n)`` is GALA's default (weights ½).

    Args:
        name: one of `TOPOLOGIES` ("ring", "undirected_ring", "complete", "exponential", "one_peer_exponential",
            "bipartite_exponential", "torus", "star", "random_regular", "erdos_renyi").
        n: number of learners (≥ 1).
        peers: peers per learner, for "ring" and "undirected_ring" only.
        seed: for the random topologies ("random_regular", "erdos_renyi"); ignored by the others.
        weights: "uniform" or "metropolis" (see `assign_weights`).
        **kw: builder-specific options (``shape`` for "torus", ``degree`` for "random_regular", ``edge_prob`` and
            ``directed`` for "erdos_renyi").
    """
    _check_choice("topology", name, tuple(TOPOLOGIES))
    builder = TOPOLOGIES[name]
    accepted = set(inspect.signature(builder).parameters) - {"n"}
    if peers != 1 and "peers" not in accepted:
        takes_peers = [k for k, b in TOPOLOGIES.items() if "peers" in inspect.signature(b).parameters]
        raise ValueError(f"peers={peers} is not an option of topology {name!r}; only {takes_peers} take peers")
    unknown = sorted(set(kw) - accepted)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for topology {name!r}; accepted: {sorted(accepted)}")
    options = {"peers": peers, "seed": seed, "weights": weights, **kw}
    return builder(n, **{k: v for k, v in options.items() if k in accepted})


# --------------------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------------------


def _schedule(name: str, n: int, steps: Iterable[Iterable[Edge]], weights: str) -> Schedule:
    graphs = []
    for edges in steps:
        g = nx.DiGraph()
        g.add_nodes_from(range(n))
        g.add_edges_from((j, i) for j, i in edges if i != j)
        graphs.append(assign_weights(g, weights))
    return Schedule(graphs, name=name)


def _both_ways(edges: Iterable[Edge]) -> list[Edge]:
    return [e for j, i in edges for e in ((j, i), (i, j))]


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n (number of learners) must be an integer ≥ 1, got {n!r}")


def _check_peers(peers: int, n: int) -> None:
    if isinstance(peers, bool) or not isinstance(peers, (int, np.integer)) or not 1 <= peers < n:
        raise ValueError(f"peers must be an integer in 1..n−1 = 1..{n - 1} for n = {n}, got {peers!r} "
                         "(a learner cannot be its own peer)")


def _check_choice(field: str, value: str, accepted: Sequence[str]) -> None:
    if value not in accepted:
        raise ValueError(f"unknown {field} {value!r}; accepted: {', '.join(map(repr, accepted))}")


def _log2_ceil(n: int) -> int:
    """τ = ⌈log₂ n⌉ (0 for n = 1)."""
    return (n - 1).bit_length()


def _log2_floor(n: int) -> int:
    return n.bit_length() - 1
