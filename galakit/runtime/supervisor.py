"""The supervisor of a run of learner processes: ``Run`` starts them, feeds their reports to the observers, and
stops them all when one fails, freezes, or the caller stops the run.

Learners are started with ``spawn`` (or ``forkserver``) from ``galakit.runtime.worker.learner_process`` and meet
in a ``torch.distributed`` gloo group through a file (no TCP store listening), with gloo's sockets on the
loopback interface. Shutdown is the supervisor's job. Learners ignore SIGINT and die with their parent
(``galakit.runtime.lifeline``); a Ctrl-C / kernel interrupt in the parent, ``Run.stop()``, the end of the
interpreter, or a learner that fails stops every learner: first by asking them to finish their update and save,
then by terminating them. The supervisor's thread (``Run._watch``) notices a failed learner by its exit status,
and a frozen one by its heartbeats.
"""

from __future__ import annotations

import atexit
import os
import queue as queue_module
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import torch.multiprocessing as mp

from galakit.config import Config
from galakit.io import checkpoint as ckpt
from galakit.io.metrics import Metrics
from galakit.io.observers import Observer, Observers, RunInfo, standard_observers
from galakit.io.rundir import claim_run_dir
from galakit.preflight import preflight
from galakit.runtime import lifeline
from galakit.runtime.coupling import SharedState, gossip_schedule, shared_slots
from galakit.runtime.diagnostics import ConsensusRecorder, DiagnosticsBoard
from galakit.runtime.heartbeat import Heartbeats
from galakit.runtime.semaphores import semaphore_names, unlink_semaphores
from galakit.runtime.transport import SharedSlots
from galakit.runtime.worker import learner_process, reference_model

Callback = Callable[[dict[str, Any]], None]


class LearnerError(RuntimeError):
    """A learner process failed; the message names its rank and carries its traceback."""

    def __init__(self, rank: int, details: str, exitcode: int | None = None):
        super().__init__(f"learner {rank} failed: {details}")
        self.rank, self.exitcode = rank, exitcode


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a kernel interrupt, or SIGTERM to ``galakit train``) stopped ``train`` or ``Run.wait``: every
    learner saved a checkpoint first. ``.metrics`` holds what the run had done; ``resume=metrics.run_dir``
    continues it."""

    def __init__(self, metrics: Metrics):
        super().__init__(f"training stopped; the run is saved in {metrics.run_dir} "
                         f"(continue it with resume={metrics.run_dir!r}, or galakit train --resume {metrics.run_dir})")
        self.metrics = metrics
        print(self.args[0], file=sys.stderr, flush=True)


class Run:
    """A run of learner processes (``galakit.start`` returns one, started). Use it as a handle: ``.wait()``,
    ``.stop()``, ``.metrics`` (live), ``.latest`` (each learner's newest progress row), ``.consensus`` (live
    diagnostics), ``.done``; ``.observers`` get every episode, row and reading (``galakit.io.observers``). Also a
    context manager that stops the run on exit.

    The supervisor (a thread of the calling process) watches every learner by its exit status, not by its
    messages: a learner that dies in any way (a traceback, ``kill -9``, the out-of-memory killer, a segfault)
    is noticed within a fraction of a second, named with how it died, and the others are stopped.
    """

    def __init__(self, cfg: Config, observers: Iterable[Observer] = (), callback: Callback | None = None,
                 blocking: bool = False):
        preflight(cfg)  # env id, device, paths, resume: checked here, before any process starts
        self.cfg, self.blocking = cfg, blocking  # blocking: a train() call waits for it (no stop from a widget)
        self.observers = standard_observers(cfg, observers, callback)
        run_dir = cfg.run_dir or (cfg.resume if cfg.resume and os.path.isdir(cfg.resume) else None)
        run_dir = run_dir or ckpt.new_run_dir(cfg.resolved_run_name())
        self._claim = claim_run_dir(run_dir, new_run=not cfg.resume)  # here, before any process starts
        self.metrics = Metrics(run_dir=str(run_dir))
        self.cfg = cfg.replace(run_dir=self.metrics.run_dir)  # every learner must agree on it
        self.metrics.config = self.cfg
        self.error: Exception | None = None  # a LearnerError, or what the supervisor met (an observer's error)
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
        self._recorder = (ConsensusRecorder.for_run(cfg, self.metrics.run_dir)  # readings: _supervise
                          if self._board is not None else None)
        # A file store: the rendezvous opens no socket (torch's TCP store listens on every interface).
        self._rendezvous = new_rendezvous()
        init_method = f"file://{self._rendezvous}/store"
        parent = _learners_parent(cfg.start_method)
        procs = [ctx.Process(target=learner_process, name=f"galakit-learner-{rank}",
                             args=(parent, rank, n, cfg, init_method, self._events, self._stop, shared,
                                   self._board, self._slots, self._heartbeats))
                 for rank in range(n)]
        _RUNNING.add(self)
        self.info = RunInfo(cfg, self.metrics.run_dir, n, _resumed_step(cfg), stop=None if self.blocking else self.stop)
        self.observers.on_start(self.info)
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
        except Exception as err:  # an observer's error, a full disk: stop the run and raise it in wait()
            self.error = self.error or err
            self._terminate()
        finally:
            if self._recorder is not None:
                self._recorder.close()
            try:
                self.observers.on_end(self.metrics)
            except Exception as err:
                self.error = self.error or err
            self._release()

    def _supervise(self) -> None:
        while True:
            finished = self.done  # read before draining: what they sent before exiting is in the queue
            self._drain(None if finished else 0.2)
            reading = self._recorder.record(self._board, final=finished) if self._recorder is not None else None
            if reading is not None:
                with self._lock:
                    self.metrics.consensus.append(reading)
                    observers = Observers(self.observers)
                observers.on_consensus(reading)
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
        if kind == "episodes":
            with self._lock:  # an observer attached from now on finds these in .metrics (attach(history=True))
                self.metrics.episodes += payload
                observers = Observers(self.observers)
            for episode in payload:
                observers.on_episode(episode)
        elif kind == "row":
            with self._lock:
                self.metrics.progress.append(payload)
                self._latest[rank] = payload
                observers = Observers(self.observers)
            observers.on_update(payload)
        elif kind == "done":
            self._finished.add(rank)
            self.metrics.checkpoint = payload["consensus"] or self.metrics.checkpoint or payload["checkpoint"]
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

    def attach(self, observer: Observer, history: bool = False) -> None:
        """Add an observer to a run that is going: it gets ``on_start`` now, then every later event; with
        ``history``, first every episode, row and reading that came before (each event exactly once)."""
        Observers([observer])  # checks it is one
        observer.on_start(self.info)
        with self._lock:  # the supervisor records an event and picks its observers under this lock
            past = Metrics(episodes=list(self.metrics.episodes), progress=list(self.metrics.progress),
                           consensus=list(self.metrics.consensus)) if history else Metrics()
            self.observers.observers.append(observer)
        for episode in past.episodes:
            observer.on_episode(episode)
        for row in past.progress:
            observer.on_update(row)
        for reading in past.consensus:
            observer.on_consensus(reading)

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

    @property
    def pids(self) -> list[int]:
        """The learners' process ids, by rank (those started so far)."""
        with self._lock:
            return [p.pid for p in self._procs if p.pid is not None]

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
        """Block until every learner has finished; raise ``LearnerError`` if one failed. Interrupting the wait
        (Ctrl-C, a kernel interrupt) stops the run, as it stops ``train``: every learner saves, then
        ``RunInterrupted``. (To stop waiting but keep the run going, pass a ``timeout``.)"""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not self.done and self.error is None:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"run still going after {timeout} s")
                time.sleep(0.05)
        except KeyboardInterrupt as stop:
            self._halt(timeout=10.0)
            raise RunInterrupted(self.metrics) from stop
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


RENDEZVOUS_PREFIX = "galakit-rendezvous-"


def new_rendezvous(root: str | None = None) -> str:
    """A new folder for a run's file store (under ``root``, default the temp dir), with an ``owner`` file that
    names this process. A parent killed with SIGKILL cannot remove its folder, so each new one first removes
    the folders whose owner has exited (``remove_stale_rendezvous``): at most one is ever left behind."""
    remove_stale_rendezvous(root)
    folder = tempfile.mkdtemp(prefix=RENDEZVOUS_PREFIX, dir=root)
    with open(os.path.join(folder, "owner"), "w") as f:
        f.write(str(os.getpid()))
    return folder


def remove_stale_rendezvous(root: str | None = None) -> list[str]:
    """Remove the rendezvous folders under ``root`` whose owner process has exited; the removed paths. A folder
    without an owner file (one being made, or not ours) is left alone."""
    root = root or tempfile.gettempdir()
    removed = []
    for name in sorted(n for n in os.listdir(root) if n.startswith(RENDEZVOUS_PREFIX)):
        folder = os.path.join(root, name)
        try:
            with open(os.path.join(folder, "owner")) as f:
                owner = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if not _alive(owner):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (a reused pid reads as alive: its folder then stays, which is safe)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _learners_parent(start_method: str) -> int:
    """The pid a learner's parent has: ours for ``spawn``; the fork server's for ``forkserver``, which forks
    them (it exits when we do, and they with it)."""
    if start_method != "forkserver":
        return os.getpid()
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return forkserver._forkserver._forkserver_pid  # no public accessor; present since Python 3.4


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


def _resumed_step(cfg: Config) -> int:
    """The global step each learner of a resumed run starts from (learner 0's newest checkpoint's), else 0."""
    return (ckpt.resumed_steps(cfg.resume, cfg.num_learners) or [0])[0]
