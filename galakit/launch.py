"""Start runs: ``galakit.train(config)`` from a notebook cell or a script, and learner processes.

One learner of plain A2C trains in the calling process. Several learners (``num_learners > 1``, or
``background=True``) each get an OS process, started with ``spawn`` (or ``forkserver``) from the entry point
``worker_main`` in this module, and meet in a ``torch.distributed`` gloo process group on 127.0.0.1. Under
``torchrun`` the same entry point runs, one process per learner, across machines (``galakit train`` detects it).

Shutdown is the launcher's job. Learners ignore SIGINT and die with their parent (``PR_SET_PDEATHSIG``); a
Ctrl-C / kernel interrupt in the parent, ``Run.stop()``, the end of the interpreter, or a learner that raises
stops every learner: first by asking them to finish their update and save, then by terminating them.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import queue as queue_module
import signal
import socket
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from galakit import checkpoint as ckpt
from galakit.a2c import Episode
from galakit.config import Config
from galakit.coupling import SharedState, gossip_schedule, shared_slots
from galakit.diagnostics import ConsensusRecorder, DiagnosticsBoard, RelayBoard, describe
from galakit.learner import Learner, LearnerContext, build_env, initial_model
from galakit.metrics import Metrics
from galakit.transport import SharedSlots

Callback = Callable[[dict[str, Any]], None]


class LearnerError(RuntimeError):
    """A learner process failed; the message names its rank and carries its traceback."""

    def __init__(self, rank: int, details: str):
        super().__init__(f"learner {rank} failed:\n{details}")
        self.rank = rank


def train(config: Config | None = None, callback: Callback | None = None, background: bool = False,
          **overrides: Any) -> Metrics | Run:
    """Train with ``config`` (default ``Config()``), fields optionally overridden by keyword.

    Blocks with live progress and returns the run's ``Metrics`` (every finished game, every progress row, and
    consensus readings). ``background=True`` returns a ``Run`` handle at once (``.wait()``, ``.stop()``,
    ``.metrics``). ``callback(row)`` gets each progress row as it arrives (rows carry the learner's ``rank``).
    """
    config = config or Config()
    if not isinstance(config, Config):
        raise ValueError(f"config: got {type(config).__name__}; accepted: a galakit.Config")
    if overrides:
        config = config.replace(**overrides)
    if config.num_learners == 1 and not background:
        learner = Learner(config, callback=callback)
        try:
            return learner.run()
        finally:
            learner.close()
    run = Run(config, callback=callback).start()
    if background:
        return run
    try:
        return run.wait()
    except BaseException:  # KeyboardInterrupt included: no learner outlives the cell
        run.stop()
        raise


# -- the learner process
def worker_main(rank: int, world_size: int, cfg: Config, init_method: str, events=None, stop=None, shared=None,
                board=None, slots=None) -> None:
    """Entry point of one learner process (spawned by ``Run`` or started by torchrun)."""
    if events is not None or "TORCHELASTIC_RUN_ID" in os.environ:  # started by a Run, or by torchrun's agent
        _die_with_parent()
    if events is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world_size,
                                timeout=timedelta(minutes=10))
        gossip_group = dist.new_group(backend="gloo") if cfg.algo == "gala" and slots is None else None
        if events is None and cfg.diag_interval and world_size > 1:  # torchrun: no launcher to read a shared board
            board = relay_board(cfg, rank, world_size)
        context = LearnerContext(rank, world_size, stop, shared, board, gossip_group, slots)
        report = (lambda row: events.put(("row", rank, row))) if events is not None else _print_row
        learner = Learner(cfg, callback=report, context=context)
        metrics = learner.run()
        learner.close()
        consensus = save_consensus(learner, shared)  # an all-reduce: every learner has finished training after it
        if isinstance(board, RelayBoard):
            board.close()
            if board.recorder is not None and board.recorder.readings:
                print(describe(board.recorder.readings[-1]), flush=True)
        if events is not None:
            events.put(("done", rank, {"checkpoint": metrics.checkpoint, "consensus": consensus}))
        else:
            print(f"learner {rank}: {metrics.summary()}; checkpoint {metrics.checkpoint}", flush=True)
    except BaseException:
        if events is None:
            raise
        events.put(("error", rank, traceback.format_exc()))
        events.close()
        events.join_thread()
        os._exit(1)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def relay_board(cfg: Config, rank: int, world_size: int) -> RelayBoard:
    """The diagnostics board of a torchrun job (every rank calls it: it creates a process group)."""
    group = dist.new_group(backend="gloo")
    dim = sum(p.numel() for p in reference_model(cfg).parameters())
    recorder = ConsensusRecorder(_topology_rho(cfg), cfg.run_dir, cfg.tensorboard) if rank == 0 else None
    return RelayBoard(rank, world_size, dim, group, recorder)


def reference_model(cfg: Config) -> torch.nn.Module:
    """The run's initial model (the same on every learner), built from one simulator's spaces."""
    env = build_env(cfg.replace(num_envs=1), num_threads=1)
    model = initial_model(cfg, 0, env.single_observation_space.shape, int(env.single_action_space.n))
    env.close()
    return model


def save_consensus(learner: Learner, shared: SharedState | None) -> str | None:
    """The learners' average parameters θ̄ (A3C: the shared model), saved by rank 0 as a checkpoint that
    ``galakit evaluate`` scores like any other. Every learner must call it (one all-reduce)."""
    if learner.ctx.world_size == 1:
        return None
    model = shared.model if shared is not None else learner.model
    theta = torch.nn.utils.parameters_to_vector(model.parameters()).detach().cpu()
    if shared is None:
        dist.all_reduce(theta)
        theta /= learner.ctx.world_size
    if learner.ctx.rank != 0:
        return None
    torch.nn.utils.vector_to_parameters(theta.to(learner.device), model.parameters())
    state = {"config": learner.cfg.replace(num_learners=1, algo="a2c", resume=None).to_dict(),
             "update": learner.update, "global_step": learner.global_step * learner.ctx.world_size,
             "model": model.state_dict(), "consensus_of": learner.ctx.world_size}
    path = ckpt.save_checkpoint(state, learner.run_dir.parent / "consensus", state["global_step"])
    return str(path)


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the parent dies, even by SIGKILL, so no learner is left orphaned."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _print_row(row: dict[str, Any]) -> None:
    print(f"learner {row['rank']} step {row['global_step']}: return {row['episodic_return_mean']:.2f}, "
          f"SPS {row['SPS']:.0f}", flush=True)


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


def torchrun_environment() -> tuple[int, int] | None:
    """(rank, world size) when this process was started by torchrun, else None."""
    if "TORCHELASTIC_RUN_ID" in os.environ or {"RANK", "WORLD_SIZE", "MASTER_ADDR"} <= set(os.environ):
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return None


# -- the launcher side
class Run:
    """A run of learner processes. Use it as a handle: ``.wait()``, ``.stop()``, ``.metrics`` (live),
    ``.latest`` (each learner's newest progress row), ``.consensus`` (live diagnostics), ``.done``. Also a context
    manager that stops the run on exit."""

    def __init__(self, cfg: Config, callback: Callback | None = None):
        self.cfg, self.callback = cfg, callback
        run_dir = cfg.run_dir or (cfg.resume if cfg.resume and os.path.isdir(cfg.resume) else None)
        if run_dir and not cfg.resume:
            ckpt.check_new_run_dir(run_dir)  # here, before any process starts
        self.metrics = Metrics(run_dir=str(run_dir or ckpt.new_run_dir(cfg.resolved_run_name())))
        self.cfg = cfg.replace(run_dir=self.metrics.run_dir)  # every learner must agree on it
        self.error: LearnerError | None = None
        self._latest: dict[int, dict[str, Any]] = {}
        self._finished: set[int] = set()
        self._procs: list[Any] = []
        self._lock = threading.Lock()

    def start(self) -> Run:
        cfg, n = self.cfg, self.cfg.num_learners
        ctx = mp.get_context(cfg.start_method)
        self._events, self._stop = ctx.Queue(), ctx.Event()
        # on self: the parent holds what it shares (locks included) until the learners are done with it
        shared, self._board, self._slots = self._shared_state(ctx)
        self._recorder = (ConsensusRecorder(_topology_rho(cfg), self.metrics.run_dir, cfg.tensorboard)
                          if self._board is not None else None)
        init_method = f"tcp://127.0.0.1:{_free_port()}"
        for rank in range(n):
            proc = ctx.Process(target=worker_main, name=f"galakit-learner-{rank}",
                               args=(rank, n, cfg, init_method, self._events, self._stop, shared, self._board,
                                     self._slots))
            proc.start()
            self._procs.append(proc)
        _RUNNING.add(self)
        self._bar = _progress_bar(cfg)
        self._monitor = threading.Thread(target=self._watch, name="galakit-monitor", daemon=True)
        self._monitor.start()
        return self

    def _shared_state(self, ctx) -> tuple[SharedState | None, DiagnosticsBoard | None, SharedSlots | None]:
        """What the learners share in memory (A3C's model, the diagnostics board, GALA's message slots) needs
        the parameter count: build the model once here."""
        cfg = self.cfg
        gossip_in_memory = (cfg.algo == "gala" and cfg.num_learners > 1
                            and cfg.gossip_transport in ("auto", "shared_memory"))
        if cfg.algo != "a3c" and not cfg.diag_interval and not gossip_in_memory:
            return None, None, None
        model = reference_model(cfg)
        shared = SharedState(model) if cfg.algo == "a3c" else None
        dim = sum(p.numel() for p in model.parameters())
        board = DiagnosticsBoard(cfg.num_learners, dim, ctx) if cfg.diag_interval else None
        slots = shared_slots(gossip_schedule(cfg, cfg.num_learners), dim, ctx) if gossip_in_memory else None
        if slots is None and cfg.gossip_transport == "shared_memory":
            raise ValueError("gossip_transport: 'shared_memory' needs room in /dev/shm for one parameter vector per "
                             "edge of the topology, and there is not enough; accepted here: 'gloo', 'auto'")
        return shared, board, slots

    # -- watching
    def _watch(self) -> None:
        while True:
            finished = self.done  # read before draining: what they sent before exiting is in the queue
            until = time.monotonic() + 0.2
            try:
                while finished or time.monotonic() < until:
                    self._handle(*self._events.get(timeout=0.1))
            except queue_module.Empty:
                pass
            reading = self._recorder.record(self._board, final=finished) if self._recorder is not None else None
            if reading is not None:
                with self._lock:
                    self.metrics.consensus.append(reading)
            if finished:
                break
            self._check_alive()
        self._slots = None  # every learner has exited: free the shared gossip slots
        if self._recorder is not None:
            self._recorder.close()
        if self._bar is not None:
            self._bar.close()

    def _handle(self, kind: str, rank: int, payload: Any) -> None:
        if kind == "row":
            episodes = [Episode(*e, rank=rank) for e in payload.pop("new_episodes")]
            with self._lock:
                self.metrics.episodes += episodes
                self.metrics.progress.append(payload)
                self._latest[rank] = payload
            self._update_bar()
            if self.callback is not None:
                self.callback(payload)
        elif kind == "done":
            self._finished.add(rank)
            self.metrics.checkpoint = payload["consensus"] or self.metrics.checkpoint
        elif kind == "error":
            self.error = LearnerError(rank, payload)
            self._terminate()

    def _check_alive(self) -> None:
        for rank, code in enumerate(self._exitcodes()):
            if code not in (None, 0) and rank not in self._finished and self.error is None:
                time.sleep(0.5)  # its error message may still be in the queue
                if self.error is None and self._events.empty():
                    self.error = LearnerError(rank, f"process exited with code {code} (no traceback)")
                    self._terminate()

    def _update_bar(self) -> None:
        if self._bar is not None:
            self._bar.n = sum(row["global_step"] for row in self._latest.values())
            returns = [self._latest[rank]["episodic_return_mean"] for rank in sorted(self._latest)]
            self._bar.set_postfix(ret=" ".join(f"{r:.1f}" for r in returns), refresh=False)
            self._bar.update(0)

    @property
    def consensus(self) -> list[dict[str, Any]]:
        """The ε-ball readings so far (``diag_interval`` > 0), oldest first; also in ``.metrics.consensus``."""
        with self._lock:
            return list(self.metrics.consensus)

    @property
    def latest(self) -> dict[int, dict[str, Any]]:
        """{rank: that learner's newest progress row} (SPS, returns, losses, gossip counters, phase times)."""
        with self._lock:
            return {rank: dict(row) for rank, row in sorted(self._latest.items())}

    # -- controlling
    @property
    def done(self) -> bool:
        return bool(self._procs) and all(code is not None for code in self._exitcodes())

    def _exitcodes(self) -> list[int | None]:
        # One thread at a time asks the OS (waitpid): two at once can each miss the exit status.
        with self._lock:
            return [p.exitcode for p in self._procs]

    def wait(self, timeout: float | None = None) -> Metrics:
        """Block until every learner has finished; raise ``LearnerError`` if one failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done and self.error is None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run still going after {timeout} s")
            time.sleep(0.05)
        self._monitor.join(timeout=5)
        if self.error is not None:
            self._terminate()
            raise self.error
        self._join(timeout=5)
        return self.metrics

    def stop(self, timeout: float = 10.0) -> Metrics:
        """Ask every learner to finish its update and save, then terminate any still running after ``timeout``."""
        if self._procs:
            self._stop.set()
            self._join(timeout)
            self._terminate()
        return self.metrics

    def _join(self, timeout: float) -> None:
        """Wait for the learners to exit while the monitor keeps draining their queue (a process cannot exit
        before its queued messages are read)."""
        deadline = time.monotonic() + timeout
        while not self.done and time.monotonic() < deadline:
            time.sleep(0.05)

    def _terminate(self) -> None:
        for signal_them in ("terminate", "kill"):
            with self._lock:
                for proc, code in zip(self._procs, [p.exitcode for p in self._procs], strict=True):
                    if code is None:
                        getattr(proc, signal_them)()
            self._join(3)
        _RUNNING.discard(self)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


_RUNNING: weakref.WeakSet[Run] = weakref.WeakSet()


@atexit.register
def _stop_all_runs() -> None:
    for run in list(_RUNNING):
        run.stop(timeout=5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _topology_rho(cfg: Config) -> float | None:
    """ρ of one period of the run's gossip schedule (GALA), 0 for allreduce, None when nothing couples."""
    if cfg.algo == "allreduce":
        return 0.0
    if cfg.algo != "gala" or cfg.num_learners == 1:
        return None
    return gossip_schedule(cfg, cfg.num_learners).rho()


def _progress_bar(cfg: Config):
    if not cfg.progress:
        return None
    from tqdm.auto import tqdm

    total = cfg.num_updates * cfg.batch_size * cfg.num_learners
    return tqdm(total=total, unit="step", desc=f"{cfg.algo} ×{cfg.num_learners} {cfg.env_id}", dynamic_ncols=True)
