"""Claiming a run directory: one run at a time writes into it.

Checking that a directory holds no other run is not enough: a run started a second after another finds no log
there yet, and both would write into it (interleaved CSVs, checkpoints pruned across runs). So a run takes an
exclusive lock on ``<run_dir>/.galakit.lock`` at the moment it checks, and holds it for its whole life. The lock
is ``flock``'s: the kernel drops it when the process ends, however it ends, so a crashed run leaves no stale lock.
"""

from __future__ import annotations

import fcntl
import os
import weakref
from pathlib import Path

from galakit.io import checkpoint as ckpt

LOCK_NAME = ".galakit.lock"
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
        raise ValueError(f"run_dir: got {str(directory)!r}, which is a file; accepted: a directory path")
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise ValueError(f"run_dir: {str(directory)!r} is in use by a run that is still going (process {holder}); "
                         "accepted: another run_dir (--run-dir), or the same once that run has ended") from None
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
