"""Start runs from a notebook cell or a script: ``galakit.train(cfg)`` blocks and returns the ``Metrics``;
``galakit.start(cfg)`` returns the ``Run`` handle at once.

One learner of ``train`` trains in the calling process. Otherwise each learner gets an OS process, supervised
by ``galakit.runtime.supervisor.Run``. Under ``torchrun``, ``galakit train`` is one learner of the job
(``galakit.runtime.torchrun``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from galakit.config import Config
from galakit.io.metrics import Metrics
from galakit.io.observers import Observer, standard_observers
from galakit.preflight import preflight
from galakit.rl.learner import Learner
from galakit.rl.machine import KernelState
from galakit.runtime.supervisor import LearnerError, Run, RunInterrupted
from galakit.validation import fail

Callback = Callable[[dict[str, Any]], None]
__all__ = ["LearnerError", "Run", "RunInterrupted", "start", "train"]


def train(config: Config | None = None, *, observers: Iterable[Observer] = (), callback: Callback | None = None,
          **overrides: Any) -> Metrics:
    """Train with ``config`` (default ``Config()``, fields optionally overridden by keyword) until the run ends,
    and return its ``Metrics`` (every finished game, every progress row, the consensus readings).

    ``observers`` get every episode, row and reading as it happens (``galakit.io.observers``); ``callback(row)``
    is the short form for rows only. Ctrl-C (a kernel interrupt) stops the run: every learner saves first, and
    ``RunInterrupted`` carries the metrics so far. One learner trains in this process: its torch thread count
    and the global random generators it seeds are put back as they were when it ends.
    """
    config = _config(config, overrides)
    if config.num_learners > 1:
        return _wait(Run(config, observers, callback, blocking=True).start())
    preflight(config)
    with KernelState():
        learner = Learner(config, standard_observers(config, observers, callback))
        try:
            return learner.run()
        except KeyboardInterrupt as stop:  # Learner.run saved a checkpoint first
            raise RunInterrupted(learner.metrics) from stop
        finally:
            learner.close()


def start(config: Config | None = None, *, observers: Iterable[Observer] = (), callback: Callback | None = None,
          **overrides: Any) -> Run:
    """Start a run of learner processes (one per learner, even for one) and return its ``Run`` at once: the cell
    is free, ``run.metrics`` fills up live, ``run.wait()`` blocks until it ends, ``run.stop()`` stops it (saved).
    """
    return Run(_config(config, overrides), observers, callback).start()


def _config(config: Config | None, overrides: dict[str, Any]) -> Config:
    config = config or Config()
    if not isinstance(config, Config):
        raise ValueError(f"config: got {type(config).__name__}; accepted: a galakit.Config")
    fields = {f.name for f in dataclasses.fields(Config)}
    for name, value in overrides.items():
        if name not in fields:
            hint = " (galakit.start runs in the background)" if name == "background" else ""
            fail(name, value, f"a field of galakit.Config (e.g. {', '.join(sorted(fields)[:6])}, ...)",
                 f"not a Config field{hint}")
    return config.replace(**overrides) if overrides else config


def _wait(run: Run) -> Metrics:
    try:
        return run.wait()  # Ctrl-C there stops the run (each learner saves first) and raises RunInterrupted
    except BaseException:
        run._halt(timeout=10.0)  # no learner outlives the cell
        raise
