"""Exercise 04, a reference solution: push each simulator's newest frame onto its stack of the last K frames.

Written with numpy only (no galakit), so that it can be read on its own.
"""

import numpy as np


def push_frame(stack: np.ndarray, frame: np.ndarray, new_game: np.ndarray) -> np.ndarray:
    """stack (N, K, H, W) uint8, oldest frame first; frame (N, H, W); new_game (N,) bool. Returns (N, K, H, W).

    Where the game goes on: drop the oldest frame, shift the rest down one slot, put ``frame`` last.
    Where a new game starts: zeros in the K-1 older slots, ``frame`` last (nothing from the old game survives).
    """
    next_stack = np.empty_like(stack)  # keeps uint8
    next_stack[:, :-1] = stack[:, 1:]
    next_stack[new_game, :-1] = 0
    next_stack[:, -1] = frame
    return next_stack
