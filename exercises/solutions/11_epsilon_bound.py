"""Exercise 11, a reference solution: the ε-ball bound for gossip with local updates X_{k+1} = W (X_k − α G_k).

E_k = X_k − J X_k obeys E_{k+1} = (W − J)(E_k − α G_k) (doubly stochastic W), so with ρ = ‖W − J‖₂ and
‖G_k‖_F ≤ √n G:  ‖E_{k+1}‖_F ≤ ρ ‖E_k‖_F + α ρ √n G, and unrolled from ‖E_0‖_F = e0,
‖E_k‖_F ≤ ρᵏ e0 + α ρ √n G (1 − ρᵏ)/(1 − ρ) ≤ e0 + α ρ √n G / (1 − ρ).
"""

import math

import numpy as np


def epsilon_bound(W, alpha, grad_bound, e0=0.0, k=None):
    """The bound on ‖E_k‖_F at step k, or over all k when k is None (math.inf when ρ ≥ 1)."""
    W = np.asarray(W, dtype=np.float64)
    n = W.shape[0]
    J = np.full((n, n), 1.0 / n)
    rho = np.linalg.norm(W - J, ord=2)  # the largest singular value of W − J
    push = alpha * rho * math.sqrt(n) * grad_bound  # the most one step can add to ‖E‖_F
    if k is None:
        return e0 + push / (1 - rho) if rho < 1 else math.inf
    if rho == 1:
        return e0 + push * k  # Σ_{t<k} ρᵗ = k
    return rho**k * e0 + push * (1 - rho**k) / (1 - rho)
