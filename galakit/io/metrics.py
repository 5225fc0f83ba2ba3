"""Metrics of a run: what the notebook gets back (``Metrics``), and the CSV and TensorBoard files that hold the
same records on disk (``galakit.io.runs.load_run`` reads them back into a ``Metrics``).

Names follow CleanRL's TensorBoard tags (``charts/episodic_return``, ``charts/SPS``, ``losses/value_loss``, …);
GALA's gossip counters go under ``gossip/…`` and the phase times under ``time/…``.
Two CSV files per learner: ``progress.csv`` (one row per ``log_interval`` updates) and ``episodes.csv`` (one row
per finished game, raw score); with diagnostics on, one per run: ``consensus.csv`` (one row per ε-ball reading).
Each progress row also times the update's three phases: ``time_rollout_s`` (acting; A3C's pull of the shared
model included), ``time_update_s`` (the A2C step; AllReduce's wait for the other learners' gradients included)
and ``time_coupling_s`` (GALA's gossip step). ``staleness`` is the age of the messages of the newest mix, counted
in their senders' updates (never negative; blank until the first mix; ``gossip_mixed`` says whether this update
mixed; see ``galakit.runtime.coupling``).

What the files hold is what ``Metrics`` holds, value for value:

* ``progress.csv`` has one column per key of the rows, in the rows' own order (``PROGRESS_FIELDS`` lists the
  keys a learner reports): nothing a row holds is left out, and a key the run never reports (the gossip counters
  of plain A2C) has no column. ``None`` is written blank; ints and floats as Python writes them (``repr``), so
  that they read back exactly (`parse_value`).
* ``consensus.csv`` has one column per scalar of a reading and one per learner for its two lists:
  ``distance_to_average_<i>`` and ``update_<i>`` (``updates``: the update each learner's θ_i is from).

Rows are written whole and flushed. A row being written, or cut short by a crash, has no line end yet: readers
(`read_csv`) leave it out, and a run that continues the file (a resumed run) drops it first.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from galakit.io.rundir import LearnerDir, RunDir
from galakit.rl.a2c import Episode

if TYPE_CHECKING:
    from galakit.config import Config

# the keys of a progress row (those of its coupling and diagnostics only when the run has them)
PROGRESS_FIELDS = ("rank", "global_step", "update", "time", "SPS", "episodes", "episodic_return_mean",
                   "episodic_length_mean", "learning_rate", "policy_loss", "value_loss", "entropy",
                   "explained_variance", "grad_norm", "step_norm", "gossip_mixed", "gossip_mixed_total",
                   "gossip_skipped_total", "gossip_waits_total", "gossip_rejected_total", "gossip_wait_s",
                   "staleness", "consecutive_skips", "messages_sent", "messages_received", "messages_dropped",
                   "time_rollout_s", "time_update_s", "time_coupling_s")
EPISODE_FIELDS = ("global_step", "return", "length")
CONSENSUS_FIELDS = ("time", "update_min", "update_max", "max_pairwise_distance", "epsilon_bound")
# a reading's lists, one value per learner i: the key in the reading → the column of learner i
CONSENSUS_LISTS = {"distance_to_average": "distance_to_average_{}", "updates": "update_{}"}
TENSORBOARD_TAGS = {"SPS": "charts/SPS", "learning_rate": "charts/learning_rate",
                    "episodic_return_mean": "charts/episodic_return_mean", "policy_loss": "losses/policy_loss",
                    "value_loss": "losses/value_loss", "entropy": "losses/entropy",
                    "explained_variance": "losses/explained_variance", "grad_norm": "losses/grad_norm",
                    "step_norm": "charts/step_norm", "time_rollout_s": "time/rollout_s",
                    "time_update_s": "time/update_s", "time_coupling_s": "time/coupling_s",
                    "staleness": "gossip/staleness", "consecutive_skips": "gossip/consecutive_skips",
                    "gossip_mixed_total": "gossip/mixed_total", "gossip_skipped_total": "gossip/skipped_total",
                    "gossip_waits_total": "gossip/waits_total", "gossip_rejected_total": "gossip/rejected_total",
                    "gossip_wait_s": "gossip/wait_s",
                    "messages_sent": "gossip/messages_sent", "messages_received": "gossip/messages_received",
                    "messages_dropped": "gossip/messages_dropped"}


@dataclass
class Metrics:
    """What ``galakit.train`` returns, and what ``galakit.load_run`` rebuilds from a run directory: every finished
    game (``episodes``), every progress row (``progress``), every ε-ball reading (``consensus``), where the run
    wrote (``run_dir``), its newest checkpoint (``checkpoint``: for a run of several learners, their average
    model's) and its settings (``config``, a ``galakit.Config``).

    A run of several learners collects games and rows as they arrive: each learner's in its own order, the
    learners interleaved. ``in_step_order()`` sorts them by (global step, rank), which keeps each learner's order
    and is the order ``load_run`` gives.
    """

    episodes: list[Episode] = field(default_factory=list)
    progress: list[dict[str, Any]] = field(default_factory=list)
    run_dir: str | None = None
    checkpoint: str | None = None
    consensus: list[dict[str, Any]] = field(default_factory=list)
    config: Config | None = None

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

    def in_step_order(self) -> Metrics:
        """A copy whose games and rows are sorted by (global step, rank); the sort is stable, so each learner's
        own order stays. For one learner it changes nothing."""
        return dataclasses.replace(self, episodes=sorted(self.episodes, key=lambda e: (e.global_step, e.rank)),
                                   progress=sorted(self.progress, key=lambda r: (r["global_step"], r.get("rank", 0))))


# -- CSV files: written whole, read back exactly

_INT = re.compile(r"[-+]?\d+")


def parse_value(text: str) -> Any:
    """A CSV cell back to the value that was written: ``''`` → None, ``'12'`` → 12, ``'0.1'``, ``'1e-05'``,
    ``'nan'`` → float (Python writes a float as its shortest repr, which reads back to the same float),
    ``'True'`` / ``'False'`` → bool; any other text stays a str."""
    if text == "":
        return None
    if _INT.fullmatch(text):
        return int(text)
    if text in ("True", "False"):
        return text == "True"
    try:
        return float(text)
    except ValueError:
        return text


def _complete_text(path: Path) -> tuple[str, bool] | None:
    """(the text of ``path`` up to its last line end, whether a line cut short followed), or None if it is
    missing."""
    try:
        with open(path, newline="") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    end = text.rfind("\n") + 1
    return text[:end], end < len(text)


def read_csv(path: str | Path) -> tuple[list[str] | None, list[dict[str, str]]]:
    """(header, rows as text) of the complete lines of ``path``; (None, []) for a missing or empty file, or one
    whose header is still being written. A last line without its line end (being written, or cut short by a
    crash) is left out."""
    found = _complete_text(Path(path))
    if found is None:
        return None, []
    reader = csv.DictReader(io.StringIO(found[0], newline=""))
    rows = list(reader)
    return reader.fieldnames, rows


def _write_csv(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    """Replace ``path`` with ``fields`` and ``rows``, atomically (a crash leaves the old file or the new one)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def open_csv(path: Path, fields: tuple[str, ...] | list[str]):
    """(file, DictWriter) appending to ``path`` under the columns ``fields``; the header is written when the file
    is new. A file that a run continues (a resumed run) is first put right, rewritten atomically: a last line cut
    short goes (the next row would be glued to it), and columns it lacks are added after its own, so that every
    value stays under its name."""
    header, rows = read_csv(path)
    columns = list(header or []) + [f for f in fields if f not in (header or [])]
    if header is not None and (columns != header or _complete_text(path)[1]):
        _write_csv(path, columns, rows)
    f = open(path, "a" if header is not None else "w", newline="")
    writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
    if header is None:
        writer.writeheader()
        f.flush()
    return f, writer


def truncate_csv(path: Path, last_step: int, column: str = "global_step") -> None:
    """Keep only the rows of ``path`` with ``column <= last_step`` (rewritten atomically). A run that crashed
    after its last checkpoint had logged rows past it; resumed from that checkpoint, it logs them again.
    ``consensus.csv`` is cut by ``update_max``, the newest update a reading saw."""
    fields, rows = read_csv(path)
    if fields is None:
        return
    _write_csv(path, fields, [r for r in rows if _step(r, column) is not None and _step(r, column) <= last_step])


def _step(row: dict[str, str], column: str = "global_step") -> int | None:
    """A row's step (``column``), or None for a row that does not hold one."""
    try:
        return int(row[column])
    except (TypeError, ValueError, KeyError):
        return None


def progress_columns(row: dict[str, Any]) -> list[str]:
    """The columns of ``progress.csv`` for rows like ``row``: its keys, in its order (read back, a row has the
    same keys in the same order)."""
    return list(row)


def read_progress(path: str | Path) -> list[dict[str, Any]]:
    """The progress rows of ``progress.csv`` as ``Learner`` made them (blank → None; ints and floats exactly)."""
    return [{k: parse_value(v) for k, v in row.items()} for row in read_csv(path)[1]]


def read_episodes(path: str | Path, rank: int = 0) -> list[Episode]:
    """The finished games of ``episodes.csv``, in the order they ended, as learner ``rank``'s."""
    return [Episode(int(r["global_step"]), float(r["return"]), int(r["length"]), rank) for r in read_csv(path)[1]]


def consensus_columns(num_learners: int) -> tuple[str, ...]:
    """The columns of ``consensus.csv`` for a run of ``num_learners``."""
    lists = (column.format(i) for column in CONSENSUS_LISTS.values() for i in range(num_learners))
    return (*CONSENSUS_FIELDS, *lists)


def consensus_row(reading: dict[str, Any]) -> dict[str, Any]:
    """A reading (``galakit.runtime.diagnostics.consensus_reading``) as one CSV row: its lists spread over one
    column per learner."""
    row = {name: reading[name] for name in CONSENSUS_FIELDS}
    for key, column in CONSENSUS_LISTS.items():
        row.update({column.format(i): value for i, value in enumerate(reading.get(key, ()))})
    return row


def read_consensus(path: str | Path) -> list[dict[str, Any]]:
    """The readings of ``consensus.csv``, oldest first, as ``consensus_reading`` made them. A file written before
    galakit logged ``update_<i>`` gives readings without ``updates``."""
    fields, rows = read_csv(path)
    n = sum(1 for f in fields or () if f.startswith("distance_to_average_"))
    readings = []
    for row in rows:
        reading = {name: parse_value(row[name]) for name in CONSENSUS_FIELDS}
        for key, column in CONSENSUS_LISTS.items():
            if column.format(0) in row:
                reading[key] = [parse_value(row[column.format(i)]) for i in range(n)]
        readings.append(reading)
    return readings


class MetricsWriter:
    """Appends progress rows and episodes to CSV files and, optionally, TensorBoard. ``resumed_at``: the global
    step of the checkpoint a resumed run continues from; rows logged after it (by the run that crashed) go, from
    the CSV files and from TensorBoard's view (``purge_step``).
    ``progress.csv`` takes its columns from the first row (`progress_columns`), and more if a later row brings a
    new key."""

    def __init__(self, run_dir: str | Path, tensorboard: bool = True, hparams: dict[str, Any] | None = None,
                 resumed_at: int | None = None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        files = LearnerDir(self.run_dir)
        if resumed_at is not None:
            for path in (files.progress, files.episodes):
                truncate_csv(path, resumed_at)
        self._progress_path = files.progress
        self._progress_path.touch()  # the run's mark from the start (a new run refuses a directory holding one)
        self._progress = None  # (file, writer), opened at the first row, whose keys name the columns
        self._episodes = open_csv(files.episodes, EPISODE_FIELDS)
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: it is slow to import

            self._tb = SummaryWriter(str(self.run_dir), purge_step=_purge_step(resumed_at))
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
        if self._progress is None or not row.keys() <= set(self._progress[1].fieldnames):
            if self._progress is not None:
                self._progress[0].close()
            self._progress = open_csv(self._progress_path, progress_columns(row))
        f, writer = self._progress
        writer.writerow(row)
        f.flush()
        if self._tb:
            for key, tag in TENSORBOARD_TAGS.items():
                if row.get(key) is not None and np.isfinite(row[key]):
                    self._tb.add_scalar(tag, row[key], row["global_step"])

    def close(self) -> None:
        for opened in (self._progress, self._episodes):
            if opened is not None:
                opened[0].close()
        if self._tb:
            self._tb.close()


def _purge_step(resumed_at: int | None) -> int | None:
    """TensorBoard's ``purge_step`` for a run resumed at step ``resumed_at``: the events after it are hidden."""
    return None if resumed_at is None else resumed_at + 1


class ConsensusWriter:
    """Appends ε-ball readings (``galakit.runtime.diagnostics``) to ``<run_dir>/consensus.csv``, one column per
    learner for each list of a reading (`consensus_columns`), and to TensorBoard under ``<run_dir>/consensus``
    (tags ``consensus/…``, step = newest update). ``resumed_at``: the oldest update the learners of a resumed run
    continue from; the readings that saw a later one were of the run that crashed, and go (`truncate_csv`)."""

    def __init__(self, run_dir: str | Path, num_learners: int, tensorboard: bool = True,
                 resumed_at: int | None = None):
        self.fields = consensus_columns(num_learners)
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resumed_at is not None:
            truncate_csv(RunDir(self.run_dir).consensus_csv, resumed_at, column="update_max")
        self._file, self._csv = open_csv(RunDir(self.run_dir).consensus_csv, self.fields)
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(RunDir(self.run_dir).consensus_dir), purge_step=_purge_step(resumed_at))

    def write(self, reading: dict[str, Any]) -> None:
        self._csv.writerow(consensus_row(reading))
        self._file.flush()
        if self._tb:
            distances = {f"distance_to_average_{i}": d for i, d in enumerate(reading["distance_to_average"])}
            scalars = {"max_pairwise_distance": reading["max_pairwise_distance"],
                       "epsilon_bound": reading["epsilon_bound"], **distances}
            for name, value in scalars.items():
                if value is not None:
                    self._tb.add_scalar(f"consensus/{name}", value, reading["update_max"])

    def close(self) -> None:
        self._file.close()
        if self._tb:
            self._tb.close()
