"""Exercise 10, a reference solution: one asynchronous GALA gossip step of learner i, after its local update.

GALA's bounded-staleness rule (the official gossip buffer's ``aggregate_message``): mix when every in-peer's
message is fresh; otherwise skip mixing while fewer than ``sync_freq`` skips happened in a row, and block once
they have (``sync_freq=None``: never block; ``0``: always wait, synchronous gossip).
"""

from enum import IntEnum


class GossipAction(IntEnum):
    """The same values as galakit's GossipAction, so the two compare equal."""

    MIX = 0
    SKIP = 1
    BLOCK = 2


def gala_gossip_step(theta, inbox, staleness, sync_freq, peers):
    """Returns (action, new_theta, new_staleness); see the exercise notebook for the arguments."""
    all_fresh = all(j in inbox and inbox[j][1] for j in peers.in_peers)
    if all_fresh:
        # θ_i ← c_i (W_ii θ_i + Σ_j W_ij θ_j), c_i = 1 / (W_ii + Σ_j W_ij): a convex combination on any graph
        mixed = peers.self_weight * theta
        for j, w in zip(peers.in_peers, peers.in_weights, strict=True):
            mixed = mixed + w * inbox[j][0]
        return GossipAction.MIX, mixed / (peers.self_weight + sum(peers.in_weights)), 0
    if sync_freq is None or staleness < sync_freq:
        return GossipAction.SKIP, theta, staleness + 1  # go on with θ_i as it is: one more skip in a row
    return GossipAction.BLOCK, theta, staleness  # wait: θ_i and the count stay until the messages have come
