"""galakit: learn and run GALA-A2C, gossip-based actor-learner architectures for deep RL.

The package has five parts, from the maths up (each is a subpackage; see the README's layout table):

* ``galakit.gossip``  the maths, no processes: topologies and mixing matrices, the gossip rule, the simulator,
  consensus distances and the ε-ball;
* ``galakit.rl``      one learner, no processes: simulators, networks, A2C, the ``Learner`` loop, evaluation;
* ``galakit.runtime`` many learners: couplings, transports, the supervisor (``Run``), the worker entry points;
* ``galakit.io``      what a run leaves on disk: the run directory, checkpoints, metrics, observers, ``load_run``;
* ``galakit.views``   presentation: figures (and the notebook views), never imported from here.

The public API is re-exported here lazily (PEP 562): ``from galakit import build_topology`` loads the topology
module only, not the simulators, torch.distributed or the progress bar.
"""

import galakit.runtime.lifeline  # noqa: F401  (first: a learner whose parent is gone exits before torch loads)
import galakit.runtime.threads  # noqa: F401  (sets GOMP_SPINCOUNT before torch loads)
from galakit.lazy import lazy_exports

__version__ = "0.1.0"

# public name → the module that defines it
_EXPORTS = {
    "galakit.config": ("PRESETS", "Config"),
    "galakit.gossip.topology": ("TOPOLOGIES", "Peers", "Schedule", "build_topology", "from_adjacency",
                                "from_networkx", "read_graph"),
    "galakit.gossip.rule": ("GossipAction", "WritePolicy", "gossip_action", "mix"),
    "galakit.gossip.simulate": ("Trace", "random_delays", "simulate_async", "simulate_push_sum", "simulate_sync"),
    "galakit.gossip.consensus": ("consensus_error", "distance_to_average", "epsilon_bound", "max_pairwise_distance",
                                 "predicted_steps", "stack_parameters"),
    "galakit.rl.a2c": ("RolloutBuffer", "a2c_loss", "a2c_update", "collect_rollout", "gae_returns",
                       "n_step_returns"),
    "galakit.rl.envs": ("is_atari", "make_vec_env"),
    "galakit.rl.models": ("AtariActorCritic", "MLPActorCritic", "make_model"),
    "galakit.rl.learner": ("Learner",),
    "galakit.rl.evaluate": ("evaluate", "load_policy"),
    "galakit.runtime.launch": ("LearnerError", "Run", "RunInterrupted", "start", "train"),
    "galakit.io.observers": ("Observer", "RunInfo"),
    "galakit.io.metrics": ("Metrics",),
    "galakit.io.runs": ("load_run",),
    "galakit.smoke": ("budget", "smoke_mode"),
    "galakit.grids": ("GRIDS", "reproduce"),
}
__all__, __getattr__, __dir__ = lazy_exports("galakit", _EXPORTS, globals())
