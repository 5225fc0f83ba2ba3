"""A learner process never outlives the process that started it, even when that one is SIGKILLed.

Linux signals a process whose parent dies once the process has asked for it (``PR_SET_PDEATHSIG``), but only
from that moment on: a parent that dies earlier leaves an orphan that trains to the end. So a learner asks as
the very first thing it does (``arm_from_environment`` runs when ``import galakit`` imports this module, before
torch: a spawned learner imports galakit while it unpickles its arguments), then checks that its parent is still
the process that started it, and exits at once if not. ``Run`` starts learners from one thread that lives as
long as the process (``galakit.runtime.launch``), because the signal follows the *thread* that forked the child.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PARENT_ENV = "GALAKIT_LEARNER_PARENT"  # set by Run for the learners it spawns, read once, then removed
EXIT_ORPHANED = 75  # the parent was gone before the death signal was armed
_PR_SET_PDEATHSIG = 1


def die_with_parent(expected_parent: int | None = None) -> None:
    """Get SIGTERM when the parent dies; exit now if the parent is not ``expected_parent`` any more (it died and
    this process was handed to init or a subreaper)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(EXIT_ORPHANED)


def arm_from_environment() -> None:
    """Called by ``import galakit``: arm the death signal in a learner that ``Run`` spawned (``PARENT_ENV``) or
    that torchrun's agent started. The variable is removed so that processes a learner starts in turn (simulator
    workers) do not mistake themselves for learners."""
    parent = os.environ.pop(PARENT_ENV, None)
    if parent is not None:
        die_with_parent(int(parent))
    elif "TORCHELASTIC_RUN_ID" in os.environ and "LOCAL_RANK" in os.environ:
        die_with_parent()
        if os.getppid() == 1:  # the agent died before we armed: init adopted us
            os._exit(EXIT_ORPHANED)


arm_from_environment()
