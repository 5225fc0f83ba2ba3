"""A2C throughput on Pong, all measured in one run on this machine (run: `make bench`, or this file with --help).

Prints, for 16 simulators × 5 steps per update:
  1. galakit A2C: agent steps/s and frames/s (frame skip 4) of the full training loop;
  2. the bare native vector env with random actions: steps/s (the simulators' own limit);
  3. Stable-Baselines3 A2C with the same number of envs, n_steps and the same network (our torso as SB3's
     features extractor), fed by SB3's own Atari pipeline (make_atari_env + VecFrameStack), as users run it;
  4. the loop's parts timed alone: 80 env steps, 6 rollout forward passes (batch 16), one A2C update (batch 80);
and the ratios: galakit / SB3 (target ≥ 1.3) and parts' limit / loop time (target ≥ 0.85).
"""

from __future__ import annotations  # noqa: I001  (galakit.runtime.threads must come before torch)

import argparse
import os
import shutil
import tempfile
import time

import galakit.runtime.threads  # noqa: F401  (sets GOMP_SPINCOUNT: both libraries below run with it)
import numpy as np
import torch

from galakit import Config, Learner, make_vec_env
from galakit.io.observers import RowCallback
from galakit.rl.a2c import RolloutBuffer, a2c_update, make_optimizer
from galakit.rl.models import AtariActorCritic

ENV, NUM_ENVS, NUM_STEPS = "PongNoFrameskip-v4", 16, 5


def rate(timestamps: list[tuple[int, float]], warmup: int) -> float:
    """Steps per second between the warmup-th record and the last one."""
    (s0, t0), (s1, t1) = timestamps[warmup], timestamps[-1]
    return (s1 - s0) / (t1 - t0)


def galakit_a2c(updates: int, warmup: int, threads: int) -> float:
    cfg = Config.preset("atari", env_id=ENV, total_timesteps=(updates + warmup) * NUM_ENVS * NUM_STEPS,
                        run_dir=tempfile.mkdtemp(prefix="galakit-bench-"), progress=False, tensorboard=False,
                        log_interval=1, checkpoint_interval=0, torch_threads=threads)
    stamps: list[tuple[int, float]] = []
    learner = Learner(cfg, [RowCallback(lambda row: stamps.append((row["global_step"], time.perf_counter())))])
    learner.run()
    learner.close()
    shutil.rmtree(cfg.run_dir)
    return rate(stamps, warmup)


def bare_env(steps: int) -> tuple[float, float]:
    """Random-action steps/s of the native vector env, and seconds per update's worth (80 steps)."""
    env = make_vec_env(ENV, NUM_ENVS, seed=0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = [rng.integers(0, env.single_action_space.n, NUM_ENVS) for _ in range(steps)]
    for a in actions[:20]:
        env.step(a)
    start = time.perf_counter()
    for a in actions:
        env.step(a)
    elapsed = time.perf_counter() - start
    env.close()
    return steps * NUM_ENVS / elapsed, elapsed / steps * NUM_STEPS


def parts_alone(repeats: int) -> tuple[float, float]:
    """Seconds for the rollout's forward passes (T+1 of batch 16) and for one update (batch 80)."""
    torch.manual_seed(0)
    model = AtariActorCritic(6)
    opt = make_optimizer(model, 7e-4, 0.99, 1e-5)
    buf = RolloutBuffer(NUM_STEPS, NUM_ENVS, (4, 84, 84), torch.uint8)
    buf.obs.random_(0, 256)
    buf.actions.random_(0, 6)
    obs = buf.obs[0]

    def forwards():
        with torch.inference_mode():
            for _ in range(NUM_STEPS + 1):
                model(obs)

    def update():
        a2c_update(model, opt, buf, 0.99, None, 0.5, 0.01, 0.5)

    return _time(forwards, repeats), _time(update, repeats)


def _time(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def sb3_a2c(updates: int, warmup: int, threads: int) -> float:
    import ale_py  # noqa: F401
    from stable_baselines3 import A2C
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from stable_baselines3.common.vec_env import VecFrameStack

    class GalaTorso(BaseFeaturesExtractor):
        """galakit's AtariActorCritic torso (SB3 scales uint8 images by 1/255 itself)."""

        def __init__(self, observation_space, features_dim: int = 512):
            super().__init__(observation_space, features_dim)
            self.torso = AtariActorCritic(1).torso

        def forward(self, obs):
            return self.torso(obs)

    class Stamps(BaseCallback):
        def __init__(self):
            super().__init__()
            self.stamps: list[tuple[int, float]] = []

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            self.stamps.append((self.num_timesteps, time.perf_counter()))

    torch.set_num_threads(threads)
    env = VecFrameStack(make_atari_env(ENV, n_envs=NUM_ENVS, seed=0), n_stack=4)
    policy_kwargs = dict(features_extractor_class=GalaTorso, net_arch=dict(pi=[], vf=[]),
                         optimizer_kwargs=dict(alpha=0.99, eps=1e-5, weight_decay=0))
    model = A2C("CnnPolicy", env, n_steps=NUM_STEPS, ent_coef=0.01, vf_coef=0.5, policy_kwargs=policy_kwargs,
                device="cpu", seed=0)
    stamps = Stamps()
    model.learn(total_timesteps=(updates + warmup + 1) * NUM_ENVS * NUM_STEPS, callback=stamps)
    env.close()
    return rate(stamps.stamps, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=300, help="Timed updates per training loop.")
    parser.add_argument("--warmup", type=int, default=30, help="Untimed updates first.")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (both libraries).")
    parser.add_argument("--skip-sb3", action="store_true", help="Do not run Stable-Baselines3.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    # This VM's speed drifts by tens of percent over minutes: interleave the measurements and average them.
    env_sps, env_s = bare_env(steps=400)
    fwd_s, upd_s = parts_alone(repeats=30)
    ours = [galakit_a2c(args.updates, args.warmup, args.threads)]
    sb3 = [] if args.skip_sb3 else [sb3_a2c(args.updates, args.warmup, args.threads)]
    ours.append(galakit_a2c(args.updates, args.warmup, args.threads))
    env_sps2, env_s2 = bare_env(steps=400)
    fwd_s2, upd_s2 = parts_alone(repeats=30)
    env_sps, env_s, fwd_s, upd_s = [(a + b) / 2 for a, b in
                                    ((env_sps, env_sps2), (env_s, env_s2), (fwd_s, fwd_s2), (upd_s, upd_s2))]
    rate = sum(ours) / len(ours)
    loop_s = NUM_ENVS * NUM_STEPS / rate
    limit_s = env_s + fwd_s + upd_s
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} torch threads; "
          f"{ENV}, {NUM_ENVS} envs × {NUM_STEPS} steps; each number is the mean of two measurements")
    print(f"bare native vector env, random actions : {env_sps:8.0f} steps/s")
    print(f"galakit A2C, full loop                 : {rate:8.0f} steps/s  ({4 * rate:.0f} frames/s; "
          f"runs: {ours[0]:.0f}, {ours[1]:.0f})")
    print("parts alone, per update (80 steps)     : "
          f"env {1e3 * env_s:.1f} ms + forward {1e3 * fwd_s:.1f} ms + update {1e3 * upd_s:.1f} ms "
          f"= {1e3 * limit_s:.1f} ms")
    print(f"loop time per update                   : {1e3 * loop_s:.1f} ms  "
          f"-> parts' limit / loop = {limit_s / loop_s:.2f} (target >= 0.85)")
    if sb3:
        print(f"Stable-Baselines3 A2C, same network    : {sb3[0]:8.0f} steps/s  ({4 * sb3[0]:.0f} frames/s)")
        print(f"galakit / SB3                          : {rate / sb3[0]:.2f}x (target >= 1.3)")


if __name__ == "__main__":
    main()
