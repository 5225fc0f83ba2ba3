"""Checker for exercise 10 (one GALA gossip step): mix, skip or block, the new θ_i and the new count of skips in a
row, against `galakit.gossip.rule.gossip_action` and `galakit.gossip.rule.mix` as the GALA learners apply them
(`galakit.runtime.coupling.Gossip.aggregate_message`; a blocked learner decides again once its messages came, as
in `galakit.gossip.simulate.simulate_async`).

The learner's function: ``gala_gossip_step(theta, inbox, staleness, sync_freq, peers) -> (action, theta, staleness)``
with ``inbox[j] = (θ_j, fresh)`` for each in-peer j that has sent, and ``peers`` a `galakit.gossip.topology.Peers`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from galakit.exercises.checking import Hint, as_array, call, checker, expect, expect_close
from galakit.gossip.rule import GossipAction, gossip_action, mix
from galakit.gossip.topology import Peers, Schedule, build_topology

MIX, SKIP, BLOCK = GossipAction.MIX, GossipAction.SKIP, GossipAction.BLOCK


@dataclass(frozen=True)
class Case:
    name: str
    graph: str  # the schedule's name, for the report
    peers: Peers
    theta: np.ndarray
    inbox: dict[int, tuple[np.ndarray, bool]]
    staleness: int
    sync_freq: int | None

    @property
    def all_fresh(self) -> bool:
        return all(j in self.inbox and self.inbox[j][1] for j in self.peers.in_peers)

    def shows(self) -> str:
        p = self.peers
        lines = [f"learner {p.rank} of {self.graph}: W_ii = {p.self_weight:.4g}, in-peers {list(p.in_peers)} "
                 f"with W_ij = {[round(w, 4) for w in p.in_weights]}",
                 f"theta = {_vector(self.theta)}",
                 "inbox = {" + ", ".join(f"{j}: ({_vector(m)}, fresh={f})" for j, (m, f) in self.inbox.items()) + "}",
                 f"staleness = {self.staleness}, sync_freq = {self.sync_freq}"]
        return "\n".join(lines)


def _vector(x: Any) -> str:
    return np.array2string(as_array(x), precision=4, separator=", ")


def decide(all_fresh: bool, staleness: int, sync_freq: int | None) -> GossipAction:
    """`gossip_action`, with sync_freq=None read as the learners read it: never block."""
    return gossip_action(all_fresh, staleness, sync_freq)


def reference(case: Case) -> tuple[GossipAction, Any, int]:
    """What a GALA learner does: mix every in-peer's fresh message, or skip (one more skip in a row), or block
    (θ_i and the count stay until its messages come)."""
    action = decide(case.all_fresh, case.staleness, case.sync_freq)
    if action == MIX:
        return action, mix(case.theta, [case.inbox[j][0] for j in case.peers.in_peers], case.peers), 0
    return action, case.theta, case.staleness + (action == SKIP)


# --------------------------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------------------------


def _case(name: str, schedule: Schedule, rank: int, theta, inbox, staleness: int, sync_freq: int | None) -> Case:
    inbox = {j: (np.asarray(m, dtype=float), fresh) for j, (m, fresh) in inbox.items()}
    return Case(name, f"{schedule.name} (n = {schedule.n})", schedule.peers(rank), np.asarray(theta, dtype=float),
                inbox, staleness, sync_freq)


def cases() -> list[Case]:
    ring, ring2, star = build_topology("ring", 4), build_topology("ring", 4, peers=2), build_topology("star", 5)
    theta, m0, m3 = [2.0, 0.0, 4.0], [0.0, 2.0, 2.0], [1.0, 1.0, -1.0]
    leaves = {j: ([float(j), -float(j), 1.0], True) for j in range(1, 5)}
    return [
        _case("the in-peer's message is fresh", ring, 1, theta, {0: (m0, True)}, 2, None),
        _case("in-peer 0 has not sent since your last mix: its slot still holds that message (fresh=False)", ring,
              1, theta, {0: (m0, False)}, 3, None),
        _case("nothing received yet", ring, 1, theta, {}, 0, 3),
        _case("no fresh message, staleness 1 < sync_freq 2", ring, 1, theta, {0: (m0, False)}, 1, 2),
        _case("no fresh message, staleness 2 = sync_freq 2", ring, 1, theta, {0: (m0, False)}, 2, 2),
        _case("synchronous gossip (sync_freq=0), the message has not come", ring, 1, theta, {0: (m0, False)}, 0, 0),
        _case("the message is fresh, staleness 2 = sync_freq 2", ring, 1, theta, {0: (m0, True)}, 2, 2),
        _case("two in-peers, only in-peer 3's message is fresh", ring2, 1, theta, {0: (m0, False), 3: (m3, True)},
              0, None),
        _case("two in-peers, both fresh", ring2, 1, theta, {0: (m0, True), 3: (m3, True)}, 1, 4),
        _case("the hub of a star: its row of W sums to 2.2", star, 0, theta, leaves, 0, None),
        _case("a leaf of a star: its row of W sums to 0.7", star, 2, theta, {0: (m0, True)}, 5, 1),
        *(_random_case(seed) for seed in range(12)),
    ]


def _random_case(seed: int) -> Case:
    rng = np.random.default_rng(seed)
    name, n, extra = [("ring", 6, {"peers": 2}), ("undirected_ring", 5, {}), ("exponential", 8, {}),
                      ("star", 6, {}), ("random_regular", 8, {"degree": 3, "seed": 1})][seed % 5]
    schedule = build_topology(name, n, **extra)
    rank = int(rng.integers(n))
    every_one = rng.random() < 0.5  # half the cases mix
    inbox = {j: (rng.normal(size=5), bool(every_one or rng.random() < 0.5))
             for j in schedule.peers(rank).in_peers if every_one or rng.random() < 0.8}
    sync_freq = [None, 0, 1, 2, 3][int(rng.integers(5))]
    case = _case(f"random, seed {seed}", schedule, rank, rng.normal(size=5), inbox, int(rng.integers(5)), sync_freq)
    if seed == 11:  # the learners gossip torch tensors: the same rule
        tensors = {j: (torch.tensor(m), f) for j, (m, f) in case.inbox.items()}
        case = Case(case.name + " (torch tensors)", case.graph, case.peers, torch.tensor(case.theta), tensors,
                    case.staleness, case.sync_freq)
    return case


# --------------------------------------------------------------------------------------------------------------
# The mistakes students make, as the wrong answer each one gives
# --------------------------------------------------------------------------------------------------------------


def _action_mistakes(case: Case) -> list[tuple[GossipAction | None, str]]:
    fresh, s, f = case.all_fresh, case.staleness, case.sync_freq
    in_peers = case.peers.in_peers
    stale = [j for j in in_peers if j in case.inbox and not case.inbox[j][1]]
    has_slot = all(j in case.inbox for j in in_peers)
    some_fresh = any(j in case.inbox and case.inbox[j][1] for j in in_peers)
    return [
        (decide(fresh, s, 0) if f is None else None,
         "sync_freq=None means never block (galakit's learners pass 2**62, the official README 100000000): with a "
         "message missing, skip"),
        (decide(some_fresh, s, f), "only some in-peers sent a fresh message: GALA mixes when every in-peer's "
         "message is fresh, and otherwise skips (or blocks after sync_freq skips in a row)"),
        (decide(has_slot, s, f), f"in-peer {stale[0] if stale else ''}'s slot holds a message you mixed already "
         "(fresh=False): the slot keeps it until that peer writes again, but only a fresh message counts; mixing it "
         "again reuses old parameters"),
        (decide(fresh, s, f + 1) if f is not None else None,
         f"off by one: staleness = {s} skips in a row have reached sync_freq = {f}, so the learner blocks now "
         "(it skips while staleness < sync_freq)"),
        (decide(fresh, s + 1, f) if f is not None else None,
         f"off by one: staleness = {s} < sync_freq = {f}, so one more skip is allowed (block only once staleness "
         "has reached sync_freq)"),
        (BLOCK if fresh and f is not None and s >= f else None,
         "every in-peer's message is fresh: mix now, whatever the staleness (blocking waits for a missing one)"),
    ]


def _staleness_mistakes(action: GossipAction, s: int) -> dict[int, str]:
    if action == SKIP:
        return {0: "a skip adds one to the count of skips in a row: resetting it on a skip means the learner never "
                   "blocks", s: "a skip adds one to the count of skips in a row (staleness + 1)"}
    if action == BLOCK:
        return {s + 1: "a blocked learner has not skipped: it waits, and the count stays until it mixes",
                0: "the count goes back to 0 when the learner mixes; a blocked learner has not mixed yet (it runs the "
                   "step again once its messages have come)"}
    return {s: "a mix resets the count of skips in a row to 0", s + 1: "a mix resets the count of skips in a row to 0"}


def _theta_mistakes(case: Case) -> list[Hint]:
    p = case.peers
    theta, messages = as_array(case.theta), [as_array(case.inbox[j][0]) for j in p.in_peers]
    row = p.self_weight + sum(p.in_weights)
    weighted = p.self_weight * theta + sum(w * m for w, m in zip(p.in_weights, messages, strict=True))
    return [
        Hint(weighted, f"the row of W sums to {row:.4g} here, not 1: divide by W_ii + Σ_j W_ij (galakit's "
                       "mixing_scale), so that θ_i stays a convex combination of what it mixes"),
        Hint((theta + sum(messages)) / (len(messages) + 1), "you gave every message the same weight 1/(p+1); use "
             "W_ii = peers.self_weight and W_ij = peers.in_weights"),
        Hint(sum(w * m for w, m in zip(p.in_weights, messages, strict=True)) / sum(p.in_weights),
             "you left out your own θ_i: it keeps the weight W_ii"),
    ]


# --------------------------------------------------------------------------------------------------------------
# The checker
# --------------------------------------------------------------------------------------------------------------


def _as_action(value: Any) -> GossipAction | None:
    if isinstance(value, bool):
        return None
    try:
        return GossipAction(value)
    except (ValueError, TypeError):
        return None


def _check_case(fn: Callable, case: Case) -> None:
    expected_action, expected_theta, expected_staleness = reference(case)
    inbox = {j: (m.clone() if hasattr(m, "clone") else m.copy(), f) for j, (m, f) in case.inbox.items()}
    got = call(fn, case.theta, inbox, case.staleness, case.sync_freq, case.peers, case=case.name)
    report = {"case": case.name, "shows": case.shows()}
    expect(got is not None, found="your function returns nothing", hint="is `return` missing?", **report)
    expect(isinstance(got, (tuple, list)) and len(got) == 3, found=f"your function returned {type(got).__name__} "
           f"{got!r:.60}", hint="return three things: (action, new_theta, new_staleness)", **report)
    action, theta, staleness = got
    got_action = _as_action(action)
    expect(got_action is not None, found=f"the action is {action!r}", hint="return GossipAction.MIX, "
           "GossipAction.SKIP or GossipAction.BLOCK (from galakit import GossipAction)", **report)
    hint = next((says for wrong, says in _action_mistakes(case) if wrong == got_action != expected_action), "")
    expect(got_action == expected_action, found=f"expected the action {expected_action.name}, got {got_action.name}",
           hint=hint, **report)
    is_int = isinstance(staleness, (int, np.integer)) and not isinstance(staleness, bool)
    hint = _staleness_mistakes(expected_action, case.staleness).get(staleness, "") if is_int else \
        "return the count of skips in a row as an int"
    expect(is_int and staleness == expected_staleness, found=f"after {expected_action.name}, expected staleness "
           f"{expected_staleness}, got {staleness!r}", hint=hint, **report)
    hints = _theta_mistakes(case) if expected_action == MIX else [
        Hint(lambda _: True, f"θ_i changes only when the learner mixes; after {expected_action.name} it stays as "
                             "it is")]
    expect_close(theta, expected_theta, hints=hints, what="the new theta", **report)


@checker("GALA gossip step", success="your step makes the same choice (mix, skip or block), the same θ_i and the "
                                     "same count of skips as galakit's gossip_action + mix, on every case")
def check_gala_gossip_step(fn: Any) -> None:
    """``fn(theta, inbox, staleness, sync_freq, peers)`` → ``(action, new_theta, new_staleness)``."""
    for case in cases():
        _check_case(fn, case)

