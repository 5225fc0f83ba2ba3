"""A vectorised simulator of n learners gossiping over a `Schedule`: synchronous, asynchronous (delays, drops,
unequal speeds, ``sync_freq``) or push-sum, on a tensor X of shape (n, d) (row i = learner i's parameters).

Each step applies the gossip rule of `galakit.gossip.rule` to all n learners at once: the same `gossip_action`,
`WritePolicy` and `mixing_scale` that the GALA learners (`galakit.runtime.coupling.Gossip`) apply one by one, with
the peers and weights of `Schedule.peers`; ``tests/runtime/test_gossip_policy.py`` checks that both agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from galakit.gossip.consensus import distance_to_average, max_pairwise_distance
from galakit.gossip.rule import DEFAULT_POLICY, GossipAction, WritePolicy, check_policy, gossip_action, mixing_scale
from galakit.gossip.topology import Schedule
from galakit.validation import Described, check_float, fail

DelayFn = Callable[[int, np.ndarray, np.ndarray], np.ndarray]  # (step, senders, receivers) -> delay; < 0 = dropped
GradFn = Callable[[int, torch.Tensor], torch.Tensor]  # (step, X) -> G_k, shape (n, d)

STORE_VALUES_MAX = 10_000  # store every X_k by default when n·d is at most this
STORE_EDGES_MAX_N = 1_024  # store the active edges of every step by default when n is at most this
EXACT_PAIRWISE_MAX = 2**22  # exact max pairwise distance when n²·d is at most this; else the 2·max_i bound


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
        policy: async only, the `WritePolicy` simulated ("latest" or "skip").
        mixed, skipped, blocked: (steps, n) bool, async only: learner i mixed / skipped mixing / was waiting
            (all False while it was computing, with ``update_every`` > 1).
        staleness: (steps, n) int, async only: skips in a row after step k (the learners' ``consecutive_skips``).
        age: (steps, n) int, async only: the age of the messages learner i mixed at step k, in their senders'
            updates (the largest, over the messages; −1 when it did not mix): the learners' ``staleness``.
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
    age: np.ndarray | None = None
    policy: str | None = None
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
                  normalise: bool = True, store_values: bool | None = None,
                  store_edges: bool | None = None) -> Trace:
    """Synchronous gossip X_{k+1} = C_k W_k (X_k − α G_k): every learner mixes at every step.

    C_k = diag(c_i) from `galakit.gossip.rule.mixing_scale`: with ``normalise`` (the default, as the learners
    do) each row of W_k is divided by its sum, so every learner takes a convex combination even where W_k is only
    column-stochastic (``star``); C_k = I on row-stochastic graphs. ``normalise=False`` applies W_k as given.

    Args:
        schedule: who talks to whom (`galakit.gossip.topology.Schedule`).
        x0: initial values, (n,) or (n, d) array/tensor; float32 stays float32 (fast), integers become float64.
        steps: number of gossip steps.
        alpha, grad_bound, grad_fn, seed: optional local updates, see `local_updates`.
        normalise: divide each row of W_k by its sum (True) or apply W_k as given (False).
        store_values, store_edges: keep every X_k / every step's active edges (default: when small).
    """
    x, update, recorder = _start(schedule, x0, steps, alpha, grad_bound, grad_fn, seed, store_values, store_edges)
    mixers = [_Mixer(schedule, k, x.dtype, normalise) for k in range(schedule.period)]
    out = torch.empty_like(x)
    for k in range(steps):
        if update is not None:
            x.sub_(update(k, x))  # the local step: X_k − α G_k
        mixers[k % schedule.period].apply(x, out)  # out = C_k W_k (X_k − α G_k)
        x, out = out, x
        recorder.record(k + 1, x, edges=schedule.edges(k))
    return recorder.trace("sync", x)


def simulate_async(schedule: Schedule, x0: np.ndarray | torch.Tensor, steps: int, *, sync_freq: int | None,
                   delay: int | DelayFn = 0, policy: WritePolicy | str = DEFAULT_POLICY,
                   update_every: int | Sequence[int] = 1, alpha: float = 0.0, grad_bound: float = 0.0,
                   grad_fn: GradFn | None = None, seed: int | None = None, normalise: bool = True,
                   store_values: bool | None = None, store_edges: bool | None = None) -> Trace:
    """GALA's asynchronous gossip on a static graph, with per-link delays and drops and unequal speeds.

    Learner i finishes an update every ``update_every[i]`` steps (1: every step; a straggler takes longer) and
    then, as the GALA learners do (`galakit.gossip.rule`): (1) takes its local step, (2) writes its parameters to
    each out-peer, following ``policy`` when the previous message on that link is still unread ("latest": the
    newest replaces it; "skip": the official code's rule, no write while it is unread), and (3) applies
    `gossip_action`: it mixes if a fresh message from every in-peer has arrived, skips mixing (``staleness`` + 1)
    if not and it has skipped fewer than ``sync_freq`` times in a row, and otherwise blocks. A blocked learner
    neither computes nor writes; it mixes at the first step at which all its messages have arrived, and then
    starts its next update. Mixing weighs the messages as `simulate_sync` does (``normalise``).

    A link carries its messages as galakit's transports do: one on its way at a time, visible to the receiver
    from the step it was sent + its delay; under "latest" a write meanwhile waits in the sender's one-message
    outbox (a newer write replaces it) and leaves when the link is free; the receiver keeps the newest message
    that has arrived. ``delay`` is an int for every message or a function ``(step, senders, receivers) ->
    delays`` over the messages leaving at that step (see `random_delays`); a negative delay drops the message.
    A dropped message frees the link; the sender writes again at its next update, and a blocked sender re-sends
    its (unchanged) parameters on it, so a drop cannot deadlock. Messages carry the parameters as they were when
    written, so the mixing uses stale values.

    With ``delay=0`` and ``update_every=1`` every message is fresh at every step: this is `simulate_sync`. With
    delays, ``sync_freq=0`` blocks under the chosen write rule (the official code's ``sync_freq=0`` under "skip");
    galakit's learners at ``sync_freq=0`` keep every message instead ("exact"), so that their k-th mix applies W_k
    whatever the timing: their parameters after k updates are `simulate_sync`'s X_k.

    Args: as `simulate_sync`, plus ``sync_freq`` (skips allowed before blocking), ``delay``, ``policy``
    ("latest" or "skip", `galakit.gossip.rule.WritePolicy`) and ``update_every`` (an int ≥ 1, or one per learner).
    """
    if schedule.period != 1:
        fail("schedule", Described(f"{schedule.name!r} with period {schedule.period}"), "a static schedule "
             "(period 1, as GALA ships); use simulate_sync for time-varying ones", "simulate_async models a "
             "static graph")
    gossip_action(False, 0, sync_freq)  # validates sync_freq
    policy, period = check_policy(policy), _as_periods(update_every, schedule.n)
    x, update, recorder = _start(schedule, x0, steps, alpha, grad_bound, grad_fn, seed, store_values, store_edges)
    n = schedule.n
    links = _Links(schedule, x, policy, _as_delay_fn(delay), normalise)
    src, dst, in_degree = links.src, links.dst, np.bincount(links.dst, minlength=n)
    updates = np.full(n, -1, np.int64)  # each learner's newest update index (a message's stamp, for its age)
    next_update = period - 1  # the step at which each learner finishes its next update
    staleness = np.zeros(n, np.int64)
    blocked = np.zeros(n, bool)
    log = {name: np.zeros((steps, n), dtype) for name, dtype in
           (("mixed", bool), ("skipped", bool), ("blocked", bool), ("staleness", np.int64), ("age", np.int64))}

    for k in range(steps):
        due = ~blocked & (next_update <= k)  # finishing an update now (a blocked learner is waiting instead)
        if update is not None:  # 1. local step
            g = update(k, x)  # (drawn for every learner at every step: the noise does not depend on who waits)
            x[due] -= g[due]
        updates[due] += 1
        links.write(k, x, due, blocked, updates)  # 2. write_message
        deciding = due | blocked  # 3. aggregate_message: mix, skip or block (GALA's bounded-staleness rule)
        all_fresh = np.bincount(dst[links.unread], minlength=n) == in_degree
        action = np.where(deciding, gossip_action(all_fresh, staleness, sync_freq), -1)
        mixing = action == GossipAction.MIX
        consumed, age = links.mix_into(x, mixing, updates)
        skipped, blocked = action == GossipAction.SKIP, action == GossipAction.BLOCK
        staleness = np.where(mixing, 0, staleness + skipped)
        next_update = np.where(deciding & ~blocked, k + period, next_update)
        log["mixed"][k], log["skipped"][k], log["blocked"][k] = mixing, skipped, blocked
        log["staleness"][k], log["age"][k] = staleness, age
        recorder.record(k + 1, x, edges=np.stack([src[consumed], dst[consumed]], axis=1))
    return recorder.trace("async", x, policy=str(policy), **log)


def simulate_push_sum(schedule: Schedule, x0: np.ndarray | torch.Tensor, steps: int, *, alpha: float = 0.0,
                      grad_bound: float = 0.0, grad_fn: GradFn | None = None, seed: int | None = None,
                      store_values: bool | None = None, store_edges: bool | None = None) -> Trace:
    """Push-sum (Kempe et al. 2003; SGP): gossip on the pair (s_i, w_i), read out z_i = s_i / w_i.

    Start from s = x0, w = 1. Every step s ← W_k (s − α G_k) and w ← W_k w with column-stochastic W_k (each
    sender splits its mass, 1ᵀW = 1ᵀ), applied as given, so Σ_i s_i and Σ_i w_i are preserved and
    z_i → Σ s / Σ w = x̄ on directed, non-regular graphs where plain gossip (rows of W normalised) settles on a
    weighted average instead. G_k is evaluated at Z_k.

    Args: as `simulate_sync` (without ``normalise``); the schedule must be column-stochastic.
    """
    try:
        schedule.check("column")
    except ValueError as err:
        fail("schedule", getattr(err, "value", Described(schedule.name)), "a column-stochastic schedule: push-sum "
             "needs each sender to split its mass (1ᵀW = 1ᵀ)", getattr(err, "why", str(err)))
    x, update, recorder = _start(schedule, x0, steps, alpha, grad_bound, grad_fn, seed, store_values, store_edges)
    n, d = x.shape
    sw = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], dim=1)  # [s | w]: push-sum is plain gossip on both
    out = torch.empty_like(sw)
    mixers = [_Mixer(schedule, k, x.dtype, normalise=False) for k in range(schedule.period)]
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
    _check_non_negative("alpha", alpha, "the local step size α")
    _check_non_negative("grad_bound", grad_bound, "G, the norm of the random G_k; 0: none")
    if grad_fn is not None and grad_bound > 0:
        fail("grad_bound", grad_bound, "0 when grad_fn is given (grad_fn gives your own G_k, grad_bound draws "
             "random G_k of norm G: one or the other)", "grad_fn is given too")
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
    if not _is_int(max_delay) or max_delay < 0:
        fail("max_delay", max_delay, "an int >= 0 (steps)")
    check_float("drop_prob", drop_prob, 0.0, 1.0)
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
    if not _is_int(delay) or delay < 0:
        fail("delay", delay, "an int >= 0 (steps, for every message) or a function (step, senders, receivers) "
             "-> delays (a negative delay drops the message)")
    return lambda step, senders, receivers: np.full(senders.shape, delay, dtype=np.int64)


def _as_periods(update_every: int | Sequence[int], n: int) -> np.ndarray:
    """``update_every`` as one int ≥ 1 per learner: shape (n,)."""
    periods = np.asarray(update_every)
    if periods.shape not in ((), (n,)) or not all(_is_int(p) and p >= 1 for p in periods.reshape(-1).tolist()):
        fail("update_every", update_every, f"an int >= 1, or {n} of them (one per learner): the steps each "
             "learner takes to finish an update")
    return np.broadcast_to(periods, (n,)).astype(np.int64)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_non_negative(name: str, value: Any, meaning: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value) \
            or value < 0:
        fail(name, value, f"a finite number >= 0 ({meaning})")


# --------------------------------------------------------------------------------------------------------------
# Internals: mixing X ← C W X fast, messages on links, and recording the trace
# --------------------------------------------------------------------------------------------------------------


def _row_weights(schedule: Schedule, step: int, normalise: bool) -> tuple[np.ndarray, np.ndarray]:
    """W_k with each row i scaled by c_i = `mixing_scale` (every in-peer mixed): the self-weights c_i W_ii,
    shape (n,), and c_i W_ij for each row (j, i) of ``schedule.edges(step)``, shape (E,)."""
    dst = schedule.edges(step)[:, 1]
    self_weight, edge_weight = schedule.self_weights(step), schedule.edge_weights(step)
    scale = mixing_scale(self_weight, np.bincount(dst, edge_weight, minlength=schedule.n), normalise)
    return self_weight * scale, edge_weight * scale[dst]


class _Mixer:
    """out = C_k W_k x for one step's W_k (rows scaled as `_row_weights` says).

    When every learner hears from at most m ≪ n peers, row i of W x is W_ii x_i + Σ_c w_ic x_{idx_ic}: a
    gather of m rows (a roll for circulant graphs), O(n m d), not a dense O(n² d) product. Rows with fewer than
    m in-peers are padded with their own index and weight 0.
    """

    def __init__(self, schedule: Schedule, step: int, dtype: torch.dtype, normalise: bool = True) -> None:
        n = schedule.n
        src, dst = schedule.edges(step).T
        self_weight, weight = _row_weights(schedule, step, normalise)
        in_degree = np.bincount(dst, minlength=n)
        m = int(in_degree.max()) if len(dst) else 0
        self.dense = None
        if 8 * m > n:
            dense = np.diag(self_weight)
            dense[dst, src] = weight
            self.dense = torch.as_tensor(dense, dtype=dtype)
        order = np.argsort(dst, kind="stable")
        src, dst, weight = src[order], dst[order], weight[order]
        column = np.arange(len(dst)) - np.searchsorted(dst, dst)  # position of each edge among its row's edges
        index, weights = np.tile(np.arange(n)[:, None], (1, m)), np.zeros((n, m))
        index[dst, column], weights[dst, column] = src, weight
        self.index = torch.as_tensor(index.T.copy())  # (m, n): column c of the gather
        self.weights = torch.as_tensor(weights.T.copy(), dtype=dtype)[:, :, None]  # (m, n, 1)
        self.self_weight = torch.as_tensor(self_weight, dtype=dtype)[:, None]  # (n, 1)
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


class _Links:
    """The messages on the E links j → i of a static schedule (the rows of ``schedule.edges()``), carried as
    galakit's transports carry them (see `simulate_async`): per link, the sender's outbox (a write waiting for the
    link, "latest" only), one message on its way, and the newest arrived message the receiver has not consumed.
    Each message carries the sender's parameters and update index (its stamp) when it was written."""

    def __init__(self, schedule: Schedule, x: torch.Tensor, policy: WritePolicy, delay_fn: DelayFn,
                 normalise: bool) -> None:
        self.src, self.dst = schedule.edges(0).T
        self_weight, link_weight = _row_weights(schedule, 0, normalise)
        self.self_weight = torch.as_tensor(self_weight, dtype=x.dtype)[:, None]  # (n, 1): c_i W_ii
        self.link_weight = torch.as_tensor(link_weight, dtype=x.dtype)[:, None]  # (E, 1): c_i W_ij
        self.policy, self.delay_fn = policy, delay_fn
        e = len(self.src)
        self.written, self.written_at = x.clone(), np.full(len(x), -1)  # each sender's newest write, its stamp
        self.outbox = np.zeros(e, bool)
        self.on_way, self.arrival = np.zeros(e, bool), np.zeros(e, np.int64)
        self.way, self.way_at = torch.zeros(e, x.shape[1], dtype=x.dtype), np.zeros(e, np.int64)
        self.unread, self.inbox, self.inbox_at = np.zeros(e, bool), torch.zeros_like(self.way), np.zeros(e, np.int64)
        self.lost = np.zeros(e, bool)  # the link's last message was dropped

    def write(self, k: int, x: torch.Tensor, due: np.ndarray, blocked: np.ndarray, updates: np.ndarray) -> None:
        """Learners ``due`` write to every out-peer, ``blocked`` ones re-send on links that lost their message;
        under "skip", not on a link whose previous message is unread (on its way or not consumed yet)."""
        links = due[self.src] | (blocked[self.src] & self.lost)
        if self.policy is WritePolicy.SKIP:
            links &= ~(self.on_way | self.unread)
        senders = torch.as_tensor(np.unique(self.src[links]))
        self.written[senders] = x[senders]
        self.written_at[senders.numpy()] = updates[senders.numpy()]
        self.outbox |= links  # "latest": replaces a write still waiting there
        self.lost &= ~links
        self._arrive(k)  # a message arriving now frees its link for the outbox, ...
        self._depart(k)
        self._arrive(k)  # ... whose message may arrive at once (delay 0)

    def mix_into(self, x: torch.Tensor, mixing: np.ndarray, updates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x_i ← c_i W_ii x_i + Σ_j c_i W_ij (j's unread message) for the rows ``mixing``, in place. Returns the
        links consumed (E,) bool and each learner's age of the messages it mixed (n,) (−1: none)."""
        consumed = self.unread & mixing[self.dst]
        c = torch.as_tensor(consumed)
        received = torch.zeros_like(x).index_add_(0, torch.as_tensor(self.dst[consumed]),
                                                  self.inbox[c] * self.link_weight[c])
        rows = torch.as_tensor(mixing)
        x[rows] = self.self_weight[rows] * x[rows] + received[rows]
        self.unread &= ~consumed
        age = np.full(len(x), -1, np.int64)
        np.maximum.at(age, self.dst[consumed], updates[self.src[consumed]] - self.inbox_at[consumed])
        return consumed, age

    def _arrive(self, k: int) -> None:
        arrived = self.on_way & (self.arrival <= k)
        a = torch.as_tensor(arrived)
        self.inbox[a], self.inbox_at[arrived] = self.way[a], self.way_at[arrived]  # the newest replaces
        self.unread |= arrived
        self.on_way &= ~arrived

    def _depart(self, k: int) -> None:
        leaving = np.flatnonzero(self.outbox & ~self.on_way)
        if len(leaving) == 0:
            return
        delay = self.delay_fn(k, self.src[leaving], self.dst[leaving])
        sent, kept = leaving[delay >= 0], delay[delay >= 0]
        self.lost[leaving[delay < 0]] = True
        self.way[torch.as_tensor(sent)] = self.written[torch.as_tensor(self.src[sent])]
        self.way_at[sent], self.arrival[sent], self.on_way[sent] = self.written_at[self.src[sent]], k + kept, True
        self.outbox[leaving] = False


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
    if not _is_int(steps) or steps < 0:
        fail("steps", steps, "an int >= 0 (gossip steps to simulate)")
    x = torch.as_tensor(x0).detach().clone()
    x = x if x.is_floating_point() else x.double()
    if x.ndim not in (1, 2) or x.shape[0] != schedule.n:
        fail("x0", Described(f"an array of shape {tuple(x.shape)}"), f"shape (n,) or (n, d) with n = {schedule.n}",
             f"schedule {schedule.name!r} has {schedule.n} learners")
    x = x.reshape(schedule.n, -1).contiguous()
    update = local_updates(alpha, grad_bound, grad_fn, seed)
    return x, update, _Recorder(schedule, x, steps, store_values, store_edges)


def _auto(flag: bool | None, default: bool) -> bool:
    return default if flag is None else flag
