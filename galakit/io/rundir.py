"""The run directory: where each file of a run lives (``RunDir``), and claiming it, so that one run at a time
writes into it (``claim_run_dir``).

The layout, named once here (``RunDir`` and ``LearnerDir``)::

    <run_dir>/config.json                   the run's galakit.Config, written when the run starts (learner 0)
    <run_dir>/.galakit.lock                 held by the run while it goes
    one learner:   <run_dir>/progress.csv, episodes.csv, checkpoints/ckpt_<global_step>.pt
    several:       <run_dir>/learner_<rank>/progress.csv, episodes.csv, checkpoints/ckpt_<global_step>.pt
                   <run_dir>/consensus.csv (ε-ball readings), consensus/ckpt_<global_step>.pt (the average θ̄)

TensorBoard's event files sit next to the CSV files (``consensus/`` holds the readings' events too).

Claiming: checking that a directory holds no other run is not enough: a run started a second after another finds no log
there yet, and both would write into it (interleaved CSVs, checkpoints pruned across runs). So a run takes an
exclusive lock on ``<run_dir>/.galakit.lock`` at the moment it checks, and holds it for its whole life. The lock
is ``flock``'s: the kernel drops it when the process ends, however it ends, so a crashed run leaves no stale lock.
"""

from __future__ import annotations

import fcntl
import os
import re
import weakref
from pathlib import Path

from galakit.io import checkpoint as ckpt
from galakit.validation import fail

LOCK_NAME = ".galakit.lock"
CONFIG_NAME = "config.json"
_LEARNER = re.compile(r"^learner_(\d+)$")


# -- the layout

class LearnerDir:
    """One learner's folder: the run directory itself for a run of one learner, ``learner_<rank>/`` for one of
    several. It holds that learner's ``progress.csv``, ``episodes.csv`` and ``checkpoints/``."""

    def __init__(self, path: str | Path, rank: int = 0):
        self.path, self.rank = Path(path), rank

    @property
    def progress(self) -> Path:
        return self.path / "progress.csv"

    @property
    def episodes(self) -> Path:
        return self.path / "episodes.csv"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def __repr__(self) -> str:
        return f"LearnerDir({str(self.path)!r}, rank={self.rank})"


class RunDir:
    """The paths of one run directory (the layout in the module docstring). It names files; it creates none."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @classmethod
    def of_learner(cls, folder: str | Path, world_size: int) -> RunDir:
        """The run directory that learner folder ``folder`` belongs to: itself for one learner, else its parent."""
        return cls(folder if world_size == 1 else Path(folder).parent)

    @property
    def config(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def lock(self) -> Path:
        return self.root / LOCK_NAME

    @property
    def consensus_csv(self) -> Path:
        return self.root / "consensus.csv"

    @property
    def consensus_dir(self) -> Path:
        """Where rank 0 saves the learners' average parameters θ̄ at the end of a run of several (and where the
        readings' TensorBoard events go)."""
        return self.root / "consensus"

    def learner(self, rank: int) -> LearnerDir:
        """Learner ``rank``'s folder in a run of several learners."""
        return LearnerDir(self.root / f"learner_{rank}", rank)

    def learner_ranks(self) -> list[int]:
        """The ranks of the ``learner_<rank>/`` folders present, in order (none for a run of one learner)."""
        if not self.root.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.root.iterdir() if p.is_dir() and (m := _LEARNER.match(p.name)))

    def learners(self) -> list[LearnerDir]:
        """Every learner's folder: the ``learner_<rank>/`` ones, or the run directory itself (rank 0)."""
        ranks = self.learner_ranks()
        return [self.learner(r) for r in ranks] if ranks else [LearnerDir(self.root)]

    def holds_a_run(self) -> bool:
        """Whether a run has written here: its config, its consensus log, or a learner's log or checkpoints."""
        written = [self.config, self.consensus_csv]
        for learner in self.learners():
            written += [learner.progress, learner.episodes, learner.checkpoints]
        return any(path.exists() for path in written)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"


# -- claiming: one run at a time

_CLAIMS: weakref.WeakSet[RunDirClaim] = weakref.WeakSet()


class RunDirClaim:
    """The lock on one run directory, held until ``release()`` (or the end of the process). A process forked
    from this one (a simulator worker, a user's pool) drops its copy at once: the lock stays this process's."""

    def __init__(self, directory: Path, fd: int):
        self.directory, self._fd = directory, fd
        _CLAIMS.add(self)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __del__(self) -> None:
        self.release()


def claim_run_dir(directory: str | Path, new_run: bool) -> RunDirClaim:
    """Lock ``directory`` for this run (creating it), then, for a new run, check it holds no earlier run.

    Raises ``ValueError`` naming ``run_dir`` when another live run holds the lock, or (``new_run``) when an
    earlier run left its logs or checkpoints there.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        fail("run_dir", str(directory), "a directory path", "it is a file")
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(RunDir(directory).lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        holder = None
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
    if holder is not None:
        fail("run_dir", str(directory), "another run_dir (--run-dir), or the same once that run has ended",
             f"it is in use by a run that is still going (process {holder})")
    claim = RunDirClaim(directory, fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    if new_run:
        try:
            ckpt.check_new_run_dir(directory)
        except ValueError:
            claim.release()
            raise
    return claim


def _forget_claims_in_child() -> None:
    for claim in list(_CLAIMS):
        if claim._fd is not None:
            os.close(claim._fd)  # the child's copy of the descriptor: the parent's lock is untouched
            claim._fd = None


os.register_at_fork(after_in_child=_forget_claims_in_child)
