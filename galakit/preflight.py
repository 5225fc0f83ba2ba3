"""Checks of a config against the outside world, run in the caller's process before any learner starts.

``Config`` checks what a value can be at all; ``preflight`` checks what it can be here: the environment id
(registered, discrete actions), the device, the paths, and the run being resumed (same environment and
architecture, same number of learners). It reads, never writes, and starts no process; a failure is a
``ValueError`` in the one format ``field: got X (why); accepted: Y``.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from galakit.config import Config
from galakit.io import checkpoint as ckpt
from galakit.validation import fail

_RESUMABLE = ("a ckpt_*.pt file, or a run directory holding checkpoints/ (learner_<rank>/checkpoints/ for a run "
              "of several learners)")


def preflight(cfg: Config) -> None:
    """Raise ``ValueError`` naming the first field of ``cfg`` that cannot work on this machine."""
    check_env_id(cfg.env_id)
    check_device(cfg.device)
    check_run_dir(cfg.run_dir, new_run=cfg.resume is None)
    if cfg.resume is not None:
        check_resume(cfg)


# -- the environment
def check_env_id(env_id: str) -> None:
    """An ALE game, or a gymnasium id whose action space is ``Discrete`` (A2C's policy is a softmax over actions).

    A gymnasium id is built once (one env, not the vector) to read its action space.
    """
    import gymnasium as gym

    from galakit.rl.envs import atari_rom_id  # imports ale_py, which registers the ALE/... ids

    if atari_rom_id(env_id) is not None:
        return  # every ALE game has a discrete action set
    if ":" not in env_id and env_id not in gym.envs.registry:  # "module:Id" ids register on import
        fail("env_id", env_id, "an ALE game ('ALE/Pong-v5', 'PongNoFrameskip-v4') or an id in "
             f"gymnasium.envs.registry ('CartPole-v1'){_did_you_mean(env_id)}", "not registered")
    space = _action_space(env_id)
    if not isinstance(space, gym.spaces.Discrete):
        kind = "continuous" if isinstance(space, gym.spaces.Box) else type(space).__name__
        fail("env_id", env_id, "environments with discrete actions", f"{kind} actions")


def _did_you_mean(env_id: str) -> str:
    import gymnasium as gym
    from ale_py import roms

    names = set(gym.envs.registry) | {rom.title().replace("_", "") for rom in roms.get_all_rom_ids()}
    close = difflib.get_close_matches(env_id, sorted(names), n=5, cutoff=0.6)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def _action_space(env_id: str) -> Any:
    import gymnasium as gym

    try:
        env = gym.make(env_id)
    except (gym.error.Error, ImportError) as err:  # e.g. a missing dependency (box2d, mujoco)
        fail("env_id", env_id, "an environment gymnasium can build here", f"{type(err).__name__}: {err}")
    try:
        return env.action_space
    finally:
        env.close()


# -- the machine
def check_device(device: str) -> None:
    """``cuda`` / ``cuda:N`` needs CUDA here, and N among this machine's GPUs."""
    if not device.startswith("cuda"):
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        fail("device", device, "'auto' or 'cpu'", "CUDA is not available here")
    if int(device.partition(":")[2] or 0) >= count:
        fail("device", device, f"'auto', 'cpu', 'cuda' or 'cuda:0' … 'cuda:{count - 1}'", f"{count} GPU(s) here")


def check_run_dir(run_dir: str | None, new_run: bool = True) -> None:
    """``run_dir`` must be (or become) a directory: no file at it or above it; a new run's holds no other run."""
    if run_dir is None:
        return
    path = Path(run_dir)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))  # the deepest that exists
    if not existing.is_dir():
        fail("run_dir", str(run_dir), "a directory, or a path where one can be created",
             "a file" if existing == path else f"{str(existing)!r} is a file")
    if new_run and path.is_dir():  # the logs would mix, and pruning old checkpoints could delete the new run's
        ckpt.check_new_run_dir(path)


# -- the run being resumed
def check_resume(cfg: Config) -> None:
    """The resumed checkpoints exist, are as many as ``num_learners`` (for a run directory), and were trained
    with the same environment and architecture (``galakit.io.checkpoint.RESUME_MUST_MATCH``)."""
    path = Path(cfg.resume)
    if not path.exists():
        fail("resume", str(cfg.resume), _RESUMABLE, "no such file or directory")
    saved = saved_learners(path)
    if saved is not None and saved != cfg.num_learners:
        dirs = f"learner_0 … learner_{saved - 1}" if saved > 1 else "its checkpoints/"
        fail("num_learners", cfg.num_learners, f"{saved}, as many as the run in {str(path)!r} has ({dirs}): "
             "each learner continues its own checkpoint")
    for rank in range(1, saved or 1):  # learner 0's is read below
        _newest(path / f"learner_{rank}")
    check_same_run(cfg, resumed_state(path))


def check_same_run(cfg: Config, state: dict[str, Any]) -> None:
    """A run continues with the environment and the architecture its checkpoint was trained with."""
    theirs = state["config"]
    for name in ckpt.RESUME_MUST_MATCH:
        ours = getattr(cfg, name)
        if ours != (tuple(theirs[name]) if isinstance(ours, tuple) else theirs[name]):
            fail(name, ours, f"{theirs[name]!r}, as in the checkpoint {state['path']!r} (to continue a run, "
                 f"{', '.join(ckpt.RESUME_MUST_MATCH)} must match)")


def saved_learners(path: Path) -> int | None:
    """How many learners the run in directory ``path`` had (k for learner_0 … learner_{k-1}, 1 for a run of one),
    or None for a checkpoint file (any number of learners may start from one)."""
    if (path / "learner_0").is_dir():
        k = 1
        while (path / f"learner_{k}").is_dir():
            k += 1
        return k
    return 1 if (path / "checkpoints").is_dir() else None


def resumed_state(path: str | Path) -> dict[str, Any]:
    """The checkpoint that resuming from ``path`` continues: the file itself, a run directory's newest, or learner
    0's newest for a run of several learners (they share one config)."""
    path = Path(path)
    if (path / "learner_0").is_dir():
        path = path / "learner_0"
    _newest(path)
    return ckpt.load_checkpoint(path)


def _newest(path: Path) -> Path:
    try:
        return ckpt.find_checkpoint(path)
    except FileNotFoundError:
        fail("resume", str(path), _RESUMABLE, "no checkpoint in it")
