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

SPIN_COUNT = "3000"


def shorten_openmp_spin() -> None:
    """Set ``GOMP_SPINCOUNT`` for this process and the processes it starts, unless it is set already."""
    os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)


shorten_openmp_spin()
