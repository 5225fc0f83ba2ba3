"""The gossip rule, written once for the simulator (`galakit.gossip.simulate`) and the GALA learners
(`galakit.runtime.coupling.Gossip`): whether a learner mixes now, what a write does to a message not yet read,
and how a learner weighs what it mixes.

One gossip step of learner i, after its local update (the official code's ``write_message`` then
``aggregate_message``):

1. **write**: send θ_i to the out-peers. What happens to a previous message the receiver has not consumed yet is
   the `WritePolicy`.
2. **decide**: `gossip_action`: mix if every in-peer's message is fresh, else skip (asynchronous gossip), or
   block after ``sync_freq`` skips in a row.
3. **mix**: θ_i ← c_i (W_ii θ_i + Σ_j W_ij θ_j) over the senders j mixed, with c_i from `mixing_scale`:
   1 / (W_ii + Σ_j W_ij) (a convex combination, on any graph) or 1 (W as given).

numpy only: importing this module loads no torch (`mix` works on numpy arrays and torch tensors alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from galakit.validation import fail

if TYPE_CHECKING:
    from galakit.gossip.topology import Peers

T = TypeVar("T")  # np.ndarray or torch.Tensor


class GossipAction(IntEnum):
    """What a learner does with its in-peers' messages at one gossip step."""

    MIX = 0  # every in-peer's message is fresh (or was waited for): mix now
    SKIP = 1  # a message is missing and fewer than sync_freq skips happened in a row: go on without mixing
    BLOCK = 2  # a message is missing after sync_freq skips: wait for it, then mix


NEVER_BLOCK = 2**62  # sync_freq=None: GALA's README passes 100000000 for the same effect


def gossip_action(all_fresh: bool | np.ndarray, staleness: int | np.ndarray,
                  sync_freq: int | None) -> GossipAction | np.ndarray:
    """GALA's bounded-staleness rule (the official gossip buffer's ``aggregate_message``).

    Mix if every in-peer has sent a message this learner has not consumed yet; otherwise skip mixing while the
    learner has skipped fewer than ``sync_freq`` times in a row (``staleness``), and block once it has.
    ``sync_freq = 0`` always waits (synchronous gossip); ``None`` (or a huge ``sync_freq``, the README's
    100000000) never blocks. Works on scalars (returns a `GossipAction`) and element-wise on arrays (returns an
    int array).
    """
    if sync_freq is None:
        sync_freq = NEVER_BLOCK
    if isinstance(sync_freq, bool) or not isinstance(sync_freq, (int, np.integer)) or sync_freq < 0:
        fail("sync_freq", sync_freq, "an int >= 0: skips allowed in a row before blocking (0: always wait for "
             "the messages, synchronous gossip; None: never wait)")
    action = np.where(all_fresh, GossipAction.MIX,
                      np.where(np.asarray(staleness) < sync_freq, GossipAction.SKIP, GossipAction.BLOCK))
    return GossipAction(int(action)) if action.ndim == 0 else action


class WritePolicy(StrEnum):
    """What a write does when the receiver has not consumed the sender's previous message yet.

    The two asynchronous rules (``sync_freq`` > 0 or None) differ in which parameters a late reader mixes:

    * ``LATEST`` (galakit's default): the newest message replaces the unread one (the replaced one counts as
      dropped). A learner mixes the freshest parameters its in-peer has sent: a slow learner hears what its fast
      in-peer holds now, not what it held one slow update ago.
    * ``SKIP`` (the official code, ``gpu_gossip_buffer.write_message``): the sender skips writing while its
      previous message is unread, so a reader mixes the first message sent after its previous read, as old as
      the reader's own update period. galakit decides per link; the official code, with one message slot per
      sender, skips the whole write while any out-peer has not read it: the same on its one-peer ring.

    Two more are not choices but what a mode needs (`resolve_policy` picks them):

    * ``EXACT`` (synchronous gossip, ``sync_freq=0``): every message is kept and step k mixes exactly the messages
      of step k, so every learner applies W_k: X_{k+1} = W_k X_k, the network average kept (doubly stochastic W).
    * ``SUM`` (push-sum): an unread message and the newer one are added up; push-sum mass must never be lost.

    Members compare equal to their strings (``WritePolicy("skip") is WritePolicy.SKIP == "skip"``); plain data
    (a config, a checkpoint) holds ``str(policy)``.
    """

    LATEST = "latest"
    SKIP = "skip"
    EXACT = "exact"
    SUM = "sum"


DEFAULT_POLICY = WritePolicy.LATEST
ASYNC_POLICIES = (WritePolicy.LATEST, WritePolicy.SKIP)  # the ones a user chooses between


def check_policy(policy: Any, field: str = "policy") -> WritePolicy:
    """``policy`` ("latest" or "skip", or the `WritePolicy` member) as a `WritePolicy`."""
    if policy not in ASYNC_POLICIES:
        fail(field, policy, "'latest' (the newest message replaces an unread one; galakit's default) or 'skip' "
             "(the sender skips writing while its previous message is unread; the official code)")
    return WritePolicy(policy)


def resolve_policy(policy: Any, sync_freq: int | None, push_sum: bool = False) -> WritePolicy:
    """The policy a learner's mailbox follows: ``SUM`` for push-sum (no mass may be lost), ``EXACT`` for
    synchronous gossip (``sync_freq=0``: step k mixes the step-k messages), else the asynchronous ``policy``."""
    policy = check_policy(policy)
    if push_sum:
        return WritePolicy.SUM
    return WritePolicy.EXACT if sync_freq == 0 else policy


def mixing_scale(self_weight: float | np.ndarray, in_weight: float | np.ndarray,
                 normalise: bool = True) -> float | np.ndarray:
    """The factor c_i of θ_i ← c_i (W_ii θ_i + Σ_j W_ij θ_j), given W_ii and Σ_j W_ij over the senders j mixed.

    ``normalise=True`` (the learners; the simulators' default): c_i = 1 / (W_ii + Σ_j W_ij), so the new θ_i is a
    convex combination of what learner i has, on any graph. On a row-stochastic W with every in-peer mixed,
    c_i = 1 and nothing changes. On a graph that is only column-stochastic, such as ``star(n)`` with uniform
    weights (the hub's row sums to 1/n + (n−1)/2, a leaf's to 1/2 + 1/n), the raw row would scale θ_i up or down
    at every step. ``normalise=False``: c_i = 1, W applied as given (X_{k+1} = W_k X_k whatever W is, the linear
    map that spectral analysis describes; push-sum relies on it). Scalars, or arrays with one entry per row.
    """
    scale = 1.0 / (np.asarray(self_weight, dtype=float) + np.asarray(in_weight, dtype=float))
    if not normalise:
        scale = np.ones_like(scale)
    return float(scale) if scale.ndim == 0 else scale


def sender_weights(peers: Peers, n: int) -> dict[int, float]:
    """W_ij for every possible sender j of learner ``peers.rank`` at ``peers.step``: the entry of W_k for this
    step's in-peers, and their mean for anyone else (a sender at another step of a time-varying schedule, whose
    message reached this learner late). The learners mix with these and ``mixing_scale`` of their sum."""
    default = sum(peers.in_weights) / max(1, len(peers.in_weights))
    weights = dict.fromkeys(range(n), default)
    weights.update(zip(peers.in_peers, peers.in_weights, strict=True))
    return weights


def mix(own: T, messages: Sequence[T], peers: Peers, normalise: bool = True) -> T:
    """One learner's gossip update θ_i ← c_i (W_ii θ_i + Σ_j W_ij θ_j), with the weights of `Schedule.peers`
    and c_i = `mixing_scale` (1 on a row-stochastic W).

    ``messages[m]`` is the parameter (any shape, same as ``own``) received from ``peers.in_peers[m]``.
    """
    if len(messages) != len(peers.in_peers):
        fail("messages", len(messages), f"{len(peers.in_peers)}, one per in-peer",
             f"rank {peers.rank} at step {peers.step} hears from {list(peers.in_peers)}")
    mixed = own * peers.self_weight
    for weight, message in zip(peers.in_weights, messages, strict=True):
        mixed = mixed + weight * message
    return mixed * mixing_scale(peers.self_weight, sum(peers.in_weights), normalise)
