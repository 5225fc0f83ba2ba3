"""Live ε-ball diagnostics of a run: how far each learner's parameters are from the learners' average.

Every ``diag_interval`` updates each learner copies its parameters θ_i (D,) into its row of a shared-memory
board (one copy under the row's own lock: a learner never waits for another learner). The launcher reads the
board and computes, with ``galakit.consensus``,

    ‖θ_i − θ̄‖ for each learner,   max_ij ‖θ_i − θ_j‖,   and the bound  ε = α ρ √n G / (1 − ρ)

where ρ is the contraction of the topology (one period of its schedule) and α G is the largest local step
‖θ_after − θ_before‖ the learners reported. The bound is the standard one for synchronous gossip
(``galakit.consensus.epsilon_bound``); asynchronous gossip mixes less often, so read it as a reference line.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from galakit.consensus import distance_to_average, epsilon_bound, max_pairwise_distance


class DiagnosticsBoard:
    """Rows of the latest published parameters, one per learner, in shared memory (picklable for spawn)."""

    def __init__(self, world_size: int, dim: int, mp_context):
        self.params = torch.zeros(world_size, dim).share_memory_()
        self.updates = torch.full((world_size,), -1, dtype=torch.int64).share_memory_()
        self.step_norms = torch.zeros(world_size, dtype=torch.float64).share_memory_()
        self.locks = [mp_context.Lock() for _ in range(world_size)]

    def publish(self, rank: int, update: int, theta: torch.Tensor, step_norm: float) -> None:
        with self.locks[rank]:
            self.params[rank].copy_(theta)
            self.updates[rank] = update
            self.step_norms[rank] = max(float(self.step_norms[rank]), step_norm)

    def snapshot(self) -> tuple[torch.Tensor, np.ndarray, float] | None:
        """(θ (n, D), update index of each row, max step norm), or None until every learner has published."""
        rows = []
        for rank, lock in enumerate(self.locks):
            with lock:
                rows.append(self.params[rank].clone())
        updates = self.updates.numpy().copy()
        if (updates < 0).any():
            return None
        return torch.stack(rows), updates, float(self.step_norms.max())


def consensus_reading(board: DiagnosticsBoard, rho: float | None, window: int = 1) -> dict[str, Any] | None:
    """One reading of the board: distances to the average, max pairwise distance and the ε bound."""
    snap = board.snapshot()
    if snap is None:
        return None
    params, updates, step_norm = snap
    n = params.shape[0]
    bound = None
    if rho is not None and rho < 1:
        bound = epsilon_bound(rho, alpha=1.0, grad_bound=step_norm, n=n, window=window)
    return {"update_min": int(updates.min()), "update_max": int(updates.max()),
            "distance_to_average": distance_to_average(params).tolist(),
            "max_pairwise_distance": max_pairwise_distance(params), "epsilon_bound": bound}
