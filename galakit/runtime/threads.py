"""How a learner shares the CPU cores between torch's threads and the emulators' threads.

torch runs its CPU kernels on an OpenMP thread team (libgomp). After each parallel region the idle team threads
spin, by default for ~300,000 iterations (milliseconds on a busy VM), before they sleep. In an RL loop the
region is followed by ``env.step``, whose emulator threads then find a core taken by a spinning thread: on 2
cores the Atari loop ran ~10 % slower for it (``bench/README.md``). A spin count of a few thousand keeps the team
awake between the kernels of one forward pass but frees the core for the emulators.

libgomp reads ``GOMP_SPINCOUNT`` once, when torch is first imported, so galakit sets it (unless you did) when
it is imported itself: it takes effect in every learner process galakit starts, and in your own process if
``import galakit`` comes before ``import torch``. A single-threaded learner (``torch_threads=1``) has no team and
is not affected.
"""

import os
import sys
import warnings

SPIN_COUNT = "3000"
TOO_LATE = ("galakit was imported after torch, so torch's idle threads in this process keep spinning between "
            "kernels (a learner trained in this process, evaluate and replay can run several times slower on a busy "
            "machine; the learner processes galakit starts are not affected): import galakit before torch, or "
            f"set GOMP_SPINCOUNT={SPIN_COUNT} before Python starts")


def shorten_openmp_spin() -> None:
    """Set ``GOMP_SPINCOUNT`` for this process and the processes it starts, unless it is set already; warn when
    torch is loaded already (libgomp has read the variable then)."""
    if "GOMP_SPINCOUNT" in os.environ:
        return
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    if "torch" in sys.modules:
        warnings.warn(TOO_LATE, RuntimeWarning, stacklevel=3)


shorten_openmp_spin()
