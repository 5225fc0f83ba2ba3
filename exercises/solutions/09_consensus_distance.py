"""Exercise 09, a reference solution: how far apart are the learners?

Each learner's parameters (a vector, a matrix, a tensor or a whole state_dict) are flattened into one row θ_i of
X (n, d); then ‖θ_i − θ̄‖ for every i, and the largest ‖θ_i − θ_j‖ over all pairs.
"""

import numpy as np


def flatten(p) -> np.ndarray:
    """One learner's parameters as one float64 vector: every tensor of a state_dict, in key order."""
    if isinstance(p, dict):
        return np.concatenate([np.asarray(v, dtype=np.float64).reshape(-1) for v in p.values()])
    return np.asarray(p, dtype=np.float64).reshape(-1)


def distance_to_average(params, center=None):
    """‖θ_i − θ̄‖₂ for each learner i, shape (n,); ``center`` (d,) replaces θ̄ when given."""
    x = np.stack([flatten(p) for p in params])  # (n, d): row i is θ_i
    c = x.mean(axis=0) if center is None else np.asarray(center, dtype=np.float64).reshape(-1)  # (d,)
    return np.linalg.norm(x - c, axis=1)  # norm of each row: (n,)


def max_pairwise_distance(params):
    """max over all pairs (i, j) of ‖θ_i − θ_j‖₂, one number."""
    x = np.stack([flatten(p) for p in params])  # (n, d)
    # The differences themselves, not ‖a‖² + ‖b‖² − 2a·b, which cancels when the learners are close.
    diff = x[:, None, :] - x[None, :, :]  # (n, n, d)
    return float(np.linalg.norm(diff, axis=2).max())
