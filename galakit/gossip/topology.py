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

A schedule can also come from a file (`read_graph`: an edge list or a JSON matrix) and goes to plain data and back
(`Schedule.to_dict`, `Schedule.from_dict`): that is how a run's config keeps a custom graph in its checkpoints.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from galakit.validation import Described, InvalidValue, check_choice, fail

ATOL = 1e-9  # tolerance for "sums to 1"
WEIGHT_RULES = ("uniform", "metropolis", "given")
STOCHASTIC_KINDS = ("row", "column", "doubly", "any")

Edge = tuple[int, int]  # (sender, receiver)
SparseW = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # (src, dst, weight, self_weight), see _sparse_weights


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
    strongly connected (otherwise some learners never hear from others). Each failure is a ``ValueError``
    ``schedule: got … (why); accepted: …``. Use `Schedule.check` for stricter requirements (e.g. doubly stochastic).

    Two schedules are equal when they have the same name and the same weighted edges at every step, so a config
    that holds one stays comparable (and hashable) once pickled to a learner or rebuilt from `to_dict`.
    """

    def __init__(self, graphs: Sequence[nx.DiGraph], name: str = "custom") -> None:
        if len(graphs) == 0:
            fail("schedule", list(graphs), "a list of at least one networkx.DiGraph", f"{name!r} has no graph")
        self.name = name
        self.n = _check_nodes(graphs, name)
        self._graphs = tuple(nx.freeze(_without_zero_links(g)) for g in graphs)
        self._steps = tuple(_sparse_weights(g, self.n, "schedule", f"step {k} of {name!r}: " if len(graphs) > 1 else "")
                            for k, g in enumerate(self._graphs))
        # (name, n, per step the sorted (j, i, W[i, j]), self-loops included): what equality and to_dict use
        self._key = (name, self.n, tuple(tuple(sorted(g.edges(data="weight"))) for g in self._graphs))
        self.check(stochastic="any")

    def __eq__(self, other: object) -> bool:
        return self._key == other._key if isinstance(other, Schedule) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._key)

    def to_dict(self) -> dict[str, Any]:
        """The schedule as plain data: ``{"name": str, "steps": [[[j, i, W_k[i, j]], …], …]}``, one list of
        weighted edges (sender j, receiver i, weight) per step, self-loops included. `from_dict` rebuilds it."""
        return {"name": self.name,
                "steps": [[[int(j), int(i), float(w)] for j, i, w in edges] for edges in self._key[2]]}

    @classmethod
    def from_dict(cls, description: dict[str, Any]) -> Schedule:
        """The schedule that `to_dict` wrote: ``Schedule.from_dict(s.to_dict()) == s``."""
        accepted = ("a dict {'name': str, 'steps': [[[j, i, weight], ...], ...]}, one list of weighted edges "
                    "(sender j, receiver i) per step, as Schedule.to_dict() writes it")
        steps = description.get("steps") if isinstance(description, dict) else None
        if not (isinstance(steps, (list, tuple)) and isinstance(description.get("name", ""), str)
                and all(isinstance(step, (list, tuple)) for step in steps)):
            fail("schedule", description, accepted)
        graphs = []
        for k, step in enumerate(steps):
            if not all(isinstance(e, (list, tuple)) and len(e) == 3 for e in step):
                fail("schedule", Described(f"a description whose step {k} is {step!r}"), accepted)
            g = nx.DiGraph()
            g.add_weighted_edges_from((j, i, w) for j, i, w in step)
            graphs.append(g)
        return cls(graphs, name=description.get("name", "custom"))

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
            fail("rank", rank, f"an int in [0, {self.n - 1}]", f"schedule {self.name!r} has {self.n} learners")
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
        check_choice("stochastic", stochastic, STOCHASTIC_KINDS)
        for k, (src, dst, weight, self_weight) in enumerate(self._steps):
            where = f"step {k}: " if self.period > 1 else ""
            if np.any(self_weight <= 0):
                i = int(np.argmin(self_weight))
                fail("schedule", shown(self), "a positive self-loop weight W[i, i] on every node (every learner "
                     "keeps a share of its own parameters)", f"{where}node {i} has no self-loop, W[{i}, {i}] = "
                     f"{self_weight[i]:g}")
            row_sums = self_weight + np.bincount(dst, weight, minlength=self.n)
            col_sums = self_weight + np.bincount(src, weight, minlength=self.n)
            _check_sums(row_sums, col_sums, stochastic, atol, "schedule", shown(self), where)
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
            fail("step", step, "an int >= 0 (the gossip step k)")
        return step % self.period


def _check_nodes(graphs: Sequence[nx.DiGraph], name: str, field: str = "schedule") -> int:
    """Every graph must be a DiGraph on exactly the nodes 0..n−1 (same n); return n."""
    n = None
    for k, g in enumerate(graphs):
        where = f"step {k} of {name!r}: " if len(graphs) > 1 else ""
        if not isinstance(g, nx.DiGraph):
            fail(field, shown(g), "networkx.DiGraph graphs (from_networkx() takes undirected ones)",
                 f"{where}not directed" if isinstance(g, nx.Graph) else where.rstrip(": "))
        nodes = set(g.nodes)
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in nodes):
            fail(field, shown(g), "a graph on the nodes 0..n−1", f"{where}nodes {sorted(nodes, key=str)[:8]}")
        size = (max(nodes) + 1) if nodes else 0
        if size < 1:
            fail(field, shown(g), "a graph on the nodes 0..n−1, n >= 1", f"{where}no nodes")
        missing = sorted(set(range(size)) - nodes)
        if missing:
            fail(field, shown(g), f"a graph on the nodes 0..{size - 1}", f"{where}missing nodes {missing[:8]}")
        if n is not None and size != n:
            fail(field, shown(g), "graphs on the same learners at every step",
                 f"{where}it has {size} nodes but step 0 has {n}")
        n = size
    return n


def shown(value: Any) -> Any:
    """How an error message shows a graph or a schedule: what it is and its size (their reprs say neither)."""
    if isinstance(value, nx.Graph):
        nodes, edges = value.number_of_nodes(), value.number_of_edges()
        return Described(f"a {type(value).__name__} with {nodes} node{'s' * (nodes != 1)} and {edges} "
                         f"edge{'s' * (edges != 1)}")
    if isinstance(value, Schedule):
        steps = f", {value.period} steps" if value.period > 1 else ""
        return Described(f"a schedule {value.name!r} with {value.n} nodes{steps}")
    return value


def _without_zero_links(g: nx.DiGraph) -> nx.DiGraph:
    """A copy of g without links of weight 0: they carry nothing, so they are not peers."""
    g = nx.DiGraph(g)
    g.remove_edges_from([(j, i) for j, i, w in g.edges(data="weight") if i != j and w == 0])
    return g


def _sparse_weights(g: nx.DiGraph, n: int, field: str, where: str = "") -> SparseW:
    """(src, dst, weight, self_weight): the off-diagonal entries W[dst, src] = weight and the diagonal."""
    src, dst, weight = [], [], []
    self_weight = np.zeros(n)
    for j, i, w in g.edges(data="weight"):
        if w is None or not np.isfinite(w) or w < 0:
            fail(field, shown(g), "a finite, non-negative 'weight' on every edge, self-loops included",
                 f"{where}edge ({j}, {i}) has weight {w}")
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
    example = sorted(int(v) for v in parts[0])[:8]
    fail("schedule", shown(schedule), "a strongly connected graph (over one period): every learner hears, through "
         "others, from every other", f"not strongly connected {over}: {len(parts)} strongly connected components, "
         f"e.g. {example}; some learners never hear from others, so they cannot reach consensus")


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
    check_choice("weights", rule, WEIGHT_RULES)
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
        fail("weights", rule, "'uniform' for a directed graph", f"'metropolis' needs an undirected (symmetric) "
             f"graph, but edge ({j}, {i}) has no reverse ({i}, {j})")
    degree = {v: sum(1 for u in graph.successors(v) if u != v) for v in out.nodes}
    out.add_weighted_edges_from((j, i, 1.0 / (1 + max(degree[i], degree[j]))) for j, i in links)
    for i in out.nodes:
        out.add_edge(i, i, weight=1.0 - sum(out[j][i]["weight"] for j in out.predecessors(i)))
    return out


def mixing_matrix(graph: nx.DiGraph) -> np.ndarray:
    """The dense W (n, n) of a weighted graph on nodes 0..n−1: ``W[i, j]`` = weight of edge (j, i)."""
    n = _check_nodes([graph], "graph", field="graph")
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
    """Raise ``ValueError`` unless W is non-negative and ``kind``-stochastic ("row", "column", "doubly", "any").

    ``where`` names W in the message, as its field: ``W: got an array of shape (3, 3) (…); accepted: …``.
    """
    check_choice("stochastic", kind, STOCHASTIC_KINDS)
    W = np.asarray(W, dtype=float)
    value = Described(f"an array of shape {W.shape}")
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        fail(where, value, "a square mixing matrix (n, n)")
    if np.any(W < 0):
        i, j = np.argwhere(W < 0)[0]
        fail(where, value, "non-negative weights", f"W[{i}, {j}] = {W[i, j]:g}")
    _check_sums(W.sum(axis=1), W.sum(axis=0), kind, atol, where, value)


def _check_sums(row_sums: np.ndarray, col_sums: np.ndarray, kind: str, atol: float, field: str, value: Any,
                where: str = "") -> None:
    """Fail (``field: got value (why); …``) unless the rows, the columns or both (``kind``) of W sum to 1."""
    row_err, col_err = np.abs(row_sums - 1), np.abs(col_sums - 1)
    row_ok, col_ok = bool(np.all(row_err <= atol)), bool(np.all(col_err <= atol))
    i, j = int(np.argmax(row_err)), int(np.argmax(col_err))
    row_msg = f"row {i} (the weights learner {i} gives) sums to {row_sums[i]:.6g}"
    col_msg = f"column {j} (the shares sender {j} hands out) sums to {col_sums[j]:.6g}"
    sums = {"row": "every row sums", "column": "every column sums", "doubly": "every row and every column sums",
            "any": "every row, or every column, sums"}[kind]
    accepted = f"a {'row- or column' if kind == 'any' else kind}-stochastic W: {sums} to 1 (±{atol:g})"
    if kind in ("row", "doubly") and not row_ok:
        fail(field, value, accepted, f"{where}not {kind}-stochastic: {row_msg}")
    if kind in ("column", "doubly") and not col_ok:
        fail(field, value, accepted, f"{where}not {kind}-stochastic: {col_msg}")
    if kind == "any" and not (row_ok or col_ok):
        fail(field, value, accepted, f"{where}neither row- nor column-stochastic: {row_msg} and {col_msg}")


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
        fail("n", n, "an even int >= 2", "bipartite_exponential pairs odd learners with even ones")
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
        fail("shape", shape, f"(rows, cols) with rows × cols = n = {n}")
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
        odd = f"n × degree = {n * degree} is odd" if 1 <= degree < n else f"n = {n}"
        fail("degree", degree, f"an int in [1, n − 1] = [1, {n - 1}] with n × degree even", odd)
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
        fail("edge_prob", edge_prob, "a number in (0, 1], or None for 2 ln n / n",
             f"2 ln n / n = {p:g} for n = {n}" if edge_prob is None else "")
    g = nx.gnp_random_graph(n, p, seed=seed, directed=directed)
    return _schedule("erdos_renyi", n, [list(g.edges) if directed else _both_ways(g.edges)], weights)


def from_networkx(graph: nx.Graph, weights: str = "uniform", name: str = "custom") -> Schedule:
    """A static schedule from any networkx graph on nodes 0..n−1 (undirected edges are used both ways).

    Weights: ``"given"`` keeps the ``weight`` attributes as W's entries, self-loops included; ``"auto"`` keeps
    them when every edge has one and assigns uniform ones when none has (a mix is refused); ``"uniform"`` and
    ``"metropolis"`` recompute them (`assign_weights`).
    """
    if not isinstance(graph, nx.Graph):
        fail("graph", graph, "a networkx graph on the nodes 0..n−1")
    check_choice("weights", weights, ("auto", *WEIGHT_RULES))
    digraph = nx.DiGraph(graph) if graph.is_directed() else graph.to_directed()
    _check_nodes([digraph], name, field="graph")
    if weights == "auto":
        weights = _given_or_uniform(graph)
    return Schedule([assign_weights(digraph, weights)], name=name)


def _given_or_uniform(graph: nx.Graph) -> str:
    """The rule ``weights="auto"`` stands for: "given" when every edge has a ``weight``, "uniform" when none has."""
    weighted, edges = sum(w is not None for _, _, w in graph.edges(data="weight")), graph.number_of_edges()
    if weighted and weighted < edges:
        fail("graph", shown(graph), "a 'weight' on every edge (W's entries, self-loops included) or on none "
             "(uniform weights 1/(out-degree + 1))", f"{weighted} of {edges} edges weighted")
    return "given" if weighted else "uniform"


def from_adjacency(matrix: np.ndarray, weights: str = "given", name: str = "custom") -> Schedule:
    """A static schedule from a square matrix in galakit's convention: ``matrix[i, j] != 0`` means j sends to i.

    With ``weights="given"`` (default) the matrix *is* W and must be row- or column-stochastic with a positive
    diagonal; a 0/1 adjacency matrix needs ``weights="uniform"`` or ``"metropolis"``. ``"auto"`` reads a matrix
    of 0s and 1s as an adjacency matrix (uniform weights) and any other as W.
    """
    A = np.asarray(matrix, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
        fail("matrix", Described(f"an array of shape {A.shape}"), "a square matrix (n, n), n >= 1")
    if not np.all(np.isfinite(A)):
        i, j = np.argwhere(~np.isfinite(A))[0]
        fail("matrix", Described(f"an array of shape {A.shape}"), "finite entries", f"matrix[{i}, {j}] = {A[i, j]}")
    check_choice("weights", weights, ("auto", *WEIGHT_RULES))
    if weights == "auto":
        weights = "uniform" if np.isin(A, (0.0, 1.0)).all() else "given"
    g = nx.DiGraph()
    g.add_nodes_from(range(A.shape[0]))
    g.add_weighted_edges_from((int(j), int(i), A[i, j]) for i, j in zip(*np.nonzero(A), strict=True))
    return Schedule([assign_weights(g, weights)], name=name)


def read_graph(path: str | Path) -> Schedule:
    """A static schedule read from a graph file, named after it (``ring8.txt`` → ``"ring8"``).

    * An edge list (any file but ``.json``): one edge a line, ``j i`` (j sends to i) or ``j i weight``; ``#``
      starts a comment. With a weight on every line (self-loops ``i i w`` included) the weights are W's entries;
      with none, uniform weights are assigned (W[i, j] = 1/(d_out(j) + 1), self-loops added).
    * JSON (``.json``): an n × n matrix in galakit's convention, ``matrix[i][j] != 0`` meaning j sends to i, as a
      list of rows or as ``{"adjacency": [[...], ...]}``. A matrix of 0s and 1s is an adjacency matrix (uniform
      weights); any other is W itself.

    The nodes must be 0..n−1, and the graph must pass `Schedule`'s checks. Every error is a ``ValueError``
    ``path: got '<file>' (why); accepted: …``.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        fail("path", str(path), "a readable graph file: an edge list, or a .json matrix",
             getattr(err, "strerror", None) or type(err).__name__)
    try:
        if path.suffix.lower() == ".json":
            return from_adjacency(_json_matrix(text, path), weights="auto", name=path.stem)
        return from_networkx(_edge_list(text, path), weights="auto", name=path.stem)
    except InvalidValue as err:
        if err.field == "path":
            raise
        fail("path", str(path), err.accepted, err.why or repr(err.value))


EDGE_LIST = "an edge list: one edge a line, 'j i' or 'j i weight' (j sends to i; '#' starts a comment)"
JSON_MATRIX = "JSON: an n × n matrix as a list of rows, or {\"adjacency\": [[...], ...]}"


def _edge_list(text: str, path: Path) -> nx.DiGraph:
    """The graph of an edge list (see `read_graph`); an edge listed twice is refused (which weight would count?)."""
    g, first = nx.DiGraph(), {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        try:
            j, i = int(fields[0]), int(fields[1])
            weight = [float(fields[2])] if len(fields) == 3 else []
        except (ValueError, IndexError):
            weight = None
        if weight is None or len(fields) > 3:
            fail("path", str(path), EDGE_LIST, f"line {number} reads {line.strip()!r}")
        if (j, i) in first:
            fail("path", str(path), EDGE_LIST + ", each edge once",
                 f"line {number} lists the edge ({j}, {i}) of line {first[j, i]} again")
        first[j, i] = number
        g.add_edge(j, i, **({"weight": weight[0]} if weight else {}))
    return g


def _json_matrix(text: str, path: Path) -> list[list[float]]:
    """The n × n matrix of a JSON graph file (see `read_graph`)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        fail("path", str(path), JSON_MATRIX, f"not JSON: {err.msg} at line {err.lineno}")
    matrix = data.get("adjacency") if isinstance(data, dict) else data
    n = len(matrix) if isinstance(matrix, list) else 0
    if not (n and all(isinstance(row, list) and len(row) == n for row in matrix)
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for row in matrix for x in row)):
        fail("path", str(path), JSON_MATRIX, "not a square matrix of numbers")
    return matrix


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
TAKE_PEERS = tuple(k for k, b in TOPOLOGIES.items() if "peers" in inspect.signature(b).parameters)  # the rings


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
    check_choice("topology", name, tuple(TOPOLOGIES))
    builder = TOPOLOGIES[name]
    accepted = set(inspect.signature(builder).parameters) - {"n"}
    if peers != 1 and "peers" not in accepted:
        fail("peers", peers, f"1 with topology {name!r} (only {', '.join(TAKE_PEERS)} take peers)")
    unknown = sorted(set(kw) - accepted)
    if unknown:
        fail("options", unknown, f"options of topology {name!r}: {', '.join(sorted(accepted))}",
             f"not options of topology {name!r}")
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
        fail("n", n, "an int >= 1 (the number of learners)")


def _check_peers(peers: int, n: int) -> None:
    if isinstance(peers, bool) or not isinstance(peers, (int, np.integer)) or not 1 <= peers < n:
        own = "a learner cannot be its own peer" if isinstance(peers, (int, np.integer)) and peers >= n else ""
        fail("peers", peers, f"an int in [1, n − 1] = [1, {n - 1}] for n = {n}", own)


def _log2_ceil(n: int) -> int:
    """τ = ⌈log₂ n⌉ (0 for n = 1)."""
    return (n - 1).bit_length()


def _log2_floor(n: int) -> int:
    return n.bit_length() - 1
