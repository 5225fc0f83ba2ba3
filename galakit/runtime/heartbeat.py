"""Heartbeats: which learner is the run waiting for?

In a run that waits (AllReduce, GALA with ``sync_freq`` set) one frozen learner — stopped, swapped out, stuck in a
simulator — stalls every other learner inside an all-reduce or a gossip wait, silently, until gloo's timeout.
Each learner therefore notes in shared memory when it last made progress and whether it is waiting for others.
When nobody has made progress for ``stall_timeout`` seconds, the learners that are *not* waiting are the ones
the others wait for: the supervisor names them and stops the run.
"""

from __future__ import annotations

import time

import torch


class Heartbeats:
    """(n, 2) float64 in shared memory: for each learner, the time (``time.time()``) of its last progress (0
    until its first update: start-up, which meeting the others bounds, is not judged), and the time it started
    waiting for the others (0 when it is not waiting)."""

    def __init__(self, num_learners: int):
        self.table = torch.zeros(num_learners, 2, dtype=torch.float64).share_memory_()

    def beat(self, rank: int) -> None:
        """Learner ``rank`` made progress (finished an update, or got what it waited for)."""
        self.table[rank, 0], self.table[rank, 1] = time.time(), 0.0

    def waiting(self, rank: int) -> None:
        """Learner ``rank`` starts waiting for the others (an all-reduce, a blocking gossip step)."""
        now = time.time()
        self.table[rank, 0], self.table[rank, 1] = now, now

    def stalled(self, timeout: float, ranks: list[int]) -> list[int] | None:
        """When none of ``ranks`` (the learners still running) has made progress for ``timeout`` seconds and some
        of them wait: those the others wait for (all of them, if every one waits); otherwise None. (Nobody
        waiting is a slow run, not a stalled one.)"""
        now, table = time.time(), self.table.clone()
        if not ranks or any(table[r, 0] == 0 or now - float(table[r, 0]) <= timeout for r in ranks):
            return None
        waiting = [r for r in ranks if table[r, 1] != 0]
        if not waiting:
            return None
        return [r for r in ranks if r not in waiting] or list(ranks)
