"""Checker for exercise 11 (the ε-ball bound): the bound on the consensus error ‖E_k‖_F of gossip with local
updates X_{k+1} = W (X_k − α G_k), against `galakit.gossip.consensus.epsilon_bound` with ρ =
`galakit.gossip.topology.rho` (‖W − J‖₂). The learner's function takes W itself (n = its size), so that ρ is part
of the exercise: ``epsilon_bound(W, alpha, grad_bound, e0=0.0, k=None)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from galakit.exercises.checking import Hint, as_array, call, checker, expect, expect_close
from galakit.gossip.consensus import epsilon_bound
from galakit.gossip.topology import build_topology, rho

INFINITE = 1e12  # a bound this large says "no bound" as well as math.inf (ρ = 1 computed as 1 − 1e-16)


@dataclass(frozen=True)
class Case:
    name: str
    W: np.ndarray
    alpha: float
    grad_bound: float
    e0: float = 0.0
    k: int | None = None

    @property
    def n(self) -> int:
        return len(self.W)

    def bound(self, rho_: float, *, push: float | None = None, gap: float | None = None) -> float:
        """ρᵏ e0 + push (1 − ρᵏ) / gap (at step k) or e0 + push / gap (over all k), push = α ρ √n G and
        gap = 1 − ρ unless given: the bound, or with one ingredient changed, a known wrong answer."""
        push = self.alpha * rho_ * math.sqrt(self.n) * self.grad_bound if push is None else push
        gap = 1 - rho_ if gap is None else gap
        if gap <= 0:
            return math.inf
        return self.e0 + push / gap if self.k is None else rho_**self.k * self.e0 + push * (1 - rho_**self.k) / gap

    def shows(self) -> str:
        if self.n <= 10:
            text = np.array2string(self.W, precision=4, suppress_small=True)
            lines = [f"W ({self.n}×{self.n}) =", *("    " + line for line in text.splitlines())]
        else:
            lines = [f"W ({self.n}×{self.n}), row 0 = {np.array2string(self.W[0], precision=4, max_line_width=200)}"]
        lines.append(f"alpha = {self.alpha:g}, grad_bound = {self.grad_bound:g}, e0 = {self.e0:g}, k = {self.k}")
        return "\n".join(lines)


def _circulant(n: int, weights: dict[int, float]) -> np.ndarray:
    """W with W[i, i − s] = weights[s] (mod n): every learner hears from i − s with that weight."""
    return sum(w * np.roll(np.eye(n), s, axis=0) for s, w in weights.items())


def cases() -> list[Case]:
    ring8, uring16 = build_topology("ring", 8).mixing_matrix(), build_topology("undirected_ring", 16).mixing_matrix()
    swap = np.eye(4)[[0, 1, 3, 2]]  # learners 2 and 3 trade places
    skewed = 0.1 * np.eye(4) + 0.6 * _circulant(4, {1: 1.0}) + 0.3 * swap  # doubly stochastic, not normal
    return [
        Case("GALA as shipped: directed ring, n = 8 (W = (I + P)/2)", ring8, alpha=0.01, grad_bound=1.0),
        Case("undirected ring, n = 16, G = 2", uring16, alpha=0.05, grad_bound=2.0),
        Case("symmetric W with eigenvalues 1, 0.1, 0.1, −0.8", _circulant(4, {0: 0.1, 1: 0.45, -1: 0.45}),
             alpha=0.1, grad_bound=1.0),
        Case("a non-symmetric (and non-normal) doubly stochastic W", skewed, alpha=0.1, grad_bound=0.5),
        Case("learners that start apart: e0 = 3", ring8, alpha=0.01, grad_bound=1.0, e0=3.0),
        Case("the bound at step k = 10, e0 = 2", ring8, alpha=0.01, grad_bound=1.5, e0=2.0, k=10),
        Case("the bound at step k = 0", uring16, alpha=0.05, grad_bound=2.0, e0=1.5, k=0),
        Case("complete graph (W = J): ρ = 0", build_topology("complete", 5).mixing_matrix(), alpha=0.1,
             grad_bound=1.0, e0=0.5),
        Case("no step: α = 0", uring16, alpha=0.0, grad_bound=1.0, e0=1.0),
        Case("nobody talks (W = I): ρ = 1", np.eye(3), alpha=0.01, grad_bound=1.0),
        *(_random_case(seed) for seed in range(6)),
    ]


def _random_case(seed: int) -> Case:
    rng = np.random.default_rng(seed)
    name, n = [("exponential", 8), ("torus", 9), ("ring", 5), ("one_peer_exponential", 8), ("random_regular", 10),
               ("undirected_ring", 7)][seed]
    W = build_topology(name, n, seed=seed).mixing_matrix()  # one step of a time-varying schedule: W_0
    k = None if seed % 2 else int(rng.integers(1, 50))
    return Case(f"random, seed {seed}: {name}, n = {n}", W, alpha=float(rng.uniform(0.001, 0.1)),
                grad_bound=float(rng.uniform(0.5, 3)), e0=float(rng.choice([0.0, rng.uniform(0, 2)])), k=k)


def hints(case: Case) -> list[Hint]:
    """The known wrong answers: each ingredient of ρᵏ e0 + α ρ √n G (1 − ρᵏ) / (1 − ρ) got wrong."""
    W, n, r, k = case.W, case.n, rho(case.W), case.k
    alpha, G = case.alpha, case.grad_bound
    moduli = np.sort(np.abs(np.linalg.eigvals(W)))[::-1]  # |λ₁| = 1 ≥ |λ₂| ≥ ...
    signed = np.sort(np.linalg.eigvals(W).real)[::-1]  # λ₁ = 1 ≥ λ₂ ≥ ...
    frobenius = np.linalg.norm(W - np.full_like(W, 1 / n))
    candidates = [
        (case.bound(r, push=alpha * r * G), "√n is missing: ‖G_k‖_F ≤ √n G, since each of the n rows g_i has "
                                            "‖g_i‖ ≤ G"),
        (case.bound(r, gap=1 - r**2), "the geometric series Σ_t ρᵗ sums to 1/(1 − ρ), not 1/(1 − ρ²): the norms "
                                      "add up, not their squares"),
        (case.bound(r, push=alpha * math.sqrt(n) * G), "the update α G_k is multiplied by W − J too (E_{k+1} = "
                                                       "(W − J)(E_k − α G_k)): each step adds at most α ρ √n G"),
        (replace(case, grad_bound=1.0).bound(r), "G is missing: each step moves a learner by α g_i, of norm up to "
                                                 "α G"),
        (case.bound(moduli[1]), f"you used |λ₂| = {moduli[1]:.4g}, the second-largest |eigenvalue| of W; for a "
                                "non-symmetric W it can be smaller than ρ = ‖W − J‖₂, the largest singular value of "
                                "W − J, which is what contracts E_k"),
        (case.bound(signed[1]), f"you used λ₂ = {signed[1]:.4g}, the second-largest eigenvalue (its real part); "
                                + ("a negative eigenvalue contracts by its modulus: ρ = max(|λ₂|, |λ_n|) = ‖W − J‖₂"
                                   if np.allclose(W, W.T) else "ρ = ‖W − J‖₂, the largest singular value of W − J")),
        (lambda got: got.size == 1 and float(got) >= INFINITE, "ρ = ‖W − J‖₂ < 1 here, so the bound is finite: "
                                                               "check ρ, the spectral norm of W − J "
                                                               "(np.linalg.norm(W − J, 2)), not ‖W‖₂ = 1 nor the "
                                                               "Frobenius norm"),
        (case.bound(frobenius) if frobenius < 1 else None, "you used the Frobenius norm of W − J; ρ is the "
                                                           "spectral norm ‖W − J‖₂ (np.linalg.norm(·, 2))"),
        (replace(case, e0=0.0).bound(r) if case.e0 > 0 else None, "the learners start e0 apart: add ρᵏ e0 (e0 "
                                                                   "over all k)"),
        (replace(case, k=None).bound(r) if k is not None else None, f"this is the bound over all k; at step k = {k} "
                                                                    "it is ρᵏ e0 + α ρ √n G (1 − ρᵏ)/(1 − ρ)"),
        (replace(case, k=k + 1).bound(r) if k is not None else None, "off by one: E_k is k steps from E_0, so ρᵏ"),
        (replace(case, e0=0.0).bound(r) + case.e0 if k else None, "e0 shrinks too: ρᵏ e0 after k steps"),
    ]
    return [Hint(wrong, says) for wrong, says in candidates if wrong is not None]


def _expect_infinite(got: Any, case: Case) -> None:
    try:
        value = float(as_array(got))
    except (TypeError, ValueError):
        value = math.nan
    expect(value >= INFINITE, case=case.name, shows=case.shows(), found=f"expected math.inf, got {got!r}",
           hint="your function returns nothing: is `return` missing?" if got is None else "ρ = ‖W − J‖₂ = 1 here: "
                "nothing contracts the learners' spread, so there is no bound: return math.inf when ρ ≥ 1")


@checker("ε-ball bound", success="your bound matches galakit.epsilon_bound(ρ = ‖W − J‖₂, ...) on every case")
def check_epsilon_bound(fn: Any) -> None:
    """``fn(W, alpha, grad_bound, e0=0.0, k=None)`` → the bound on ‖E_k‖_F (over all k when k is None)."""
    for case in cases():
        expected = epsilon_bound(rho(case.W), case.alpha, case.grad_bound, case.n, e0=case.e0, k=case.k)
        got = call(fn, case.W, case.alpha, case.grad_bound, e0=case.e0, k=case.k, case=case.name)
        if math.isinf(expected):
            _expect_infinite(got, case)
            continue
        expect_close(got, expected, case=case.name, shows=case.shows(), hints=hints(case), what="the bound")
