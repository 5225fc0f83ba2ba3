"""Start runs: ``galakit.train(config)`` from a notebook cell or a script, and learner processes.

One learner of plain A2C trains in the calling process. Several learners (``num_learners > 1``, or
``background=True``) each get an OS process, started with ``spawn`` (or ``forkserver``) from the entry point
``learner_process`` in this module, and meet in a ``torch.distributed`` gloo process group: through a file (no
TCP store listening), with gloo's sockets on the loopback interface. Under ``torchrun`` the shared core,
``worker_main``, runs one process per learner, across machines (``galakit train`` detects it).

Shutdown is the launcher's job. Learners ignore SIGINT and die with their parent (``galakit.runtime.lifeline``); a
Ctrl-C / kernel interrupt in the parent, ``Run.stop()``, the end of the interpreter, or a learner that fails
stops every learner: first by asking them to finish their update and save, then by terminating them. The
supervisor (``Run._watch``) notices a failed learner by its exit status, and a frozen one by its heartbeats.
"""

from __future__ import annotations

import atexit
import os
import queue as queue_module
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import warnings
import weakref
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from galakit.config import Config
from galakit.io import checkpoint as ckpt
from galakit.io.metrics import Metrics
from galakit.io.rundir import claim_run_dir
from galakit.preflight import preflight
from galakit.rl.a2c import Episode
from galakit.rl.learner import Learner, LearnerContext, build_env, initial_model
from galakit.runtime import lifeline
from galakit.runtime.coupling import SharedState, gossip_schedule, shared_slots
from galakit.runtime.diagnostics import ConsensusRecorder, DiagnosticsBoard, RelayBoard, describe
from galakit.runtime.heartbeat import Heartbeats
from galakit.runtime.semaphores import semaphore_names, unlink_semaphores
from galakit.runtime.transport import SharedSlots

Callback = Callable[[dict[str, Any]], None]


class LearnerError(RuntimeError):
    """A learner process failed; the message names its rank and carries its traceback."""

    def __init__(self, rank: int, details: str, exitcode: int | None = None):
        super().__init__(f"learner {rank} failed: {details}")
        self.rank, self.exitcode = rank, exitcode


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
        preflight(config)
        learner = Learner(config, callback=callback)
        try:
            return learner.run()
        except KeyboardInterrupt as stop:  # Learner.run saved a checkpoint first
            raise RunInterrupted(learner.metrics) from stop
        finally:
            learner.close()
    run = Run(config, callback=callback).start()
    if background:
        return run
    try:
        return run.wait()
    except KeyboardInterrupt as stop:  # no learner outlives the cell; each saves first
        run._halt(timeout=10.0)
        raise RunInterrupted(run.metrics) from stop
    except BaseException:
        run._halt(timeout=10.0)
        raise


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a kernel interrupt, or SIGTERM to ``galakit train``) stopped ``train``: every learner saved a
    checkpoint first. ``.metrics`` holds what the run had done; ``resume=metrics.run_dir`` continues it."""

    def __init__(self, metrics: Metrics):
        super().__init__(f"training stopped; the run is saved in {metrics.run_dir} "
                         f"(continue it with resume={metrics.run_dir!r}, or galakit train --resume {metrics.run_dir})")
        self.metrics = metrics
        print(self.args[0], file=sys.stderr, flush=True)


# -- the learner process
def learner_process(parent_pid: int, rank: int, world_size: int, cfg: Config, init_method: str, events, stop,
                    shared=None, board=None, slots=None, heartbeats=None) -> None:
    """Entry point of a learner process that ``Run`` spawned: die with the parent (armed already at
    ``import galakit``; again here for ``forkserver``, whose children import galakit before they fork), keep
    gloo on the loopback interface, ignore Ctrl-C (the parent's to handle), then train."""
    lifeline.die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    events.put(("started", rank, None))  # our arguments are unpickled: the semaphores' names may go
    os.environ["GLOO_SOCKET_IFNAME"] = _loopback_interface()
    worker_main(rank, world_size, cfg, init_method, events, stop, shared, board, slots, heartbeats)


def worker_main(rank: int, world_size: int, cfg: Config, init_method: str, events=None, stop=None, shared=None,
                board=None, slots=None, heartbeats=None) -> None:
    """One learner: join the process group, train, save the consensus model. ``events`` is the queue to the
    launcher of a spawned run; None under torchrun (whose agent armed our death signal at ``import galakit``)."""
    try:
        dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world_size,
                                timeout=timedelta(minutes=10))
        gossip_group = dist.new_group(backend="gloo") if cfg.algo == "gala" and slots is None else None
        if events is None and cfg.diag_interval and world_size > 1:  # torchrun: no launcher to read a shared board
            board = relay_board(cfg, rank, world_size)
        context = LearnerContext(rank, world_size, stop, shared, board, gossip_group, slots, heartbeats)
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
    recorder = ConsensusRecorder.for_run(cfg, cfg.run_dir) if rank == 0 else None
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
    manager that stops the run on exit.

    The supervisor (a thread of the calling process) watches every learner by its exit status, not by its
    messages: a learner that dies in any way (a traceback, ``kill -9``, the out-of-memory killer, a segfault)
    is noticed within a fraction of a second, named with how it died, and the others are stopped.
    """

    def __init__(self, cfg: Config, callback: Callback | None = None):
        preflight(cfg)  # env id, device, paths, resume: checked here, before any process starts
        self.cfg, self.callback = cfg, callback
        run_dir = cfg.run_dir or (cfg.resume if cfg.resume and os.path.isdir(cfg.resume) else None)
        run_dir = run_dir or ckpt.new_run_dir(cfg.resolved_run_name())
        self._claim = claim_run_dir(run_dir, new_run=not cfg.resume)  # here, before any process starts
        self.metrics = Metrics(run_dir=str(run_dir))
        self.cfg = cfg.replace(run_dir=self.metrics.run_dir)  # every learner must agree on it
        self.error: Exception | None = None  # a LearnerError, or what the supervisor met (a callback's error)
        self._latest: dict[int, dict[str, Any]] = {}
        self._finished: set[int] = set()
        self._tracebacks: dict[int, str] = {}  # rank → the traceback it sent, in the order they came
        self._started: set[int] = set()
        self._signalled: set[int] = set()  # ranks the run terminated itself (a stop that ran out of time)
        self._monitor: threading.Thread | None = None
        self._procs: list[Any] = []
        self._lock = threading.Lock()
        self._stopping = self._terminating = False
        self._spawned: threading.Event | None = None  # set once every learner is started (or none will be)
        self._spawn_error: BaseException | None = None
        self._rendezvous: str | None = None

    def start(self) -> Run:
        """Start the learners. Any error while starting (a Ctrl-C included) stops those already started and
        frees what the run holds (its directory, the rendezvous file) before it is raised."""
        try:
            self._start()
        except BaseException:
            self._halt(timeout=0)
            raise
        return self

    def _start(self) -> None:
        cfg, n = self.cfg, self.cfg.num_learners
        ctx = mp.get_context(cfg.start_method)
        self._events, self._stop = ctx.Queue(), ctx.Event()
        # on self: the parent holds what it shares (locks included) until the learners are done with it
        shared, self._board, self._slots = self._shared_state(ctx)
        self._semaphores = semaphore_names(self._events, self._stop, shared, self._board, self._slots)
        self._heartbeats = Heartbeats(n)
        self._recorder = (ConsensusRecorder.for_run(cfg, self.metrics.run_dir)
                          if self._board is not None else None)
        # A file store: the rendezvous opens no socket (torch's TCP store listens on every interface).
        self._rendezvous = tempfile.mkdtemp(prefix="galakit-rendezvous-")
        init_method = f"file://{self._rendezvous}/store"
        parent = _learners_parent(cfg.start_method)
        procs = [ctx.Process(target=learner_process, name=f"galakit-learner-{rank}",
                             args=(parent, rank, n, cfg, init_method, self._events, self._stop, shared,
                                   self._board, self._slots, self._heartbeats))
                 for rank in range(n)]
        _RUNNING.add(self)
        self._bar = _progress_bar(cfg)
        self._monitor = threading.Thread(target=self._watch, name="galakit-monitor", daemon=True)
        self._spawned = _SPAWNER.submit(self, procs, spawn_env=cfg.start_method == "spawn")
        self._monitor.start()
        self._spawned.wait()
        if self._spawn_error is not None:
            raise self._spawn_error

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
        try:
            self._supervise()
        except Exception as err:  # the user's callback, a full disk: stop the run and raise it in wait()
            self.error = self.error or err
            self._terminate()
        finally:
            if self._recorder is not None:
                self._recorder.close()
            if self._bar is not None:
                self._bar.close()
            self._release()

    def _supervise(self) -> None:
        while True:
            finished = self.done  # read before draining: what they sent before exiting is in the queue
            self._drain(None if finished else 0.2)
            reading = self._recorder.record(self._board, final=finished) if self._recorder is not None else None
            if reading is not None:
                with self._lock:
                    self.metrics.consensus.append(reading)
            if finished:
                break
            self._check_failures()
        if self.error is None:  # a learner that failed during a stop, or in the last moments of the run
            self.error = self._diagnose(self._exitcodes())

    def _drain(self, seconds: float | None) -> None:
        """Handle queued events: every one (``seconds=None``), or those that come within ``seconds``."""
        until = time.monotonic() + (seconds or 0.0)
        try:
            while seconds is None or time.monotonic() < until:
                self._handle(*self._events.get(timeout=0.1))
        except queue_module.Empty:
            pass

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
            self._tracebacks.setdefault(rank, payload)
        elif kind == "started":
            self._started.add(rank)
            if len(self._started) == self.cfg.num_learners:  # each has opened every semaphore it shares
                unlink_semaphores(self._semaphores)

    def _check_failures(self) -> None:
        """Stop the run as soon as a learner has sent a traceback or exited without finishing."""
        if self.error is not None or self._terminating:
            return
        if self._diagnose(self._exitcodes()) is not None:
            self._drain(0.3)  # the failed learner's own traceback, if it sent one, may still be on its way
            self.error = self._diagnose(self._exitcodes())  # None if it was a finished learner's late "done"
            if self.error is not None:
                self._terminate()
        elif self._spawned.is_set() and self.cfg.stall_timeout:
            self._check_stall(self._exitcodes())

    def _check_stall(self, codes: list[int | None]) -> None:
        """A frozen learner that the others wait for: name it and stop the run (``stall_timeout``). One frozen
        inside the collective itself looks as if it waits too: then a stopped process (SIGSTOP) is named."""
        running = [r for r, code in enumerate(codes) if code is None]
        frozen = self._heartbeats.stalled(self.cfg.stall_timeout, running)
        if frozen is None:
            return
        if len(frozen) == len(running):
            frozen = [r for r in running if _process_state(self._procs[r].pid) == "T"] or frozen
        waiting = [r for r in running if r not in frozen]
        self.error = LearnerError(frozen[0], f"no progress for {self.cfg.stall_timeout:g} s (stall_timeout) while "
                                  f"learner(s) {waiting} wait for it: frozen, stopped (SIGSTOP), swapped out, or "
                                  f"stuck in its simulators; learners not progressing: {frozen}")
        self._terminate()

    def _diagnose(self, codes: list[int | None]) -> LearnerError | None:
        """Name the learner that failed first, or None if none has. One that died without a word (a signal, a
        hard exit) is the cause of its peers' errors ("Connection closed by peer", a broken all-reduce): it is
        named before them. Learners that the run terminated itself are not failures."""
        silent = [r for r, code in enumerate(codes) if code not in (None, 0) and r not in self._tracebacks
                  and r not in self._finished and r not in self._signalled]
        if not silent and not self._tracebacks:
            return None
        if silent:
            rank, details = silent[0], _describe_exit(codes[silent[0]])
            if self._tracebacks:
                first = next(iter(self._tracebacks))
                details += (f"\nafter which learner(s) {sorted(self._tracebacks)} failed too; learner {first}:\n"
                            f"{self._tracebacks[first]}")
            return LearnerError(rank, details, exitcode=codes[rank])
        rank = next(iter(self._tracebacks))
        return LearnerError(rank, self._tracebacks[rank], exitcode=codes[rank])

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
        """Every learner has exited (or, stopped while starting, none will start)."""
        started = self._spawned is not None and self._spawned.is_set()
        return started and all(code is not None for code in self._exitcodes())

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
        if self.error is not None:
            self._terminate()
        if self._monitor is not None and self._monitor.ident is not None:
            self._monitor.join(timeout=5)
        if self.error is not None:
            raise self.error
        return self.metrics

    def stop(self, timeout: float = 10.0) -> Metrics:
        """Ask every learner to finish its update and save, then terminate any still running after ``timeout``.
        AllReduce learners first agree on their last update (so that none leaves a collective the others are
        in). Raises ``LearnerError`` if a learner failed, before or during the stop."""
        self._halt(timeout)
        if self.error is not None:
            raise self.error
        return self.metrics

    def _halt(self, timeout: float) -> None:
        self._stopping = True
        if self._spawned is None:  # never started
            self._release()
            return
        self._spawned.wait()  # the spawner checks _stopping before each start: at most one more starts
        self._stop.set()
        self._join(timeout)
        late = [p.name for p, code in zip(self._procs, self._exitcodes(), strict=True) if code is None]
        self._terminate()
        if self._monitor is not None and self._monitor.ident is not None:
            self._monitor.join(timeout=5)  # it frees what the run holds once every learner has exited
        else:
            self._release()
        if late and self.error is None:
            warnings.warn(f"{', '.join(late)} did not finish within {timeout} s of stop() and were terminated "
                          "(their last update is not saved)", RuntimeWarning, stacklevel=3)

    def _join(self, timeout: float) -> None:
        """Wait for the learners to exit while the monitor keeps draining their queue (a process cannot exit
        before its queued messages are read)."""
        deadline = time.monotonic() + timeout
        while not self.done and time.monotonic() < deadline:
            time.sleep(0.05)

    def _terminate(self) -> None:
        self._terminating = True
        for signal_them in ("terminate", "kill"):
            with self._lock:
                for rank, proc in enumerate(self._procs):
                    if proc.exitcode is None:
                        self._signalled.add(rank)
                        getattr(proc, signal_them)()
            self._join(1)

    def _release(self) -> None:
        """Once every learner has exited: free the shared gossip slots, the rendezvous file, the run directory."""
        self._slots = None
        if self._rendezvous is not None:
            shutil.rmtree(self._rendezvous, ignore_errors=True)
        self._claim.release()
        _RUNNING.discard(self)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, *_) -> None:
        self._halt(10.0)
        if exc_type is None and self.error is not None:
            raise self.error


_RUNNING: weakref.WeakSet[Run] = weakref.WeakSet()


@atexit.register
def _stop_all_runs() -> None:
    for run in list(_RUNNING):
        run._halt(timeout=5)  # at exit: a learner's error has nobody left to be raised to


class _Spawner:
    """Starts learner processes from one daemon thread that lives as long as this process. ``PR_SET_PDEATHSIG``
    fires when the *thread* that forked a child exits: a run started from a short-lived thread (a widget's
    callback, a user's worker thread) would otherwise lose its learners when that thread ends."""

    def __init__(self):
        self._requests: queue_module.SimpleQueue = queue_module.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, run: Run, procs: list[Any], spawn_env: bool) -> threading.Event:
        """Start ``procs`` one by one into ``run._procs`` (unless the run is being stopped); the returned event
        is set when that is over."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="galakit-spawner", daemon=True)
                self._thread.start()
        finished = threading.Event()
        self._requests.put((run, procs, spawn_env, finished))
        return finished

    def _serve(self) -> None:
        while True:
            run, procs, spawn_env, finished = self._requests.get()
            try:
                for proc in procs:
                    if run._stopping:
                        break
                    _start_process(proc, spawn_env)
                    with run._lock:
                        run._procs.append(proc)
            except BaseException as err:  # e.g. an argument that cannot be pickled
                run._spawn_error = err
            finally:
                finished.set()


_SPAWNER = _Spawner()


def _start_process(proc, spawn_env: bool) -> None:
    """Start ``proc``; a spawned one finds our pid in its environment, so that ``import galakit`` arms its death
    signal before anything else (``galakit.runtime.lifeline``)."""
    if not spawn_env:
        proc.start()
        return
    os.environ[lifeline.PARENT_ENV] = str(os.getpid())
    try:
        proc.start()
    finally:
        os.environ.pop(lifeline.PARENT_ENV, None)


def _learners_parent(start_method: str) -> int:
    """The pid a learner's parent has: ours for ``spawn``; the fork server's for ``forkserver``, which forks
    them (it exits when we do, and they with it)."""
    if start_method != "forkserver":
        return os.getpid()
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return forkserver._forkserver._forkserver_pid  # no public accessor; present since Python 3.4


def _loopback_interface() -> str:
    """The name of the loopback network interface ('lo' on Linux), for gloo's sockets."""
    names = [name for _, name in socket.if_nameindex()]
    return next((name for name in names if name.startswith("lo")), "lo")


def _process_state(pid: int) -> str:
    """The state letter of a process (``R`` running, ``S`` sleeping, ``T`` stopped, …), or '' when unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        why = " (what the kernel's out-of-memory killer sends, or kill -9)" if -code == signal.SIGKILL else ""
        return f"killed by signal {name}{why}; no traceback"
    return f"process exited with code {code}; no traceback"


def _progress_bar(cfg: Config):
    if not cfg.progress:
        return None
    from tqdm.auto import tqdm

    total = cfg.num_updates * cfg.batch_size * cfg.num_learners
    return tqdm(total=total, unit="step", desc=f"{cfg.algo} ×{cfg.num_learners} {cfg.env_id}", dynamic_ncols=True)
