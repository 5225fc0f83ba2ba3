"""Exercise 08, a reference solution: one push-sum step and its read-out.

Every learner keeps a numerator x_i and a weight w_i (at the start x_i and 1) and sends shares of both with the
same column-stochastic W: Σ_i x_i and Σ_i w_i never change, so z_i = x_i / w_i tends to Σ x / Σ w = x̄.
"""

import numpy as np


def push_sum_step(x: np.ndarray, w: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, w) → (W x, W w), and the estimate z = x / w of the new state.

    x: (n, d) numerators, w: (n,) weights, W: (n, n) column-stochastic. Returns x_next (n, d), w_next (n,) and
    z_next (n, d).
    """
    x_next = W @ x  # mix the numerators as they are: division comes last
    w_next = W @ w  # the weights travel with the mass, with the same W
    z_next = x_next / w_next[:, None]  # row i divided by its own w_i
    return x_next, w_next, z_next
