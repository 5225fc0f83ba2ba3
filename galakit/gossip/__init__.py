"""The maths of gossip, with no processes: who talks to whom (``topology``), what one gossip step does (``rule``:
mix, skip or block, the write policy, the weights), the simulator of n learners (``simulate``), and how far apart
the learners are (``consensus``: distances and the ε-ball bound).

Nothing here imports the RL or runtime parts. ``galakit.gossip.topology`` needs only numpy and networkx; the
simulator and the consensus functions compute with torch (loaded when they are first used).
"""

from galakit.lazy import lazy_exports

_EXPORTS = {
    "galakit.gossip.topology": ("TOPOLOGIES", "Peers", "Schedule", "build_topology", "from_adjacency",
                                "from_networkx", "mixing_matrix", "read_graph", "rho", "spectral_gap"),
    "galakit.gossip.rule": ("GossipAction", "WritePolicy", "gossip_action", "mix", "mixing_scale", "resolve_policy"),
    "galakit.gossip.simulate": ("Trace", "random_delays", "simulate_async", "simulate_push_sum", "simulate_sync"),
    "galakit.gossip.consensus": ("consensus_error", "distance_to_average", "epsilon_bound", "max_pairwise_distance",
                                 "predicted_steps", "stack_parameters"),
}
__all__, __getattr__, __dir__ = lazy_exports("galakit.gossip", _EXPORTS, globals())
