"""Live ε-ball diagnostics of a run: how far each learner's parameters are from the learners' average.

Every ``diag_interval`` updates each learner publishes its parameters θ_i (D,) on a board, without ever waiting
for another learner:

* ``DiagnosticsBoard`` (learners that galakit starts): one copy into the learner's row of a shared-memory table,
  under the row's own lock; the launcher reads the table;
* ``RelayBoard`` (torchrun, any machines): the learner posts θ_i to learner 0 on a gloo group of its own (a
  ``GossipChannel``: sender and receiver threads), and a thread of learner 0 reads the newest vector of each.

A ``ConsensusRecorder`` takes a reading each time the slowest learner has published again (and a last one when
the run ends): learners at about the same pace have then all published the same update, so the θ_i it
compares are from one update k, not up to ``diag_interval`` updates apart. It computes, with
``galakit.gossip.consensus``,

    ‖θ_i − θ̄‖ for each learner,   max_ij ‖θ_i − θ_j‖,   and the bound on ‖E‖_F = sqrt(Σ_i ‖θ_i − θ̄‖²)

    ε = e0 + α ρ √n G / (1 − ρ)                       static graph (τ = 1), ρ = ‖W − J‖₂
    ε = e0 + α √n G (τ / (1 − ρ) + τ − 1)             time-varying schedule of period τ, ρ = ‖W_{τ−1}⋯W_0 − J‖₂

where e0 = ‖E_0‖_F is the learners' initial spread (0 when they start from the same θ_0, ``identical_init``), τ
and ρ are the period of the topology's schedule and the contraction of one whole period (``Schedule.period``,
``Schedule.rho``), and α G is the largest local step ‖θ_after − θ_before‖ the learners reported, counted once per
gossip step of the period. (A one-peer exponential graph with n = 8 has ρ = 0 over its τ = 3 steps: the static
formula would read 0.) Each ‖θ_i − θ̄‖ is at most ε and each ‖θ_i − θ_j‖ at most √2 ε. The bound is the standard one
for synchronous gossip (``galakit.gossip.consensus.epsilon_bound``); asynchronous gossip mixes less often, so
read it as a reference line.
Readings go to ``<run_dir>/consensus.csv`` and TensorBoard (``consensus/…``) as well as to ``Metrics.consensus``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from galakit.gossip.consensus import consensus_error, distance_to_average, epsilon_bound, max_pairwise_distance
from galakit.io.checkpoint import resumed_steps
from galakit.io.observers import ConsensusLog, Observer
from galakit.runtime.transport import GossipChannel


class Probe:
    """What a learner of a run reports besides its rows: a heartbeat after each update (for the supervisor's stall
    check, ``galakit.runtime.heartbeat``), and, every ``diag_interval`` updates, its parameters θ_i (D,) and its
    largest local step ‖θ after − θ before‖ (α G of the ε bound) on the diagnostics board.

    The learner calls ``before_step`` / ``after_step`` around its A2C step and ``after_update`` once its update
    (coupling included) is done. Without a board or heartbeats (one learner in the caller's process) every call
    does nothing.
    """

    def __init__(self, rank: int, interval: int, board=None, heartbeats=None):
        self.rank, self.interval, self.board, self.heartbeats = rank, interval, board, heartbeats
        self.max_step_norm = 0.0
        self._before: torch.Tensor | None = None  # θ before the step, (D,), reused at every update
        self._after: torch.Tensor | None = None

    @property
    def measuring(self) -> bool:
        return self.board is not None and self.interval > 0

    def before_step(self, model: torch.nn.Module) -> None:
        if self.measuring:
            self._before = self._flat(model, self._before)

    def after_step(self, model: torch.nn.Module) -> dict[str, float]:
        """{"step_norm": ‖θ after − θ before‖} of the A2C step just taken (empty when not measuring)."""
        if not self.measuring:
            return {}
        step_norm = float(self._before.sub_(self._flat(model, self._after)).norm())
        self.max_step_norm = max(self.max_step_norm, step_norm)
        return {"step_norm": step_norm}

    def after_update(self, model: torch.nn.Module, update: int, final: bool = False) -> None:
        """Beat; publish θ_i every ``interval`` updates, and at the ``final`` update whatever it is."""
        if self.heartbeats is not None and not final:
            self.heartbeats.beat(self.rank)
        if self.measuring and (update % self.interval == 0) != final:
            self._after = self._flat(model, self._after)
            self.board.publish(self.rank, update, self._after, self.max_step_norm)

    @staticmethod
    def _flat(model: torch.nn.Module, out: torch.Tensor | None) -> torch.Tensor:
        from galakit.runtime.coupling import flatten_into

        params = list(model.parameters())
        if out is None:
            out = torch.empty(sum(p.numel() for p in params))
        return flatten_into(params, out)


class DiagnosticsBoard:
    """Rows of the latest published parameters, one per learner, in shared memory (picklable for spawn)."""

    def __init__(self, world_size: int, dim: int, mp_context):
        self.params = torch.zeros(world_size, dim).share_memory_()
        self.updates = torch.full((world_size,), -1, dtype=torch.int64).share_memory_()
        self.step_norms = torch.zeros(world_size, dtype=torch.float64).share_memory_()
        self.locks = [mp_context.Lock() for _ in range(world_size)]

    def publish(self, rank: int, update: int, theta: torch.Tensor, step_norm: float) -> None:
        with self.locks[rank]:
            self.params[rank].copy_(theta)
            self.updates[rank] = update
            self.step_norms[rank] = max(float(self.step_norms[rank]), step_norm)

    def published(self) -> np.ndarray:
        """The update index each learner last published (−1: not yet), (n,)."""
        return self.updates.numpy().copy()

    def snapshot(self) -> tuple[torch.Tensor, np.ndarray, float] | None:
        """(θ (n, D), update index of each row, max step norm), or None until every learner has published."""
        rows = []
        for rank, lock in enumerate(self.locks):
            with lock:
                rows.append(self.params[rank].clone())
        updates = self.updates.numpy().copy()
        if (updates < 0).any():
            return None
        return torch.stack(rows), updates, float(self.step_norms.max())


class RelayBoard:
    """The board of a torchrun job, where there is no launcher process and no memory shared between machines.

    Learner r ≠ 0 posts θ_r to learner 0 through a ``GossipChannel`` on ``group`` (its own gloo group: the
    gossip's receivers never see these messages), whose sender thread does the sending; the push-sum weight slot of
    the message carries the learner's largest local step norm. Learner 0 keeps each learner's newest vector, its
    own included, and a reader thread there plays the launcher's part: every 0.05 s it asks ``recorder`` for a
    reading (taken when the leading learner has published again). Every learner calls ``close`` when it
    finishes; learner 0 then takes the last reading, with every learner's final vector.
    """

    def __init__(self, rank: int, world_size: int, dim: int, group, recorder: ConsensusRecorder | None = None):
        self.rank, self.recorder = rank, recorder
        self.channel = GossipChannel(rank, world_size, dim, policy="latest", group=group)
        if rank != 0:
            return
        self.params = torch.zeros(world_size, dim)
        self.updates = np.full(world_size, -1, dtype=np.int64)
        self.step_norms = np.zeros(world_size)
        self._lock = threading.Lock()  # learner 0's thread writes row 0 while the reader reads every row
        self._done = threading.Event()
        self._error: BaseException | None = None
        if recorder is not None:
            self._reader = threading.Thread(target=self._read, name="galakit-diagnostics", daemon=True)
            self._reader.start()

    def publish(self, rank: int, update: int, theta: torch.Tensor, step_norm: float) -> None:
        if rank != 0:
            self.channel.post(theta, update, destinations=(0,), weight=step_norm)
            return
        with self._lock:
            self._store(0, update, theta, step_norm)

    def published(self) -> np.ndarray:
        with self._lock:
            self._drain()
            return self.updates.copy()

    def snapshot(self) -> tuple[torch.Tensor, np.ndarray, float] | None:
        with self._lock:
            self._drain()
            if (self.updates < 0).any():
                return None
            return self.params.clone(), self.updates.copy(), float(self.step_norms.max())

    def close(self) -> None:
        self.channel.close()  # returns once every learner's last message is in learner 0's mailbox
        if self.recorder is None:
            return
        self._done.set()
        self._reader.join()
        if self._error is not None:
            raise RuntimeError(f"diagnostics of learner 0 failed: {self._error!r}") from self._error
        self.recorder.record(self, final=True)
        self.recorder.close()

    def _read(self) -> None:
        try:
            while not self._done.wait(0.05):
                self.recorder.record(self)
        except BaseException as err:  # raised by close
            self._error = err

    def _drain(self) -> None:
        for j in range(1, len(self.updates)):
            taken = self.channel.mailbox.take_one(j, out=self.params[j])
            if taken is not None:
                step, step_norm = taken
                self._store(j, step, None, step_norm)

    def _store(self, j: int, update: int, theta: torch.Tensor | None, step_norm: float) -> None:
        if theta is not None:
            self.params[j].copy_(theta)
        self.updates[j] = update
        self.step_norms[j] = max(self.step_norms[j], step_norm)


class ConsensusRecorder:
    """Takes readings of a board, logs them to ``<run_dir>/consensus.csv`` and TensorBoard (``ConsensusLog``) and
    hands each to ``observer`` (the run's observers: ``on_consensus``).

    ``rho``: the contraction of one period of the topology's schedule (None: no bound); ``period``: τ, the number
    of gossip steps ``rho`` covers; ``e0``: the initial spread ‖E_0‖_F. `ConsensusRecorder.for_run` reads all three
    off a config.

    A reading costs O(n² D), so it is taken once per ``diag_interval`` of the slowest learner (when the oldest
    published update has moved on), not at every learner's publication: the others have then published the same
    update k, or one ``diag_interval`` later if they run that far ahead (the reading's ``update_min`` and
    ``update_max`` say which). ``final=True`` takes one more if anything was published since the last reading (the
    learners' final parameters).
    """

    def __init__(self, rho: float | None, run_dir: str | Path, tensorboard: bool = True, *, period: int = 1,
                 e0: float = 0.0, observer: Observer | None = None, resumed_at: int | None = None):
        self.rho, self.run_dir, self.tensorboard = rho, Path(run_dir), tensorboard
        self.period, self.e0 = period, e0
        self.readings: list[dict[str, Any]] = []
        self._updates: np.ndarray | None = None  # what the last reading saw
        self._log = ConsensusLog(run_dir, tensorboard, resumed_at=resumed_at)
        self.observer = observer  # gets each reading after the log (the run's observers)

    @classmethod
    def for_run(cls, cfg, run_dir: str | Path, observer: Observer | None = None) -> ConsensusRecorder:
        """The recorder of a run of ``cfg`` (a ``Config``): ρ and τ of its coupling, e0 of its initial models, and
        for a resumed run the update its log is cut at (`resumed_update`)."""
        rho, period = coupling_contraction(cfg)
        return cls(rho, run_dir, cfg.tensorboard, period=period, e0=initial_spread(cfg) if rho is not None else 0.0,
                   observer=observer, resumed_at=resumed_update(cfg))

    def record(self, board: DiagnosticsBoard | RelayBoard, final: bool = False) -> dict[str, Any] | None:
        """The new reading, or None when there is nothing new to read (or some learner has not published yet)."""
        updates, last = board.published(), self._updates
        if last is not None and ((updates == last).all() or (not final and updates.min() <= last.min())):
            return None
        reading = consensus_reading(board, self.rho, self.period, self.e0)
        if reading is None:
            return None
        self._updates = np.asarray(reading["updates"])
        self._log.on_consensus(reading)
        self.readings.append(reading)
        if self.observer is not None:
            self.observer.on_consensus(reading)
        return reading

    def close(self) -> None:
        self._log.on_end(None)


def resumed_update(cfg) -> int | None:
    """The oldest update the learners of a resumed run continue from (each its newest checkpoint's: update =
    global_step / batch_size), or None for a new run. Readings that saw a later update were taken by the run
    that stopped, of models the resumed learners train again."""
    steps = resumed_steps(cfg.resume, cfg.num_learners)
    return min(steps) // cfg.batch_size if steps else None


def coupling_contraction(cfg) -> tuple[float | None, int]:
    """(ρ, τ) of the run's coupling: one period of the GALA schedule; (0, 1) for allreduce, whose average is exact
    at every step; (None, 1) when nothing couples the learners (no bound)."""
    if cfg.algo == "allreduce":
        return 0.0, 1
    if cfg.algo != "gala" or cfg.num_learners == 1:
        return None, 1
    from galakit.runtime.coupling import gossip_schedule  # the runtime's coupling, imported where it is needed

    schedule = gossip_schedule(cfg, cfg.num_learners)
    return schedule.rho(), schedule.period


def initial_spread(cfg) -> float:
    """e0 = ‖E_0‖_F = sqrt(Σ_i ‖θ_i(0) − θ̄(0)‖²) of the learners' initial models: 0 with ``identical_init`` (GALA),
    else computed from the models each learner draws (seed + rank), on one simulator's spaces."""
    if cfg.identical_init or cfg.num_learners == 1:
        return 0.0
    from galakit.rl.envs import build_env
    from galakit.rl.models import initial_model

    env = build_env(cfg.replace(num_envs=1), num_threads=1)
    shape, actions = env.single_observation_space.shape, int(env.single_action_space.n)
    env.close()
    models = [initial_model(cfg, rank, shape, actions) for rank in range(cfg.num_learners)]
    return consensus_error([torch.nn.utils.parameters_to_vector(m.parameters()).detach() for m in models])


def consensus_reading(board: DiagnosticsBoard | RelayBoard, rho: float | None, period: int = 1,
                      e0: float = 0.0) -> dict[str, Any] | None:
    """One reading of the board: distances to the average, max pairwise distance and the ε bound (module
    docstring), with the largest local step reported so far as α G."""
    snap = board.snapshot()
    if snap is None:
        return None
    params, updates, step_norm = snap
    n = params.shape[0]
    bound = None
    if rho is not None and rho < 1:
        bound = epsilon_bound(rho, alpha=1.0, grad_bound=step_norm, n=n, e0=e0, window=period)
    return {"time": time.time(), "updates": updates.tolist(),  # the update each learner's θ_i is from
            "update_min": int(updates.min()), "update_max": int(updates.max()),
            "distance_to_average": distance_to_average(params).tolist(),
            "max_pairwise_distance": max_pairwise_distance(params), "epsilon_bound": bound}


def describe(reading: dict[str, Any]) -> str:
    """One line for a terminal: ``consensus at update k: max distance to the average …, max pairwise …, ε …``."""
    bound = reading["epsilon_bound"]
    return (f"consensus at update {reading['update_max']}: max distance to the average "
            f"{max(reading['distance_to_average']):.4g}, max pairwise {reading['max_pairwise_distance']:.4g}"
            + ("" if bound is None else f", ε bound {bound:.4g}"))
