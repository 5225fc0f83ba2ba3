"""Score a checkpoint: play full games with its policy and report raw (unclipped, all-lives) returns."""

from __future__ import annotations

import numpy as np
import torch

from galakit.config import Config
from galakit.io.checkpoint import load_checkpoint
from galakit.rl.a2c import sample_actions
from galakit.rl.envs import build_env
from galakit.rl.machine import resolve_device, torch_threads
from galakit.rl.models import make_model
from galakit.validation import check_int


def load_policy(checkpoint: str, device: str = "cpu") -> tuple[torch.nn.Module, Config]:
    """The model stored in a checkpoint file (or the newest one of a run directory) and its config."""
    state = load_checkpoint(checkpoint)
    # One policy plays here, whatever machine trained it: the learner count, its devices and its threads go.
    cfg = Config(**{**state["config"], "resume": None, "num_learners": 1, "algo": "a2c", "slow_learners": (),
                    "topology": "ring", "peers": 1,
                    "device": "cpu", "torch_threads": 0, "env_threads": 0})
    env = build_env(cfg.replace(num_envs=1))
    model = make_model(env.single_observation_space.shape, int(env.single_action_space.n), cfg.hidden_sizes)
    env.close()
    model.load_state_dict(state["model"])
    return model.to(resolve_device(device)).eval(), cfg


@torch.inference_mode()
def evaluate(checkpoint: str, episodes: int = 10, deterministic: bool = False, seed: int = 10_000,
             num_envs: int = 8, device: str = "cpu") -> np.ndarray:
    """Raw returns of ``episodes`` full games played by the checkpoint's policy.

    Games are spread evenly over ``num_envs`` simulators and only the first games of each count, so short games
    are not over-represented. ``deterministic`` takes the most likely action instead of sampling π. The policy
    runs on one torch thread (``torch_threads``: as fast for a few states at a time, far faster on busy cores).
    """
    check_int("episodes", episodes, 1)
    check_int("num_envs", num_envs, 1)
    check_int("seed", seed, 0)
    with torch_threads(1):
        return _play(checkpoint, episodes, deterministic, seed, num_envs, device)


def _play(checkpoint: str, episodes: int, deterministic: bool, seed: int, num_envs: int, device: str) -> np.ndarray:
    model, cfg = load_policy(checkpoint, device)
    num_envs = min(num_envs, episodes)
    wanted = np.full(num_envs, episodes // num_envs) + (np.arange(num_envs) < episodes % num_envs)
    env = build_env(cfg.replace(num_envs=num_envs), seed=seed)
    scores: list[list[float]] = [[] for _ in range(num_envs)]
    obs, _ = env.reset(seed=seed)
    try:
        while any(len(s) < w for s, w in zip(scores, wanted, strict=True)):
            logits, _ = model(torch.as_tensor(obs, device=next(model.parameters()).device))
            actions = logits.argmax(-1) if deterministic else sample_actions(logits)
            obs, _, _, _, info = env.step(actions.cpu().numpy())
            for i in np.flatnonzero(info["_episode"]):
                if len(scores[i]) < wanted[i]:
                    scores[i].append(float(info["episode"]["r"][i]))
    finally:
        env.close()
    return np.array([r for s in scores for r in s])
