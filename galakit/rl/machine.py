"""What a learner takes from the process it runs in: its device, its CPU threads, its seeds, and (in the caller's
own process) Ctrl-C. ``KernelState`` puts the caller's back afterwards."""

from __future__ import annotations

import os
import random
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from galakit.config import Config, local_learners


def resolve_device(name: str, rank: int = 0) -> torch.device:
    """'auto' → CUDA device ``rank mod #GPUs`` when there are GPUs (several learners may share one), else CPU."""
    if name == "auto":
        name = f"cuda:{rank % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device: got {name!r} (CUDA is not available here); accepted: 'auto' or 'cpu'")
    return torch.device(name)


def learner_cores(world_size: int) -> int:
    """This learner's share of the cores this process may run on (``taskset``, a container's CPU set), split
    between the learners on this machine."""
    return max(1, usable_cores() // local_learners(world_size))


def usable_cores() -> int:
    """The cores this process may run on: ``os.sched_getaffinity`` where there is one, else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def set_threads(cfg: Config, world_size: int) -> int:
    """Set torch's intra-op threads (``cfg.torch_threads``, or this learner's share of the cores); return the share
    (the native simulators' default thread count too)."""
    cores = learner_cores(world_size)
    torch.set_num_threads(cfg.torch_threads or cores)
    return cores


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (the learner samples its actions from torch's)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Within ``with``: torch runs its kernels on ``count`` threads; the caller's count is put back on exit.
    Playing a policy (``evaluate``, ``replay``) runs batches of a few states: one thread does it as fast, and on
    busy cores a second one only waits to be scheduled (20 CartPole games: 1.6 s on one thread, 46 s on two,
    measured at load ~12)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class KernelState:
    """Within ``with``: the calling process's torch thread count and global random generators are saved, and put
    back on exit. A learner trained in a notebook's kernel sets both; the user's next cell gets its own back."""

    def __enter__(self) -> KernelState:
        self.threads = torch.get_num_threads()
        self.rng: tuple[Any, ...] = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        return self

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.threads)
        random.setstate(self.rng[0])
        np.random.set_state(self.rng[1])
        torch.set_rng_state(self.rng[2])
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)


class DeferredInterrupt:
    """Within ``with``: Ctrl-C (SIGINT) or SIGTERM sets ``pending`` instead of raising at once, so that the
    loop finishes its update, saves, and then raises ``KeyboardInterrupt``; a second Ctrl-C raises at once.
    Only for a learner in the caller's process (learner processes leave signals to their launcher), and only in
    the main thread, where signal handlers live."""

    def __init__(self, enabled: bool = True):
        self.enabled, self.pending, self._previous = enabled, False, {}

    def __enter__(self) -> DeferredInterrupt:
        if self.enabled and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(sig) not in (signal.SIG_IGN, None):  # learners ignore SIGINT: keep it so
                    self._previous[sig] = signal.signal(sig, self._note)
        return self

    def _note(self, signum, frame) -> None:
        if self.pending and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.pending = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
