"""Checkers of exercise 06: ρ of a ring in closed form (`check_ring_rho`) and the spectral gap 1 − ‖W − J‖₂ of
any W (`check_spectral_gap`).

The references are galakit's own: ``build_topology("ring" | "undirected_ring", n).rho()`` and
``galakit.gossip.topology.spectral_gap``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from galakit.exercises.checking import Hint, call, checker, expect, expect_close
from galakit.gossip.topology import averaging_matrix, build_topology, eigenvalues, spectral_gap

DIRECTED = (8, 2, 3, 4, 5, 16, 64)
UNDIRECTED = (8, 3, 4, 5, 16, 64)  # n = 2 is no ring: both neighbours are the same learner


@checker("ρ of a ring", success="your closed forms match ‖W − J‖₂ of galakit's rings for every n")
def check_ring_rho(fn: Callable) -> None:
    """Check ``fn(n, directed) -> ρ`` against ``build_topology("ring"/"undirected_ring", n).rho()``."""
    for directed, sizes in ((True, DIRECTED), (False, UNDIRECTED)):
        for n in sizes:
            name = f"{'directed' if directed else 'undirected'} ring, n = {n}"
            shows = (f"n = {n}, directed = {directed}: " + ("W = (I + P)/2, learner r sends to r + 1 with weight ½"
                     if directed else "W = (I + P + Pᵀ)/3, learner r exchanges with r ± 1, weights ⅓"))
            expected = build_topology("ring" if directed else "undirected_ring", n).rho()
            got = real_number(call(fn, n, directed=directed, case=name), name, shows)
            expect_close(got, expected, case=name, shows=shows, what="ρ", hints=ring_mistakes(n, directed, expected))


def ring_mistakes(n: int, directed: bool, rho: float) -> list[Hint]:
    c1, c2 = np.cos(np.pi / n), np.cos(2 * np.pi / n)
    found = [Hint(1.0, "ρ = 1 is λ₁ = 1, the eigenvalue of the average (W keeps it): ρ is about the other "
                       "eigenvalues, the largest |λ| among λ₂, …, λ_n"),
             Hint(1.0 - rho, "that is the spectral gap 1 − ρ: return ρ itself")]
    if directed:
        found += [
            Hint(c1**2, "cos²(π/n) = (1 + cos(2π/n))/2 is the real part of λ₂ = (1 + e^{2πi/n})/2. W is not "
                        "symmetric, its λ₂ is complex, and ρ is its modulus |λ₂|"),
            Hint(c2, "the angle is π/n: |λ₂| = |1 + e^{2πi/n}|/2 = |cos(π/n)|, half the angle of P's eigenvalue"),
            Hint((1 + 2 * c2) / 3, "that is the undirected ring's ρ (weights ⅓); directed=True is the ring "
                                   "r → r + 1 with weights ½"),
        ]
    else:
        found += [
            Hint(c1, "that is the directed ring's ρ; directed=False is the ring where r exchanges with r ± 1 "
                     "(weights ⅓)"),
            Hint(c2, "the ⅓ self-weight is missing: W = (I + P + Pᵀ)/3, so λ_k = ⅓ + ⅔ cos(2πk/n), not cos(2πk/n)"),
            Hint(2 * c2 / 3, "the ⅓ self-weight is missing: W = (I + P + Pᵀ)/3, so λ_k = ⅓ + ⅔ cos(2πk/n)"),
            Hint((1 + 2 * c1) / 3, "the angle is 2π/n: P's eigenvalues are e^{2πik/n}, and P + Pᵀ has 2 cos(2πk/n)"),
        ]
    return found


@checker("spectral gap", success="your spectral gap matches galakit.gossip.topology.spectral_gap on every W, "
                                 "symmetric, directed and not normal")
def check_spectral_gap(fn: Callable) -> None:
    """Check ``fn(W) -> 1 − ‖W − J‖₂`` against galakit's ``spectral_gap``."""
    for name, W in gap_cases():
        shows = f"W =\n{np.array2string(W, precision=4, suppress_small=True)}"
        got = real_number(call(fn, W, case=name), name, shows)
        expect_close(got, spectral_gap(W), case=name, shows=shows, what="the spectral gap", hints=gap_mistakes(W))


def gap_cases() -> list[tuple[str, np.ndarray]]:
    n = 4
    P, swap = np.roll(np.eye(n), 1, axis=0), np.eye(n)[[1, 0, 2, 3]]
    found = [
        ("directed ring, n = 8 (weights ½)", build_topology("ring", 8).mixing_matrix()),
        ("undirected ring, n = 8 (weights ⅓)", build_topology("undirected_ring", 8).mixing_matrix()),
        ("complete graph, n = 5 (W = J)", build_topology("complete", 5).mixing_matrix()),
        ("a ring of 4 with a small self-weight: W = 0.1 I + 0.45 (P + Pᵀ)", 0.1 * np.eye(n) + 0.45 * (P + P.T)),
        ("a doubly stochastic W that is not normal: W = (2I + P + Q)/4, P a cycle, Q a swap",
         (2 * np.eye(n) + P + swap) / 4),
        ("step 1 of the one-peer exponential graph, n = 6 (everyone sends to r + 2)",
         build_topology("one_peer_exponential", 6).mixing_matrix(1)),
    ]
    for seed in range(3):
        found.append((f"random doubly stochastic W, n = 6 (seed {seed})", random_doubly_stochastic(6, seed)))
    return found


def random_doubly_stochastic(n: int, seed: int) -> np.ndarray:
    """A mix a₀ I + Σ_m a_m P_m of random permutations (a ~ Dirichlet): doubly stochastic, in general not normal."""
    rng = np.random.default_rng(seed)
    a = rng.dirichlet(np.ones(4))
    return a[0] * np.eye(n) + sum(a_m * np.eye(n)[rng.permutation(n)] for a_m in a[1:])


def gap_mistakes(W: np.ndarray) -> list[Hint]:
    J = averaging_matrix(W.shape[0])
    lam = eigenvalues(W)  # by decreasing modulus: λ₁ = 1 first
    by_value = np.sort(lam.real)[::-1]
    found = [
        Hint(1.0 - np.linalg.norm(W - J), "np.linalg.norm(W − J) is the Frobenius norm; ρ is the spectral norm, "
                                          "np.linalg.norm(W − J, ord=2) (the largest singular value)"),
        Hint(1.0 - np.abs(lam[1]), "1 − |λ₂| is right for a symmetric (or normal) W, not for this one: W Wᵀ ≠ Wᵀ W, "
                                   "and ‖W − J‖₂, the largest singular value of W − J, is larger than |λ₂|. ρ is "
                                   "the singular value: the contraction that holds at every step"),
        Hint(1.0 - lam[1].real, "you used λ₂ itself (its real part): λ₂ of a non-symmetric W is complex; ρ is "
                                "the largest singular value of W − J (for a normal W, the modulus |λ₂|)"),
        Hint(1.0 - by_value[1], f"you took the second-largest eigenvalue by value ({by_value[1]:.4g}); the slowest "
                                f"mode can be the most negative one (here λ_n = {by_value[-1]:.4g}, a mode that flips "
                                "sign every step). For a symmetric W, ρ = max(|λ₂|, |λ_n|)"),
        Hint(0.0, "a gap of 0 comes from λ₁ = 1 (or ‖W‖₂ = 1): that is the average, which every doubly stochastic W "
                  "keeps. Subtract J = (1/n) 1 1ᵀ first: ρ = ‖W − J‖₂ is about what is left once the average is out"),
        Hint(np.linalg.norm(W - J, ord=2), "that is ρ = ‖W − J‖₂; the spectral gap is 1 − ρ"),
    ]
    if not np.allclose(W, W.T):
        lower = np.linalg.eigvalsh(W)  # what eigvalsh makes of a non-symmetric W: it reads one triangle only
        says = ("np.linalg.eigvalsh (and eigh) assume a symmetric W and read only its lower triangle; this W is "
                "not symmetric: use the singular values of W − J, np.linalg.norm(W − J, ord=2)")
        found += [Hint(1.0 - np.sort(lower)[-2], says), Hint(1.0 - np.sort(np.abs(lower))[-2], says)]
    return found


def real_number(got, case: str, shows: str):
    """The learner's answer; a report when it is complex (the eigenvalues of a non-symmetric W are)."""
    try:
        value = np.asarray(got)
    except (TypeError, ValueError, RuntimeError):
        return got  # expect_close says what is wrong with it
    if not np.iscomplexobj(value) or np.allclose(value.imag, 0):
        return value.real if np.iscomplexobj(value) else got
    expect(False, case=case, shows=shows, found=f"your answer is the complex number {complex(value.ravel()[0]):.4g}",
           hint="the eigenvalues of a non-symmetric W are complex: take their modulus, np.abs(λ), or use singular "
                "values (np.linalg.svd, np.linalg.norm(…, ord=2)), which are real")
