"""galakit: learn and run GALA-A2C, gossip-based actor-learner architectures for deep RL.

The public API, by idea: ``Config`` (settings), ``train`` / ``evaluate`` (runs), ``make_vec_env`` (simulators),
the networks, and the A2C pieces a tutorial puts next to the equations.
"""

from galakit.a2c import RolloutBuffer, a2c_loss, a2c_update, collect_rollout, gae_returns, n_step_returns
from galakit.config import PRESETS, Config
from galakit.envs import is_atari, make_vec_env
from galakit.evaluate import evaluate, load_policy
from galakit.launch import train
from galakit.learner import Learner
from galakit.metrics import Metrics
from galakit.models import AtariActorCritic, MLPActorCritic, make_model

__version__ = "0.1.0"

__all__ = [
    "PRESETS", "AtariActorCritic", "Config", "Learner", "MLPActorCritic", "Metrics", "RolloutBuffer", "a2c_loss",
    "a2c_update", "collect_rollout", "evaluate", "gae_returns", "is_atari", "load_policy", "make_model",
    "make_vec_env", "n_step_returns", "train",
]
