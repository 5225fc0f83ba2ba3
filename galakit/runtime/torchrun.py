"""Learners that ``torchrun`` starts, on one machine or many: ``galakit train`` run under torchrun is one learner.

torchrun is the launcher here: it starts one process per learner, its rendezvous gives each its rank, and its
agent stops the job when a learner fails (``--max-restarts`` restarts it, continuing from the checkpoints). So a
torchrun learner reports by printing, and learner 0 takes the ε-ball readings (``RelayBoard``).
"""

from __future__ import annotations

import os
from typing import Any

import torch.distributed as dist

from galakit.config import Config
from galakit.io import checkpoint as ckpt
from galakit.io.observers import Observer
from galakit.rl.learner import LearnerContext
from galakit.runtime.diagnostics import ConsensusRecorder, RelayBoard, describe
from galakit.runtime.worker import join_process_group, reference_model, train_learner


def torchrun_environment() -> tuple[int, int] | None:
    """(rank, world size) when this process was started by torchrun, else None."""
    if "TORCHELASTIC_RUN_ID" in os.environ or {"RANK", "WORLD_SIZE", "MASTER_ADDR"} <= set(os.environ):
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return None


def torchrun_config(cfg: Config, world_size: int) -> Config:
    """The config of one learner of a torchrun job. Every rank must agree on the run directory: by default it is
    named after the job (``--rdzv_id``), not the clock. A new job refuses a directory that holds another run; each
    rank checks before the rendezvous, so before any learner of this job has written there."""
    if cfg.run_dir is None:
        job = os.environ.get("TORCHELASTIC_RUN_ID", "job")
        cfg = cfg.replace(run_dir=f"runs/{cfg.env_id.replace('/', '_')}__{cfg.algo}__{cfg.seed}__{job}")
    if cfg.resume is None:
        ckpt.check_new_run_dir(cfg.run_dir)
    return cfg.replace(num_learners=world_size)


def torchrun_worker(rank: int, world_size: int, cfg: Config, init_method: str = "env://") -> None:
    """One learner of a torchrun job: join the job's group, train, save the consensus model, print a summary."""
    try:
        group = join_process_group(rank, world_size, cfg, init_method, gossip_in_memory=False)
        board = relay_board(cfg, rank, world_size) if cfg.diag_interval and world_size > 1 else None
        ctx = LearnerContext(rank, world_size, board=board, gossip_group=group)
        metrics, _ = train_learner(cfg, ctx, [RowPrinter()])
        if board is not None:
            board.close()
            if board.recorder is not None and board.recorder.readings:
                print(describe(board.recorder.readings[-1]), flush=True)
        print(f"learner {rank}: {metrics.summary()}; checkpoint {metrics.checkpoint}", flush=True)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def relay_board(cfg: Config, rank: int, world_size: int) -> RelayBoard:
    """The diagnostics board of a torchrun job (every rank calls it: it creates a process group)."""
    group = dist.new_group(backend="gloo")
    dim = sum(p.numel() for p in reference_model(cfg).parameters())
    recorder = ConsensusRecorder.for_run(cfg, cfg.run_dir) if rank == 0 else None
    return RelayBoard(rank, world_size, dim, group, recorder)


class RowPrinter(Observer):
    """A torchrun learner's progress: one line per progress row, prefixed with its rank (torchrun's own log
    prefixes tell the machines apart)."""

    def on_update(self, row: dict[str, Any]) -> None:
        print(f"learner {row['rank']} step {row['global_step']}: return {row['episodic_return_mean']:.2f}, "
              f"SPS {row['SPS']:.0f}", flush=True)
