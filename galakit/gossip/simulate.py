"""The gossip step (GALA's mixing rule and its bounded-staleness decision) and a vectorised simulator of n learners
gossiping over a `Schedule`: synchronous, asynchronous (delays, drops, ``sync_freq``) or push-sum.

The learners (`galakit.runtime.coupling.Gossip`) decide each step with `gossip_action` from here and take their
peers and weights from `Schedule.peers`; the simulator applies the same rule to all n learners at once, on a
tensor X of shape (n, d) (row i = learner i's parameters).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

import numpy as np
import torch

from galakit.gossip.consensus import distance_to_average, max_pairwise_distance
from galakit.gossip.topology import Peers, Schedule

T = TypeVar("T", np.ndarray, torch.Tensor)
DelayFn = Callable[[int, np.ndarray, np.ndarray], np.ndarray]  # (step, senders, receivers) -> delay; < 0 = dropped
GradFn = Callable[[int, torch.Tensor], torch.Tensor]  # (step, X) -> G_k, shape (n, d)

STORE_VALUES_MAX = 10_000  # store every X_k by default when n·d is at most this
STORE_EDGES_MAX_N = 1_024  # store the active edges of every step by default when n is at most this
EXACT_PAIRWISE_MAX = 2**22  # exact max pairwise distance when n²·d is at most this; else the 2·max_i bound


# --------------------------------------------------------------------------------------------------------------
# The gossip rule, for one learner (used by the GALA learners) and vectorised (used by the simulator)
# --------------------------------------------------------------------------------------------------------------


class GossipAction(IntEnum):
    """What a learner does with its in-peers' messages at one gossip step."""

    MIX = 0  # every in-peer's message is fresh (or was waited for): mix now
    SKIP = 1  # a message is missing and fewer than sync_freq skips happened in a row: go on without mixing
    BLOCK = 2  # a message is missing after sync_freq skips: wait for it, then mix


def gossip_action(all_fresh: bool | np.ndarray, staleness: int | np.ndarray,
                  sync_freq: int) -> GossipAction | np.ndarray:
    """GALA's bounded-staleness rule (the official gossip buffer's ``aggregate_message``).

    Mix if every in-peer has sent a message this learner has not consumed yet; otherwise skip mixing while the
    learner has skipped fewer than ``sync_freq`` times in a row (``staleness``), and block once it has.
    ``sync_freq = 0`` always waits (synchronous gossip); a huge ``sync_freq`` (the README's 100000000) never
    blocks. Works on scalars (returns a `GossipAction`) and element-wise on arrays (returns an int array).
    """
    if sync_freq < 0:
        raise ValueError(f"sync_freq must be ≥ 0 (0 = always wait for messages), got {sync_freq}")
    action = np.where(all_fresh, GossipAction.MIX,
                      np.where(np.asarray(staleness) < sync_freq, GossipAction.SKIP, GossipAction.BLOCK))
    return GossipAction(int(action)) if action.ndim == 0 else action


def mix(own: T, messages: Sequence[T], peers: Peers) -> T:
    """One learner's gossip update θ_i ← W_ii θ_i + Σ_j W_ij θ_j, with the weights of `Schedule.peers`.

    ``messages[m]`` is the parameter (any shape, same as ``own``) received from ``peers.in_peers[m]``.
    """
    if len(messages) != len(peers.in_peers):
        raise ValueError(f"rank {peers.rank} at step {peers.step} expects {len(peers.in_peers)} messages "
                         f"(from {list(peers.in_peers)}), got {len(messages)}")
    mixed = own * peers.self_weight
    for weight, message in zip(peers.in_weights, messages, strict=True):
        mixed = mixed + weight * message
    return mixed


# --------------------------------------------------------------------------------------------------------------
# The trace a simulation returns
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Trace:
    """A simulated gossip run, ready to draw.

    State arrays have ``steps + 1`` rows: row k is X_k, after k gossip steps (row 0 = the start). Event arrays
    have ``steps`` rows: row k is what happened during step k (from X_k to X_{k+1}). For push-sum the "values"
    are the de-biased estimates z_i = s_i / w_i and the average is Σ s_i / Σ w_i.

    Attributes:
        schedule: the schedule's name.
        mode: "sync", "async" or "push_sum".
        distance_to_average: (steps + 1, n), ‖x_i − x̄‖₂.
        max_pairwise: (steps + 1,), max_{i,j} ‖x_i − x_j‖₂; when ``pairwise_exact`` is False (n²·d too large to
            compute every step) it is the upper bound 2 max_i ‖x_i − x̄‖₂ instead.
        pairwise_exact: whether ``max_pairwise`` is exact.
        mean: (steps + 1, d), the average x̄ (it drifts under asynchrony or local updates).
        messages: (steps,), number of messages mixed in at each step.
        final: (n, d), the values after the last step.
        values: (steps + 1, n, d) or None (stored when asked or when n·d is small).
        active_edges: ``steps`` arrays (E_k, 2) of (sender, receiver) whose message was mixed, or None.
        mixed, skipped, blocked: (steps, n) bool, async only: learner i mixed / skipped mixing / was waiting.
        staleness: (steps, n) int, async only: skips in a row after step k.
        weights: (steps + 1, n), push-sum only: the weights w_i.
        total_mass: (steps + 1, d), push-sum only: Σ_i s_i (constant without local updates).
        total_weight: (steps + 1,), push-sum only: Σ_i w_i (always n).
    """

    schedule: str
    mode: str
    distance_to_average: np.ndarray
    max_pairwise: np.ndarray
    pairwise_exact: bool
    mean: np.ndarray
    messages: np.ndarray
    final: np.ndarray
    values: np.ndarray | None = None
    active_edges: list[np.ndarray] | None = None
    mixed: np.ndarray | None = None
    skipped: np.ndarray | None = None
    blocked: np.ndarray | None = None
    staleness: np.ndarray | None = None
    weights: np.ndarray | None = None
    total_mass: np.ndarray | None = None
    total_weight: np.ndarray | None = None

    @property
    def steps(self) -> int:
        return len(self.messages)

    @property
    def consensus_error(self) -> np.ndarray:
        """‖X_k − 1x̄ᵀ‖_F = sqrt(Σ_i ‖x_i − x̄‖²) for k = 0..steps: shape (steps + 1,)."""
        return np.sqrt(np.sum(self.distance_to_average**2, axis=1))


# --------------------------------------------------------------------------------------------------------------
# Simulators
# --------------------------------------------------------------------------------------------------------------


def simulate_sync(schedule: Schedule, x0: np.ndarray | torch.Tensor, steps: int, *, alpha: float = 0.0,
                  grad_bound: float = 0.0, grad_fn: GradFn | None = None, seed: int | None = None,
                  store_values: bool | None = None, store_edges: bool | None = None) -> Trace:
    """Synchronous gossip X_{k+1} = W_k (X_k − α G_k): every learner mixes at every step.

    Args:
        schedule: who talks to whom (`galakit.gossip.topology.Schedule`).
        x0: initial values, (n,) or (n, d) array/tensor; float32 stays float32 (fast), integers become float64.
        steps: number of gossip steps.
        alpha, grad_bound, grad_fn, seed: optional local updates, see `local_updates`.
        store_values, store_edges: keep every X_k / every step's active edges (default: when small).
    """
    x, update, recorder = _start(schedule, x0, steps, alpha, grad_bound, grad_fn, seed, store_values, store_edges)
    mixers = [_Mixer(schedule, k, x.dtype) for k in range(schedule.period)]
    out = torch.empty_like(x)
    for k in range(steps):
        if update is not None:
            x.sub_(update(k, x))  # the local step: X_k − α G_k
        mixers[k % schedule.period].apply(x, out)  # out = W_k (X_k − α G_k)
        x, out = out, x
        recorder.record(k + 1, x, edges=schedule.edges(k))
    return recorder.trace("sync", x)


def simulate_async(schedule: Schedule, x0: np.ndarray | torch.Tensor, steps: int, *, sync_freq: int,
                   delay: int | DelayFn = 0, alpha: float = 0.0, grad_bound: float = 0.0,
                   grad_fn: GradFn | None = None, seed: int | None = None, store_values: bool | None = None,
                   store_edges: bool | None = None) -> Trace:
    """GALA's asynchronous gossip on a static graph, with per-link delays and drops.

    Every step each running learner (1) takes its local step, (2) writes its parameters to its out-peers, unless
    one of them has not consumed its previous message yet (GALA then skips the write), and (3) applies
    `gossip_action`: it mixes if a fresh message from every in-peer has arrived, skips mixing (``staleness`` + 1)
    if not and it has skipped fewer than ``sync_freq`` times in a row, and otherwise blocks. A blocked learner
    neither computes nor writes; it mixes at the first step at which all its messages have arrived.

    A message written at step k on link j → i is visible to i from step k + delay. ``delay`` is an int for every
    link or a function ``(step, senders, receivers) -> delays`` over the links written at that step (see
    `random_delays`); a negative delay drops the message. A dropped message frees the link, and the sender writes
    again at its next step; a blocked sender re-sends its (unchanged) parameters, so a drop cannot deadlock.
    Messages carry the parameters as they were when written, so the mixing uses stale values.

    Args: as `simulate_sync`, plus ``sync_freq`` (skips allowed before blocking) and ``delay``.
    """
    if schedule.period != 1:
        raise ValueError(f"simulate_async models a static graph (period 1, as GALA ships); schedule "
                         f"{schedule.name!r} has period {schedule.period}: use simulate_sync for time-varying ones")
    gossip_action(False, 0, sync_freq)  # validates sync_freq
    delay_fn = _as_delay_fn(delay)
    x, update, recorder = _start(schedule, x0, steps, alpha, grad_bound, grad_fn, seed, store_values, store_edges)
    n = schedule.n
    src, dst = schedule.edges(0).T
    link_weight = torch.as_tensor(schedule.edge_weights(0), dtype=x.dtype)[:, None]
    self_weight = torch.as_tensor(schedule.self_weights(0), dtype=x.dtype)[:, None]
    in_degree = np.bincount(dst, minlength=n)

    slot = x.clone()  # slot[j]: the parameters learner j wrote last (GALA's one message slot per learner)
    pending = np.zeros(len(src), bool)  # link e carries a message not yet consumed by its receiver
    arrival = np.zeros(len(src), np.int64)  # the step from which that message is visible
    lost = np.zeros(len(src), bool)  # the last message on link e was dropped
    staleness = np.zeros(n, np.int64)
    blocked = np.zeros(n, bool)
    log = {name: np.zeros((steps, n), dtype) for name, dtype in
           (("mixed", bool), ("skipped", bool), ("blocked", bool), ("staleness", np.int64))}

    for k in range(steps):
        running = ~blocked
        if update is not None:  # 1. local step (a blocked learner is waiting, not computing)
            g = update(k, x)
            x[running] -= g[running]
        # 2. write_message: skip while an out-peer has not consumed the previous message; re-send a dropped one
        busy = np.bincount(src[pending], minlength=n) > 0
        resend = np.bincount(src[lost], minlength=n) > 0
        writers = ~busy & (running | resend)
        slot[writers] = x[writers]
        sent = writers[src]
        link_delay = delay_fn(k, src[sent], dst[sent])
        pending[sent], lost[sent], arrival[sent] = link_delay >= 0, link_delay < 0, k + link_delay
        # 3. aggregate_message: mix, skip or block (GALA's bounded-staleness rule)
        visible = pending & (arrival <= k)
        all_fresh = np.bincount(dst[visible], minlength=n) == in_degree
        action = gossip_action(all_fresh, staleness, sync_freq)
        mixing = action == GossipAction.MIX
        consumed = visible & mixing[dst]
        received = torch.zeros_like(x).index_add_(0, torch.as_tensor(dst[consumed]),
                                                  slot[src[consumed]] * link_weight[consumed])
        rows = torch.as_tensor(mixing)
        x[rows] = self_weight[rows] * x[rows] + received[rows]  # x_i ← W_ii x_i + Σ_j W_ij (message from j)
        pending[consumed] = False
        skipped, blocked = action == GossipAction.SKIP, action == GossipAction.BLOCK
        staleness = np.where(mixing, 0, staleness + skipped)
        log["mixed"][k], log["skipped"][k], log["blocked"][k], log["staleness"][k] = mixing, skipped, blocked, staleness
        recorder.record(k + 1, x, edges=np.stack([src[consumed], dst[consumed]], axis=1))
    return recorder.trace("async", x, **log)


def simulate_push_sum(schedule: Schedule, x0: np.ndarray | torch.Tensor, steps: int, *, alpha: float = 0.0,
                      grad_bound: float = 0.0, grad_fn: GradFn | None = None, seed: int | None = None,
                      store_values: bool | None = None, store_edges: bool | None = None) -> Trace:
    """Push-sum (Kempe et al. 2003; SGP): gossip on the pair (s_i, w_i), read out z_i = s_i / w_i.

    Start from s = x0, w = 1. Every step s ← W_k (s − α G_k) and w ← W_k w with column-stochastic W_k (each
    sender splits its mass, 1ᵀW = 1ᵀ), so Σ_i s_i and Σ_i w_i are preserved and z_i → Σ s / Σ w = x̄ on directed,
    non-regular graphs where plain gossip (row sums ≠ 1) drifts away from the average. G_k is evaluated at Z_k.

    Args: as `simulate_sync`; the schedule must be column-stochastic.
    """
    try:
        schedule.check("column")
    except ValueError as err:
        raise ValueError(f"push-sum needs column-stochastic mixing (each sender splits its mass): {err}") from err
    x, update, recorder = _start(schedule, x0, steps, alpha, grad_bound, grad_fn, seed, store_values, store_edges)
    n, d = x.shape
    sw = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], dim=1)  # [s | w]: push-sum is plain gossip on both
    out = torch.empty_like(sw)
    mixers = [_Mixer(schedule, k, x.dtype) for k in range(schedule.period)]
    weights, total_mass, total_weight = np.ones((steps + 1, n)), np.empty((steps + 1, d)), np.empty(steps + 1)
    total_mass[0], total_weight[0] = sw[:, :d].sum(0).numpy(), n
    for k in range(steps):
        if update is not None:
            sw[:, :d] -= update(k, sw[:, :d] / sw[:, d:])  # the local step, on s, with G_k evaluated at z
        mixers[k % schedule.period].apply(sw, out)
        sw, out = out, sw
        s, w = sw[:, :d], sw[:, d]
        weights[k + 1], total_mass[k + 1], total_weight[k + 1] = w.numpy(), s.sum(0).numpy(), float(w.sum())
        recorder.record(k + 1, s / w[:, None], edges=schedule.edges(k), center=s.sum(0) / w.sum())
    return recorder.trace("push_sum", sw[:, :d] / sw[:, d:], weights=weights, total_mass=total_mass,
                          total_weight=total_weight)


# --------------------------------------------------------------------------------------------------------------
# Local updates and delays
# --------------------------------------------------------------------------------------------------------------


def local_updates(alpha: float, grad_bound: float = 0.0, grad_fn: GradFn | None = None,
                  seed: int | None = None) -> Callable[[int, torch.Tensor], torch.Tensor] | None:
    """The local step α G_k as a function ``(k, X_k) -> α G_k`` (shape (n, d)), or None when there is none.

    ``grad_fn(k, X)`` gives G_k (e.g. real gradients); otherwise G_k is "gradient noise": each row drawn
    uniformly on the sphere of radius ``grad_bound`` = G, so ‖g_i‖ = G exactly, the worst case of the ε-ball
    bound (`galakit.gossip.consensus.epsilon_bound`).
    """
    if alpha < 0 or grad_bound < 0:
        raise ValueError(f"alpha and grad_bound must be ≥ 0, got alpha = {alpha}, grad_bound = {grad_bound}")
    if grad_fn is not None and grad_bound > 0:
        raise ValueError("give either grad_fn (your own G_k) or grad_bound (random G_k of norm G), not both")
    if alpha == 0 or (grad_fn is None and grad_bound == 0):
        return None
    generator = torch.Generator()
    generator.manual_seed(seed if seed is not None else int(torch.seed()))

    def step(k: int, x: torch.Tensor) -> torch.Tensor:
        if grad_fn is not None:
            return alpha * torch.as_tensor(grad_fn(k, x), dtype=x.dtype)
        g = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        return g.mul_(alpha * grad_bound / torch.linalg.vector_norm(g, dim=1, keepdim=True))

    return step


def random_delays(max_delay: int = 0, drop_prob: float = 0.0, seed: int | None = None) -> DelayFn:
    """Each message independently: dropped with probability ``drop_prob``, else delayed by 0..max_delay steps."""
    if max_delay < 0 or not 0 <= drop_prob <= 1:
        raise ValueError(f"need max_delay ≥ 0 and drop_prob in [0, 1], got {max_delay}, {drop_prob}")
    rng = np.random.default_rng(seed)

    def delay(step: int, senders: np.ndarray, receivers: np.ndarray) -> np.ndarray:
        d = rng.integers(0, max_delay + 1, size=len(senders))
        return np.where(rng.random(len(senders)) < drop_prob, -1, d)

    return delay


def _as_delay_fn(delay: int | DelayFn) -> DelayFn:
    if callable(delay):
        def checked(step: int, senders: np.ndarray, receivers: np.ndarray) -> np.ndarray:
            d = np.asarray(delay(step, senders, receivers), dtype=np.int64)
            return np.broadcast_to(d, senders.shape).copy()
        return checked
    if isinstance(delay, bool) or not isinstance(delay, (int, np.integer)) or delay < 0:
        raise ValueError(f"delay must be an int ≥ 0 or a function (step, senders, receivers) -> delays, "
                         f"got {delay!r}")
    return lambda step, senders, receivers: np.full(senders.shape, delay, dtype=np.int64)


# --------------------------------------------------------------------------------------------------------------
# Internals: mixing X ← W X fast, and recording the trace
# --------------------------------------------------------------------------------------------------------------


class _Mixer:
    """out = W_k x for one step's W_k.

    When every learner hears from at most m ≪ n peers, row i of W x is W_ii x_i + Σ_c w_ic x_{idx_ic}: a
    gather of m rows (a roll for circulant graphs), O(n m d), not a dense O(n² d) product. Rows with fewer than
    m in-peers are padded with their own index and weight 0.
    """

    def __init__(self, schedule: Schedule, step: int, dtype: torch.dtype) -> None:
        n = schedule.n
        src, dst = schedule.edges(step).T
        in_degree = np.bincount(dst, minlength=n)
        m = int(in_degree.max()) if len(dst) else 0
        self.dense = torch.as_tensor(schedule.mixing_matrix(step), dtype=dtype) if 8 * m > n else None
        order = np.argsort(dst, kind="stable")
        src, dst, weight = src[order], dst[order], schedule.edge_weights(step)[order]
        column = np.arange(len(dst)) - np.searchsorted(dst, dst)  # position of each edge among its row's edges
        index, weights = np.tile(np.arange(n)[:, None], (1, m)), np.zeros((n, m))
        index[dst, column], weights[dst, column] = src, weight
        self.index = torch.as_tensor(index.T.copy())  # (m, n): column c of the gather
        self.weights = torch.as_tensor(weights.T.copy(), dtype=dtype)[:, :, None]  # (m, n, 1)
        self.self_weight = torch.as_tensor(schedule.self_weights(step), dtype=dtype)[:, None]  # (n, 1)
        self._buffer: torch.Tensor | None = None

    def apply(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if self.dense is not None:
            return torch.mm(self.dense, x, out=out)
        if self._buffer is None or self._buffer.shape != x.shape:
            self._buffer = torch.empty_like(x)
        torch.mul(x, self.self_weight, out=out)
        for index, weight in zip(self.index, self.weights, strict=True):
            torch.index_select(x, 0, index, out=self._buffer)  # row i ← x_{in-peer of i}
            out.addcmul_(self._buffer, weight)
        return out


class _Recorder:
    """Fills a Trace step by step: distances always, values and edges only when asked (or small)."""

    def __init__(self, schedule: Schedule, x: torch.Tensor, steps: int, store_values: bool | None,
                 store_edges: bool | None) -> None:
        n, d = x.shape
        self.schedule = schedule.name
        self.distance = np.empty((steps + 1, n))
        self.max_pairwise = np.empty(steps + 1)
        self.mean = np.empty((steps + 1, d))
        self.messages = np.zeros(steps, np.int64)
        self.pairwise_exact = n * n * d <= EXACT_PAIRWISE_MAX
        self.values = np.empty((steps + 1, n, d)) if _auto(store_values, n * d <= STORE_VALUES_MAX) else None
        self.edges: list[np.ndarray] | None = [] if _auto(store_edges, n <= STORE_EDGES_MAX_N) else None
        self.record(0, x)

    def record(self, k: int, x: torch.Tensor, edges: np.ndarray | None = None,
               center: torch.Tensor | None = None) -> None:
        center = x.mean(dim=0) if center is None else center
        self.mean[k] = center.numpy()
        self.distance[k] = distance_to_average(x, center=center)
        self.max_pairwise[k] = max_pairwise_distance(x) if self.pairwise_exact else 2 * self.distance[k].max()
        if self.values is not None:
            self.values[k] = x.numpy()
        if edges is not None:
            self.messages[k - 1] = len(edges)
            if self.edges is not None:
                self.edges.append(edges.astype(np.int32))

    def trace(self, mode: str, final: torch.Tensor, **extra: np.ndarray) -> Trace:
        return Trace(schedule=self.schedule, mode=mode, distance_to_average=self.distance,
                     max_pairwise=self.max_pairwise, pairwise_exact=self.pairwise_exact, mean=self.mean,
                     messages=self.messages, final=final.numpy().copy(), values=self.values,
                     active_edges=self.edges, **extra)


def _start(schedule: Schedule, x0: np.ndarray | torch.Tensor, steps: int, alpha: float, grad_bound: float,
           grad_fn: GradFn | None, seed: int | None, store_values: bool | None,
           store_edges: bool | None) -> tuple[torch.Tensor, Callable | None, _Recorder]:
    """Validate the common arguments; return X_0 as a private (n, d) tensor, the local step and a recorder."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer ≥ 0, got {steps!r}")
    x = torch.as_tensor(x0).detach().clone()
    x = x if x.is_floating_point() else x.double()
    if x.ndim not in (1, 2) or x.shape[0] != schedule.n:
        raise ValueError(f"x0 must have shape (n,) or (n, d) with n = {schedule.n} (schedule {schedule.name!r}), "
                         f"got {tuple(x.shape)}")
    x = x.reshape(schedule.n, -1).contiguous()
    update = local_updates(alpha, grad_bound, grad_fn, seed)
    return x, update, _Recorder(schedule, x, steps, store_values, store_edges)


def _auto(flag: bool | None, default: bool) -> bool:
    return default if flag is None else flag
