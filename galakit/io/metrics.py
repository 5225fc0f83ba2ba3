"""Metrics of a run: what the notebook gets back, and what goes to CSV and TensorBoard.

Names follow CleanRL's TensorBoard tags (``charts/episodic_return``, ``charts/SPS``, ``losses/value_loss``, …);
GALA's gossip counters go under ``gossip/…`` and the phase times under ``time/…``.
Two CSV files per learner: ``progress.csv`` (one row per ``log_interval`` updates) and ``episodes.csv`` (one row
per finished game, raw score); with diagnostics on, one per run: ``consensus.csv`` (one row per ε-ball reading).
Rows are written whole and flushed, so a crash leaves complete lines. Each progress row also times the update's
three phases: ``time_rollout_s`` (acting; A3C's pull of the shared model included),
``time_update_s`` (the A2C step; AllReduce's wait for the other learners' gradients included) and
``time_coupling_s`` (GALA's gossip step). ``staleness`` is the age of the messages of the newest mix, counted in
their senders' updates (never negative; blank until the first mix; ``gossip_mixed`` says whether this update
mixed; see ``galakit.runtime.coupling``).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from galakit.rl.a2c import Episode

PROGRESS_FIELDS = ("rank", "global_step", "update", "time", "SPS", "episodes", "episodic_return_mean",
                   "episodic_length_mean", "learning_rate", "policy_loss", "value_loss", "entropy",
                   "explained_variance", "grad_norm", "step_norm", "gossip_mixed_total", "gossip_skipped_total",
                   "gossip_waits_total", "gossip_wait_s", "staleness", "consecutive_skips", "messages_sent",
                   "messages_received", "messages_dropped", "time_rollout_s", "time_update_s", "time_coupling_s")
TENSORBOARD_TAGS = {"SPS": "charts/SPS", "learning_rate": "charts/learning_rate",
                    "episodic_return_mean": "charts/episodic_return_mean", "policy_loss": "losses/policy_loss",
                    "value_loss": "losses/value_loss", "entropy": "losses/entropy",
                    "explained_variance": "losses/explained_variance", "grad_norm": "losses/grad_norm",
                    "step_norm": "charts/step_norm", "time_rollout_s": "time/rollout_s",
                    "time_update_s": "time/update_s", "time_coupling_s": "time/coupling_s",
                    "staleness": "gossip/staleness", "consecutive_skips": "gossip/consecutive_skips",
                    "gossip_mixed_total": "gossip/mixed_total", "gossip_skipped_total": "gossip/skipped_total",
                    "gossip_waits_total": "gossip/waits_total", "gossip_wait_s": "gossip/wait_s",
                    "messages_sent": "gossip/messages_sent", "messages_received": "gossip/messages_received",
                    "messages_dropped": "gossip/messages_dropped"}


@dataclass
class Metrics:
    """What ``galakit.train`` returns: every finished game and every progress row of the run."""

    episodes: list[Episode] = field(default_factory=list)
    progress: list[dict[str, Any]] = field(default_factory=list)
    run_dir: str | None = None
    checkpoint: str | None = None
    consensus: list[dict[str, Any]] = field(default_factory=list)

    def returns(self) -> np.ndarray:
        """Raw full-game returns in the order the games ended."""
        return np.array([e.ret for e in self.episodes], dtype=np.float64)

    def mean_return(self, last: int = 100, rank: int | None = None) -> float:
        """Mean raw return of the last ``last`` games (of learner ``rank``, or of all); NaN before any game."""
        r = np.array([e.ret for e in self.episodes if rank is None or e.rank == rank])[-last:]
        return float(r.mean()) if len(r) else float("nan")

    def solved_at(self, threshold: float, window: int = 100, rank: int | None = None) -> int | None:
        """The first global step at which the mean raw return of ``window`` consecutive games (of learner
        ``rank``, or of all) reached ``threshold`` (Gym's "solved" criterion); None if it never did."""
        games = [e for e in self.episodes if rank is None or e.rank == rank]
        returns = np.array([e.ret for e in games])
        if len(returns) < window:
            return None
        means = np.convolve(returns, np.ones(window) / window, mode="valid")
        hits = np.flatnonzero(means >= threshold)
        return games[hits[0] + window - 1].global_step if len(hits) else None

    def summary(self) -> str:
        """``"<steps> steps[ of n learners], <games> games, mean raw return (last 100) <r>"``."""
        newest = {row.get("rank", 0): row["global_step"] for row in self.progress}  # each learner's last row
        learners = f" of {len(newest)} learners" if len(newest) > 1 else ""
        return (f"{sum(newest.values())} steps{learners}, {len(self.episodes)} games, mean raw return (last 100) "
                f"{self.mean_return():.2f}")


def open_csv(path: Path, fields: tuple[str, ...]):
    """(file, DictWriter) appending to ``path``; the header is written when the file is new (resumed runs append)."""
    new = not path.exists() or path.stat().st_size == 0
    f = open(path, "a", newline="")
    writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
    if new:
        writer.writeheader()
        f.flush()
    return f, writer


def truncate_csv(path: Path, last_step: int) -> None:
    """Keep only the rows of ``path`` with ``global_step <= last_step`` (rewritten atomically). A run that
    crashed after its last checkpoint had logged rows past it; resumed from that checkpoint, it logs them again."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, [r for r in reader if _step(r) is not None and _step(r) <= last_step]
    if fields is None:
        return
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _step(row: dict[str, str]) -> int | None:
    """A row's global step, or None for a row cut short (a run killed while writing it)."""
    try:
        return int(row["global_step"])
    except (TypeError, ValueError, KeyError):
        return None


class MetricsWriter:
    """Appends progress rows and episodes to CSV files and, optionally, TensorBoard. ``resumed_at``: the global
    step of the checkpoint a resumed run continues from; rows logged after it (by the run that crashed) go."""

    def __init__(self, run_dir: str | Path, tensorboard: bool = True, hparams: dict[str, Any] | None = None,
                 resumed_at: int | None = None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resumed_at is not None:
            for name in ("progress.csv", "episodes.csv"):
                truncate_csv(self.run_dir / name, resumed_at)
        self._progress = open_csv(self.run_dir / "progress.csv", PROGRESS_FIELDS)
        self._episodes = open_csv(self.run_dir / "episodes.csv", ("global_step", "return", "length"))
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: it is slow to import

            self._tb = SummaryWriter(str(self.run_dir))
            if hparams:
                table = "\n".join(f"|{k}|{v}|" for k, v in hparams.items())
                self._tb.add_text("hyperparameters", f"|param|value|\n|-|-|\n{table}")

    def episode(self, e: Episode) -> None:
        f, writer = self._episodes
        writer.writerow({"global_step": e.global_step, "return": e.ret, "length": e.length})
        f.flush()
        if self._tb:
            self._tb.add_scalar("charts/episodic_return", e.ret, e.global_step)
            self._tb.add_scalar("charts/episodic_length", e.length, e.global_step)

    def progress(self, row: dict[str, Any]) -> None:
        f, writer = self._progress
        writer.writerow(row)
        f.flush()
        if self._tb:
            for key, tag in TENSORBOARD_TAGS.items():
                if row.get(key) is not None and np.isfinite(row[key]):
                    self._tb.add_scalar(tag, row[key], row["global_step"])

    def close(self) -> None:
        for f, _ in (self._progress, self._episodes):
            f.close()
        if self._tb:
            self._tb.close()


class ConsensusWriter:
    """Appends ε-ball readings (``galakit.runtime.diagnostics``) to ``<run_dir>/consensus.csv``, one column of distances
    per learner, and to TensorBoard under ``<run_dir>/consensus`` (tags ``consensus/…``, step = newest update)."""

    def __init__(self, run_dir: str | Path, num_learners: int, tensorboard: bool = True):
        self.fields = ("time", "update_min", "update_max", "max_pairwise_distance", "epsilon_bound",
                       *(f"distance_to_average_{i}" for i in range(num_learners)))
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._file, self._csv = open_csv(self.run_dir / "consensus.csv", self.fields)
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "consensus"))

    def write(self, reading: dict[str, Any]) -> None:
        distances = {f"distance_to_average_{i}": d for i, d in enumerate(reading["distance_to_average"])}
        self._csv.writerow({**reading, **distances})
        self._file.flush()
        if self._tb:
            scalars = {"max_pairwise_distance": reading["max_pairwise_distance"],
                       "epsilon_bound": reading["epsilon_bound"], **distances}
            for name, value in scalars.items():
                if value is not None:
                    self._tb.add_scalar(f"consensus/{name}", value, reading["update_max"])

    def close(self) -> None:
        self._file.close()
        if self._tb:
            self._tb.close()
