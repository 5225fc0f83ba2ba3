"""Inside a learner process: join the process group, train one ``Learner``, save the consensus model.

Two entry points share one core (``train_learner``): ``learner_process`` for the learners ``Run`` spawns (they
report through a queue to the supervisor), and ``galakit.runtime.torchrun.torchrun_worker`` for those torchrun
starts, on any machines (they print, and learner 0 takes the ε-ball readings).
"""

from __future__ import annotations

import os
import signal
import socket
import traceback
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from galakit.config import Config
from galakit.io.checkpoint import LearnerState
from galakit.io.metrics import Metrics
from galakit.io.observers import Observer
from galakit.rl.envs import build_env
from galakit.rl.learner import Learner, LearnerContext
from galakit.rl.models import initial_model
from galakit.runtime import lifeline


# -- the shared core
def join_process_group(rank: int, world_size: int, cfg: Config, init_method: str, gossip_in_memory: bool):
    """Join the run's gloo group; return the group gossip messages travel on (GALA over gloo), else None.
    Every learner creates the same groups in the same order (``torch.distributed``'s rule)."""
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world_size,
                            timeout=timedelta(minutes=10))
    return dist.new_group(backend="gloo") if cfg.algo == "gala" and not gossip_in_memory else None


def train_learner(cfg: Config, ctx: LearnerContext, observers: list[Observer]) -> tuple[Metrics, str | None]:
    """Build learner ``ctx.rank``, wait until every learner is built, train it to the end, then save the
    learners' average (every learner calls this: the average is an all-reduce, after which every learner has
    finished training). Returns its ``Metrics`` and the consensus checkpoint's path (learner 0 of a run of
    several; else None)."""
    learner = Learner(cfg, observers, ctx)
    try:
        if ctx.world_size > 1 and dist.is_initialized():
            # Start together, as the official code does: building simulators takes seconds and more under load,
            # and a learner that started early would train alone (nobody to gossip with) for that long.
            dist.barrier()
        metrics = learner.run()
    finally:
        learner.close()
    return metrics, save_consensus(learner, ctx.shared)


def save_consensus(learner: Learner, shared) -> str | None:
    """The learners' average parameters θ̄ (A3C: the shared model), saved by rank 0 as a checkpoint that
    ``galakit evaluate`` scores like any other. Every learner must call it (one all-reduce)."""
    world_size = learner.ctx.world_size
    if world_size == 1:
        return None
    model = shared.model if shared is not None else learner.model
    theta = torch.nn.utils.parameters_to_vector(model.parameters()).detach().cpu()
    if shared is None:
        dist.all_reduce(theta)
        theta /= world_size
    if learner.ctx.rank != 0:
        return None
    torch.nn.utils.vector_to_parameters(theta.to(learner.device), model.parameters())
    one = learner.cfg.replace(num_learners=1, algo="a2c", resume=None, slow_learners=(), topology="ring", peers=1)
    state = LearnerState(config=one.to_dict(),
                         update=learner.update, global_step=learner.global_step * world_size,
                         model=model.state_dict(), consensus_of=world_size)
    return str(state.save(learner.run_dir.parent / "consensus"))


def reference_model(cfg: Config) -> torch.nn.Module:
    """The run's initial model (the same on every learner), built from one simulator's spaces."""
    env = build_env(cfg.replace(num_envs=1), num_threads=1)
    model = initial_model(cfg, 0, env.single_observation_space.shape, int(env.single_action_space.n))
    env.close()
    return model


# -- a learner that Run spawned
class QueueRelay(Observer):
    """A spawned learner's observer: its episodes and rows go to the supervisor's queue, episodes first (so the
    supervisor's observers see them in the learner's order)."""

    def __init__(self, events, rank: int):
        self.events, self.rank = events, rank
        self.episodes: list[Any] = []

    def on_episode(self, episode) -> None:
        self.episodes.append(episode)

    def on_update(self, row: dict[str, Any]) -> None:
        self._flush()
        self.events.put(("row", self.rank, row))

    def on_end(self, metrics: Metrics) -> None:
        self._flush()  # games that ended after the last row (a stopped run)

    def _flush(self) -> None:
        if self.episodes:
            self.events.put(("episodes", self.rank, self.episodes))
            self.episodes = []


def learner_process(parent_pid: int, rank: int, world_size: int, cfg: Config, init_method: str, events, stop,
                    shared=None, board=None, slots=None, heartbeats=None) -> None:
    """Entry point of a learner process that ``Run`` spawned: die with the parent (armed already at
    ``import galakit``; again here for ``forkserver``, whose children import galakit before they fork), keep
    gloo on the loopback interface, ignore Ctrl-C (the parent's to handle), train, and report to the queue."""
    lifeline.die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    events.put(("started", rank, None))  # our arguments are unpickled: the semaphores' names may go
    os.environ["GLOO_SOCKET_IFNAME"] = loopback_interface()
    try:
        group = join_process_group(rank, world_size, cfg, init_method, gossip_in_memory=slots is not None)
        ctx = LearnerContext(rank, world_size, stop, shared, board, group, slots, heartbeats)
        metrics, consensus = train_learner(cfg, ctx, [QueueRelay(events, rank)])
        events.put(("done", rank, {"checkpoint": metrics.checkpoint, "consensus": consensus}))
    except BaseException:
        events.put(("error", rank, traceback.format_exc()))
        events.close()
        events.join_thread()
        os._exit(1)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def loopback_interface() -> str:
    """The name of the loopback network interface ('lo' on Linux), for gloo's sockets."""
    names = [name for _, name in socket.if_nameindex()]
    return next((name for name in names if name.startswith("lo")), "lo")
