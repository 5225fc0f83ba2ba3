"""Checkpoints: written atomically (a crash keeps the last good one), found again by run directory.

A checkpoint is a dict saved with ``torch.save``: the config, the update counter, the model and optimizer state,
every random number generator, the current observations and (when the simulators can be pickled, as gymnasium's
classic-control ones can) the simulators themselves, so that a resumed run continues exactly.
"""

from __future__ import annotations

import os
import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT_VERSION = 1
_NAME = re.compile(r"^ckpt_(\d+)\.pt$")


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, fsync it, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(state: dict[str, Any], directory: str | Path, global_step: int, keep: int = 3) -> Path:
    """Write ``ckpt_<global_step>.pt`` atomically into ``directory`` and keep only the ``keep`` newest."""
    directory = Path(directory)
    path = directory / f"ckpt_{global_step:012d}.pt"
    atomic_write_bytes(path, lambda f: torch.save({"format_version": FORMAT_VERSION, **state}, f))
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Checkpoint files in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _NAME.match(p.name))


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or the newest one in a run directory (or its ``checkpoints/`` folder)."""
    path = Path(path)
    if path.is_file():
        return path
    for directory in (path / "checkpoints", path):
        found = list_checkpoints(directory)
        if found:
            return found[-1]
    raise FileNotFoundError(f"resume/checkpoint: no checkpoint file at {str(path)!r} "
                            "(expected a ckpt_*.pt file or a run directory holding checkpoints/)")


RUN_FILES = ("progress.csv", "episodes.csv", "consensus.csv")


def previous_run(directory: str | Path) -> Path | None:
    """A log or checkpoint that an earlier run left in ``directory`` (or its ``learner_<rank>/`` folders), or None."""
    directory = Path(directory)
    for folder in [directory, *sorted(directory.glob("learner_*"))]:
        found = [folder / name for name in RUN_FILES if (folder / name).exists()]
        found += list_checkpoints(folder / "checkpoints") + list_checkpoints(folder / "consensus")
        if found:
            return found[0]
    return None


def check_new_run_dir(directory: str | Path) -> None:
    """A new run (not a resumed one) gets a directory of its own: in another run's, the logs would mix and the
    pruning of old checkpoints (by step) could delete the new run's."""
    found = previous_run(directory)
    if found is not None:
        raise ValueError(f"run_dir: {str(directory)!r} already holds a run ({found}); continue it with "
                         f"resume={str(directory)!r} (--resume), or give another run_dir (--run-dir); left unset, "
                         "each run gets a new runs/<run_name> (under torchrun, one named after --rdzv_id)")


def new_run_dir(run_name: str, root: str | Path = "runs") -> Path:
    """Create and return ``root/run_name``, or ``root/run_name_2``, ``_3``, … when that exists (two runs started
    in the same second get the same default name; creating the directory claims it)."""
    Path(root).mkdir(parents=True, exist_ok=True)
    path, k = Path(root) / run_name, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            k += 1
            path = Path(root) / f"{run_name}_{k}"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = find_checkpoint(path)
    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"checkpoint {str(path)!r}: not a galakit checkpoint of format {FORMAT_VERSION}")
    state["path"] = str(path)
    return state


def rng_state() -> dict[str, Any]:
    """Every generator a run draws from: torch (CPU and CUDA), numpy's global one, Python's."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def env_state(env) -> bytes | None:
    """The simulators pickled, or None when they cannot be (the native ALE vector env lives in C++)."""
    try:
        return pickle.dumps(env)
    except Exception:
        return None
