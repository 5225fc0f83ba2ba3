"""Exercise 06, a reference solution: ρ of a ring in closed form, and the spectral gap of any W.

x_{k+1} = W x_k; J = (1/n) 1 1ᵀ; ρ = ‖W − J‖₂ (the largest singular value of W − J); the gap is 1 − ρ.
"""

import numpy as np


def ring_rho(n: int, directed: bool = True) -> float:
    """ρ of the ring of n learners with uniform weights.

    Both W are circulant, so their eigenvectors are the Fourier modes and λ_k (k = 0..n−1) come from P's
    eigenvalues e^{2πik/n}; a circulant W is normal, so ρ = the largest |λ_k| over k ≠ 0.
    * directed, W = (I + P)/2: |λ_k| = |1 + e^{2πik/n}|/2 = |cos(πk/n)|, largest at k = 1: cos(π/n).
    * undirected, W = (I + P + Pᵀ)/3: λ_k = ⅓ + ⅔ cos(2πk/n), largest |λ_k| at k = 1 for n ≥ 3 (the most
      negative one, ⅓ − ⅔ = −⅓ at k = n/2, is never larger).
    """
    if directed:
        return float(np.cos(np.pi / n))
    return float(1 / 3 + 2 / 3 * np.cos(2 * np.pi / n))


def spectral_gap(W: np.ndarray) -> float:
    """1 − ‖W − J‖₂ for a doubly stochastic W (n, n): the singular value, which bounds every step's contraction
    even when W is not symmetric (then |λ₂| can be smaller and says only what happens in the long run)."""
    W = np.asarray(W, dtype=float)
    n = W.shape[0]
    J = np.full((n, n), 1.0 / n)
    return float(1.0 - np.linalg.norm(W - J, ord=2))
