"""galakit: learn and run GALA-A2C, gossip-based actor-learner architectures for deep RL.

The public API, by idea: ``Config`` (settings), ``train`` / ``evaluate`` (runs), ``make_vec_env`` (simulators),
the networks and the A2C pieces a tutorial puts next to the equations, topologies and their mixing matrices, the
gossip simulator, and the ε-ball diagnostics. Plots live in ``galakit.plots`` (it imports matplotlib).
"""

import galakit.lifeline  # noqa: F401  (first: a learner whose parent is gone exits before torch loads)
import galakit.threads  # noqa: F401  (sets GOMP_SPINCOUNT before torch loads)
from galakit.a2c import RolloutBuffer, a2c_loss, a2c_update, collect_rollout, gae_returns, n_step_returns
from galakit.config import PRESETS, Config
from galakit.consensus import (
    consensus_error,
    distance_to_average,
    epsilon_bound,
    max_pairwise_distance,
    predicted_steps,
    stack_parameters,
)
from galakit.envs import is_atari, make_vec_env
from galakit.evaluate import evaluate, load_policy
from galakit.gossip import (
    GossipAction,
    Trace,
    gossip_action,
    mix,
    random_delays,
    simulate_async,
    simulate_push_sum,
    simulate_sync,
)
from galakit.launch import LearnerError, Run, RunInterrupted, train
from galakit.learner import Learner
from galakit.metrics import Metrics
from galakit.models import AtariActorCritic, MLPActorCritic, make_model
from galakit.topology import TOPOLOGIES, Peers, Schedule, build_topology, from_adjacency, from_networkx

__version__ = "0.1.0"

__all__ = [
    "PRESETS", "TOPOLOGIES", "AtariActorCritic", "Config", "GossipAction", "Learner", "LearnerError",
    "MLPActorCritic", "Metrics", "Peers", "RolloutBuffer", "Run", "RunInterrupted", "Schedule", "Trace", "a2c_loss",
    "a2c_update", "build_topology", "collect_rollout", "consensus_error", "distance_to_average", "epsilon_bound",
    "evaluate",
    "from_adjacency", "from_networkx", "gae_returns", "gossip_action", "is_atari", "load_policy", "make_model",
    "make_vec_env", "max_pairwise_distance", "mix", "n_step_returns", "predicted_steps", "random_delays",
    "simulate_async", "simulate_push_sum", "simulate_sync", "stack_parameters", "train",
]
