"""What many tests share: the tiny config they train, the learners' parameters before and after, the torchrun
command. ``tests/conftest.py`` offers them as fixtures too; test modules may import them (tests/ is on sys.path)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from galakit.config import Config
from galakit.io.checkpoint import list_checkpoints, load_checkpoint
from galakit.rl.models import initial_model

ROOT = Path(__file__).resolve().parent.parent


def tiny_config(where: str | Path, **fields) -> Config:
    """CartPole, 2 simulators × 5 steps, nothing shown, no TensorBoard, no periodic checkpoint; the run writes to
    ``<where>/run``. ``fields`` override any of it."""
    base = dict(env_id="CartPole-v1", num_envs=2, num_steps=5, run_dir=str(Path(where) / "run"), progress=False,
                tensorboard=False, log_interval=10, checkpoint_interval=0, entropy_coef=0.0)
    return Config(**{**base, **fields})


def final_params(run_dir: str | Path, n: int) -> torch.Tensor:
    """(n, D): each learner's parameters in its newest checkpoint (``<run_dir>/learner_<r>/checkpoints``)."""
    rows = []
    for rank in range(n):
        state = load_checkpoint(list_checkpoints(f"{run_dir}/learner_{rank}/checkpoints")[-1])
        rows.append(torch.cat([p.flatten() for p in state["model"].values()]))
    return torch.stack(rows)


def initial_params(cfg: Config, n: int | None = None) -> torch.Tensor:
    """(n, D): each learner's θ_0 before training (CartPole: 4 observations, 2 actions)."""
    n = cfg.num_learners if n is None else n
    return torch.stack([torch.nn.utils.parameters_to_vector(initial_model(cfg, r, (4,), 2).parameters())
                        for r in range(n)]).detach()


def torchrun_command(*args: str, nproc: int = 2) -> list[str]:
    """``python -m torch.distributed.run`` of ``nproc`` local learners on loopback, any free port, then ``args``
    (e.g. ``"-m", "galakit.cli", "train", ...``)."""
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
            "--master_port=0", "--rdzv_backend=c10d", "--rdzv_endpoint=127.0.0.1:0", *args]


def load_solution(name: str):
    """The reference solution ``exercises/solutions/<name>.py`` as a module (its name starts with a digit, as its
    notebook's does, so it is loaded from its path rather than imported)."""
    import importlib.util

    path = ROOT / "exercises" / "solutions" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"solution_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hint_of(result) -> str:
    """The hint of a failed exercise check (``galakit.exercises.checking.Result``): what a test asserts on."""
    assert result.status == "failed" and "hint: " in result.message, result.message
    return result.message.split("hint: ", 1)[1]


def default_sigint() -> None:
    """``preexec_fn`` of a test's child that must stop on SIGINT: a shell that starts a job in the background
    (``cmd &`` without job control) gives it SIGINT ignored, its children inherit that, and Python keeps it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
