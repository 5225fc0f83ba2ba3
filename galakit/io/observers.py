"""Observers: everything that watches a run goes through one seam.

A run tells its observers five things, in this order for each learner::

    on_start(info)         once, before the first update (``RunInfo``: the config, the run directory, ...)
    on_episode(episode)    each finished game (``galakit.rl.a2c.Episode``, raw score, with the learner's rank)
    on_update(row)         each progress row (every ``log_interval`` updates; the keys of ``PROGRESS_FIELDS``)
    on_consensus(reading)  each ε-ball reading (``diag_interval`` > 0; ``galakit.runtime.diagnostics``)
    on_end(metrics)        once, when the run is over (finished, stopped or failed)

A learner trained in the caller's process feeds them directly. A run of learner processes feeds them from the
supervisor's thread in the caller's process (``galakit.runtime.supervisor``): episodes and rows arrive by queue,
in order for each learner (learners interleave), and readings are taken by the supervisor. An observer never makes
a learner wait: a slow one only delays the supervisor's drain of the queue.

The progress display, the CSV/TensorBoard writers, the consensus log and a user's ``callback`` are observers;
``galakit.train(cfg, observers=[...])`` and ``galakit.start`` add yours. Subclass ``Observer`` and override what
you need.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from galakit.io.metrics import ConsensusWriter, Metrics, MetricsWriter


@dataclass(frozen=True)
class RunInfo:
    """What an observer learns at ``on_start``: the run's config, its directory, and where it starts from."""

    config: Any                  # galakit.Config
    run_dir: str
    num_learners: int
    start_step: int = 0          # each learner's global step at the start (> 0 for a resumed run)
    # Run.stop of a run whose cell is free (galakit.start), for a stop button; None where the cell that runs it is
    # busy until it ends (galakit.train): widget clicks do not reach a busy kernel, so there the interrupt stops it.
    stop: Callable[[], Any] | None = None

    @property
    def total_steps(self) -> int:
        """Agent steps of the whole run when it ends: updates × batch size × learners."""
        return self.config.num_updates * self.config.batch_size * self.num_learners


class Observer:
    """Does nothing at each event: subclass it and override the events you need (module docstring)."""

    def on_start(self, info: RunInfo) -> None:
        pass

    def on_episode(self, episode) -> None:
        pass

    def on_update(self, row: dict[str, Any]) -> None:
        pass

    def on_consensus(self, reading: dict[str, Any]) -> None:
        pass

    def on_end(self, metrics: Metrics) -> None:
        pass


class Observers(Observer):
    """Several observers as one: each event goes to each, in the order given."""

    def __init__(self, observers: Iterable[Observer] = ()):
        if isinstance(observers, Observer):
            observers = [observers]
        self.observers: list[Observer] = []
        for obs in observers:
            if not isinstance(obs, Observer):
                raise ValueError(f"observers: got {obs!r}; accepted: galakit.Observer instances (subclass "
                                 "galakit.Observer, or pass a function of each progress row as callback=)")
            self.observers += obs.observers if isinstance(obs, Observers) else [obs]

    def __iter__(self):
        return iter(self.observers)

    def on_start(self, info: RunInfo) -> None:
        for obs in self.observers:
            obs.on_start(info)

    def on_episode(self, episode) -> None:
        for obs in self.observers:
            obs.on_episode(episode)

    def on_update(self, row: dict[str, Any]) -> None:
        for obs in self.observers:
            obs.on_update(row)

    def on_consensus(self, reading: dict[str, Any]) -> None:
        for obs in self.observers:
            obs.on_consensus(reading)

    def on_end(self, metrics: Metrics) -> None:
        for obs in self.observers:
            obs.on_end(metrics)


class RowCallback(Observer):
    """``callback(row)`` for each progress row: the shortcut ``train(cfg, callback=f)``."""

    def __init__(self, callback: Callable[[dict[str, Any]], None]):
        self.callback = callback

    def on_update(self, row: dict[str, Any]) -> None:
        self.callback(row)


class RunLog(Observer):
    """One learner's ``progress.csv`` and ``episodes.csv`` (and TensorBoard events) in its directory. It lives in
    the learner's process: each learner writes its own files, whoever started it."""

    def __init__(self, run_dir: str | Path, tensorboard: bool, hparams: dict[str, Any] | None = None,
                 resumed_at: int | None = None):
        self.writer = MetricsWriter(run_dir, tensorboard, hparams=hparams, resumed_at=resumed_at)

    def on_episode(self, episode) -> None:
        self.writer.episode(episode)

    def on_update(self, row: dict[str, Any]) -> None:
        self.writer.progress(row)

    def on_end(self, metrics: Metrics) -> None:
        self.writer.close()


class ConsensusLog(Observer):
    """The run's ``consensus.csv`` (and TensorBoard ``consensus/…``), opened at the first reading. ``resumed_at``:
    the oldest update the learners of a resumed run continue from (`ConsensusWriter`)."""

    def __init__(self, run_dir: str | Path, tensorboard: bool, resumed_at: int | None = None):
        self.run_dir, self.tensorboard, self.resumed_at = run_dir, tensorboard, resumed_at
        self.writer: ConsensusWriter | None = None

    def on_consensus(self, reading: dict[str, Any]) -> None:
        if self.writer is None:
            self.writer = ConsensusWriter(self.run_dir, len(reading["distance_to_average"]), self.tensorboard,
                                          resumed_at=self.resumed_at)
        self.writer.write(reading)

    def on_end(self, metrics: Metrics) -> None:
        if self.writer is not None:
            self.writer.close()


class Progress(Observer):
    """Live progress: a bar in a notebook or a terminal (tqdm), and in a log file, CI or nbconvert a readable line
    every ``every`` progress rows of the run (default: about ``LINES`` lines over the run, at most one per
    ``log_interval`` of each learner), and a last one at the end: steps, steps/s, mean raw return, losses, the newest
    consensus distance, as CleanRL and Stable-Baselines3 print."""

    LINES = 40

    def __init__(self, every: int | None = None, stream=None, bar: bool | None = None):
        self.every, self.stream = every, stream or sys.stdout
        self.bar_wanted = _interactive(self.stream) if bar is None else bar
        self.bar = None
        self.rows = 0
        self.printed: tuple[int, float | None] | None = None
        self.latest: dict[int, dict[str, Any]] = {}
        self.consensus: dict[str, Any] | None = None
        self.info: RunInfo | None = None

    def on_start(self, info: RunInfo) -> None:
        self.info = info
        rows = max(1, info.config.num_updates // info.config.log_interval) * info.num_learners
        self.every = self.every or info.num_learners * max(1, rows // (self.LINES * info.num_learners))
        if self.bar_wanted:
            from tqdm.auto import tqdm  # a widget in notebooks, text in terminals

            cfg = info.config
            learners = f" ×{info.num_learners}" if info.num_learners > 1 else ""
            self.bar = tqdm(total=info.total_steps, initial=info.start_step * info.num_learners, unit="step",
                            desc=f"{cfg.algo}{learners} {cfg.env_id}", dynamic_ncols=True)

    def on_update(self, row: dict[str, Any]) -> None:
        self.latest[row.get("rank", 0)] = row
        steps = sum(r["global_step"] for r in self.latest.values())
        if self.bar is not None:
            self.bar.n = steps
            returns = " ".join(f"{self.latest[r]['episodic_return_mean']:.1f}" for r in sorted(self.latest))
            self.bar.set_postfix(ret=returns, refresh=False)  # tqdm shows the run's steps/s itself
            self.bar.update(0)
            return
        self.rows += 1
        if self.rows % self.every == 0:
            self._print(steps)

    def on_consensus(self, reading: dict[str, Any]) -> None:
        self.consensus = reading

    def on_end(self, metrics: Metrics) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.latest:
            self._print(sum(r["global_step"] for r in self.latest.values()))

    def _print(self, steps: int) -> None:
        key = (steps, None if self.consensus is None else self.consensus["time"])
        if key != self.printed:  # the end repeats no line (unless a final reading came after it)
            print(self.line(steps), file=self.stream, flush=True)
            self.printed = key

    def line(self, steps: int) -> str:
        """``step 12800/100000 | SPS 3400 | return 23.5 | value_loss 0.41 | entropy 0.66 | consensus 0.012``."""
        rows = list(self.latest.values())
        total = f"/{self.info.total_steps}" if self.info is not None else ""
        parts = [f"step {steps}{total}", f"SPS {sum(r['SPS'] for r in rows):.0f}",
                 f"return {_mean(r['episodic_return_mean'] for r in rows):.2f}"]
        for key in ("policy_loss", "value_loss", "entropy"):
            if all(key in r for r in rows):
                parts.append(f"{key} {_mean(r[key] for r in rows):.3g}")
        if self.consensus is not None:
            parts.append(f"consensus {max(self.consensus['distance_to_average']):.3g}")
        return " | ".join(parts)



def _mean(values: Iterable[float]) -> float:
    values = [v for v in values if v == v]  # NaN (no finished game yet) does not count
    return sum(values) / len(values) if values else float("nan")


def _interactive(stream) -> bool:
    """A terminal, or a notebook kernel with a front end (where tqdm draws a widget)."""
    if getattr(stream, "isatty", lambda: False)():
        return True
    shell = sys.modules.get("IPython")
    ip = shell.get_ipython() if shell is not None and hasattr(shell, "get_ipython") else None
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def standard_observers(cfg, extra: Iterable[Observer] = (), callback=None) -> Observers:
    """The observers a run of ``cfg`` has in the caller's process: the progress display (``cfg.progress``), the
    user's ``callback`` and ``extra`` observers, in that order."""
    observers: list[Observer] = [Progress()] if cfg.progress else []
    if callback is not None:
        observers.append(RowCallback(callback))
    return Observers([*observers, *extra])
