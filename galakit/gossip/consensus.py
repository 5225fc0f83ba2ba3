"""How far apart are the learners? Each learner's distance to the average, the largest pairwise distance, and the
ε-ball bound for gossip with local updates. Shared by the gossip simulator, the training loop and the plots.

Notation: X ∈ ℝ^{n×d} stacks the n learners' flattened parameters (row i = θ_i), x̄ = (1/n) Σ_i θ_i is their
average, J = (1/n) 1 1ᵀ, and E = X − J X = X − 1 x̄ᵀ is the consensus error (‖E‖_F² = Σ_i ‖θ_i − x̄‖²).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from galakit.validation import Described, fail

Params = np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor] | Sequence[Mapping[str, torch.Tensor]]


def stack_parameters(params: Params) -> torch.Tensor:
    """X with shape (n, d): one row of flattened parameters per learner.

    Accepts a 2-D array/tensor (n, d) (a 1-D one is read as n scalars, d = 1), a list of n arrays/tensors of any
    (equal) size, or a list of n ``state_dict``s; a state_dict contributes its floating-point tensors flattened
    in key order (integer buffers such as BatchNorm's ``num_batches_tracked`` are skipped).
    """
    if isinstance(params, (np.ndarray, torch.Tensor)):
        x = torch.as_tensor(params).detach()
        if x.ndim not in (1, 2):
            fail("params", Described(f"an array of shape {tuple(x.shape)}"), "one array (n,) or (n, d), a list of "
                 "n arrays or tensors, or a list of n state_dicts")
        return _floating(x.reshape(x.shape[0], -1))
    if len(params) == 0:
        fail("params", params, "one entry per learner (n >= 1)")
    if isinstance(params[0], Mapping):
        rows = _flatten_state_dicts(params)
    else:
        rows = [torch.as_tensor(p).detach().reshape(-1) for p in params]
    sizes = [r.numel() for r in rows]
    if len(set(sizes)) > 1:
        fail("params", Described(f"{len(rows)} learners with {sizes} parameters"), "the same number of "
             "parameters d for every learner")
    return _floating(torch.stack(rows))


def distance_to_average(params: Params, center: np.ndarray | torch.Tensor | None = None) -> np.ndarray:
    """‖θ_i − x̄‖₂ for each learner i: shape (n,).

    ``center`` (shape (d,)) replaces x̄ when the average is known otherwise, e.g. push-sum's Σ s_i / Σ w_i.
    """
    x = stack_parameters(params)
    center = x.mean(dim=0) if center is None else torch.as_tensor(center, dtype=x.dtype).reshape(-1)
    return torch.linalg.vector_norm(x - center, dim=1).cpu().double().numpy()


def consensus_error(params: Params) -> float:
    """‖X − 1x̄ᵀ‖_F = sqrt(Σ_i ‖θ_i − x̄‖²), the quantity the ε-ball bound controls."""
    return float(np.linalg.norm(distance_to_average(params)))


def max_pairwise_distance(params: Params, chunk_size: int = 256) -> float:
    """max_{i,j} ‖θ_i − θ_j‖₂, computed exactly in O(n² d) (rows in chunks to bound memory)."""
    x = stack_parameters(params)
    best = 0.0
    for start in range(0, x.shape[0], chunk_size):
        # Differences, not the ‖a‖² + ‖b‖² − 2a·b expansion: the latter cancels catastrophically near consensus.
        d = torch.cdist(x[start:start + chunk_size], x, compute_mode="donot_use_mm_for_euclid_dist")
        best = max(best, float(d.max()))
    return best


RHO_ATOL = 1e-12  # ρ this close to 1 is 1 (computed norms are off by a few ulps)


def epsilon_bound(rho: float, alpha: float, grad_bound: float, n: int, e0: float = 0.0, k: int | None = None,
                  window: int = 1) -> float:
    """Upper bound on the consensus error ‖E_k‖_F of X_{k+1} = W_k (X_k − α G_k), ‖g_i‖ ≤ G, W_k doubly stochastic.

    This is the standard derivation (reference note §6.8), not the GALA paper's theorem, whose exact constants
    are still to be checked against its PDF. Since (W − J) J = 0 and J W = J,

        E_{k+1} = (W − J)(E_k − α G_k),   so   ‖E_{k+1}‖_F ≤ ρ ‖E_k‖_F + α ρ √n G,

    with ρ = ‖W − J‖₂ and ‖G_k‖_F ≤ √n G. Unrolling from ‖E_0‖_F = e0:

        ‖E_k‖_F ≤ ρᵏ e0 + α ρ √n G (1 − ρᵏ) / (1 − ρ)   and   sup_k ‖E_k‖_F ≤ e0 + α ρ √n G / (1 − ρ):

    the learners stay in a ball of radius O(α G √n / (1 − ρ)) around their average.

    For a time-varying schedule of period τ (``window=τ``), pass ρ = ‖W_{τ−1}⋯W_0 − J‖₂ (`Schedule.rho`): each
    W_k − J has norm ≤ 1, so a window adds at most τ α √n G, and with k = mτ + r,
    ‖E_k‖_F ≤ σᵐ e0 + α √n G (τ (1 − σᵐ) / (1 − σ) + r), σ = ρ.

    Args:
        rho: ρ of one step (``window=1``) or of one period (``window=τ``).
        alpha: step size α of the local update.
        grad_bound: G, a bound on each learner's update direction ‖g_i‖₂.
        n: number of learners.
        e0: initial consensus error ‖E_0‖_F (0 when all learners start from the same parameters, as in GALA;
            with ``identical_init=False``, the spread of their initial models: `diagnostics.initial_spread`).
        k: return the bound at step k; ``None`` returns the bound over all k (the ε-ball radius).
        window: τ, the number of steps ``rho`` covers.
    Returns:
        The bound (``math.inf`` when ρ ≥ 1 and the updates can push the learners apart).
    """
    _check_nonneg(rho=rho, alpha=alpha, grad_bound=grad_bound, e0=e0)
    if abs(rho - 1) <= RHO_ATOL:
        rho = 1.0  # ‖W − J‖₂ of a disconnected or identity W comes out as 1 ± 1e-16: the bound must not flip
    for name, value in (("n", n), ("window", window)):
        if not value >= 1:
            fail(name, value, "an int >= 1")
    if k is not None and not k >= 0:
        fail("k", k, "an int >= 0, or None for the bound over all k")
    push = alpha * math.sqrt(n) * grad_bound  # α √n G: the most the updates can add to ‖E‖_F per step
    per_window = rho if window == 1 else window  # what one window adds, in units of α √n G
    if k is None:
        if push == 0:
            return e0 if rho <= 1 else math.inf
        return e0 + push * (per_window / (1 - rho) + window - 1) if rho < 1 else math.inf
    m, r = divmod(k, window)
    geometric = m if rho == 1 else (1 - rho**m) / (1 - rho)  # Σ_{t<m} ρᵗ
    return rho**m * e0 + push * (per_window * geometric + r)


def predicted_steps(rho: float, rel_error: float, window: int = 1) -> int | float:
    """Steps k until ρ^{k/τ} ≤ ``rel_error``: k = τ ⌈log(1/ε) / log(1/ρ)⌉ ≈ τ log(1/ε) / (1 − ρ).

    That many steps shrink the consensus error by the factor ``rel_error`` (gossip without local updates,
    doubly stochastic W). Returns ``math.inf`` when ρ ≥ 1 (no guaranteed contraction).
    """
    _check_nonneg(rho=rho, rel_error=rel_error)
    if rel_error >= 1:
        return 0
    if rho == 0:
        return window
    if rho >= 1 or rel_error == 0:
        return math.inf
    periods = math.log(rel_error) / math.log(rho)
    return window * math.ceil(periods - 1e-12)  # the tolerance absorbs round-off when the ratio is an integer


def _flatten_state_dicts(state_dicts: Sequence[Mapping[str, torch.Tensor]]) -> list[torch.Tensor]:
    keys = [k for k, v in state_dicts[0].items() if torch.as_tensor(v).is_floating_point()]
    rows = []
    for i, sd in enumerate(state_dicts):
        mine = [k for k, v in sd.items() if torch.as_tensor(v).is_floating_point()]
        if mine != keys:
            missing, extra = sorted(set(keys) - set(mine)), sorted(set(mine) - set(keys))
            why = f"missing {missing}, extra {extra}" if missing or extra else "the same keys in another order"
            fail("params", Described(f"state_dict {i}"), "state_dicts with the same floating-point keys, in the "
                 "same order", f"its floating-point keys differ from state_dict 0's: {why}")
        rows.append(torch.cat([torch.as_tensor(sd[k]).detach().reshape(-1) for k in keys]))
    return rows


def _floating(x: torch.Tensor) -> torch.Tensor:
    return x if x.is_floating_point() else x.double()


def _check_nonneg(**values: float) -> None:
    for name, value in values.items():
        if not value >= 0:  # also rejects NaN
            fail(name, value, "a number >= 0")
