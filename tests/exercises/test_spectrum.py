"""Exercise 06's checkers: the reference ρ and gap pass, the mistakes students make fail with a hint naming them."""

import numpy as np
import pytest
from support import hint_of, load_solution

from galakit.exercises import check_ring_rho, check_spectral_gap

reference = load_solution("06_ring_spectrum")


def test_the_reference_solutions_pass():
    assert check_ring_rho(reference.ring_rho).passed
    assert check_spectral_gap(reference.spectral_gap).passed


def test_the_stubs_are_not_attempted():
    def ring_rho(n, directed=True):
        raise NotImplementedError  # your code here

    def spectral_gap(W):
        raise NotImplementedError  # your code here

    assert check_ring_rho(ring_rho).status == "not attempted"
    assert "not attempted yet" in check_spectral_gap(spectral_gap).message


def eigenvalues_by_modulus(W):
    lam = np.linalg.eigvals(W)
    return lam[np.argsort(-np.abs(lam))]


@pytest.mark.parametrize("wrong, says", [
    (lambda n, directed=True: 1.0, "the eigenvalue of the average"),
    (lambda n, directed=True: np.cos(np.pi / n) ** 2 if directed else reference.ring_rho(n, False), "real part of λ₂"),
    (lambda n, directed=True: np.cos(2 * np.pi / n) if directed else reference.ring_rho(n, False), "the angle is π/n"),
    (lambda n, directed=True: np.cos(np.pi / n), "the directed ring's ρ"),
    (lambda n, directed=True: reference.ring_rho(n, True) if directed else np.cos(2 * np.pi / n), "self-weight"),
    (lambda n, directed=True: 1 - reference.ring_rho(n, directed), "that is the spectral gap"),
], ids=["largest eigenvalue", "real part", "angle 2π/n", "directed for both", "no self-weight", "the gap"])
def test_a_ring_rho_mistake_fails_with_a_hint_naming_it(wrong, says):
    assert says in hint_of(check_ring_rho(wrong))


@pytest.mark.parametrize("wrong, says", [
    (lambda W: 1 - abs(eigenvalues_by_modulus(W)[0]), "a gap of 0 comes from λ₁ = 1"),
    (lambda W: 1 - abs(eigenvalues_by_modulus(W)[1]), "larger than |λ₂|"),
    (lambda W: 1 - eigenvalues_by_modulus(W)[1].real, "its real part"),
    (lambda W: 1 - np.sort(np.linalg.eigvalsh(W))[-2], "eigvalsh"),
    (lambda W: 1 - np.linalg.norm(W - 1 / len(W)), "Frobenius norm"),
    (lambda W: 1 - np.linalg.norm(W, ord=2), "Subtract J"),
    (lambda W: np.linalg.norm(W - 1 / len(W), ord=2), "the spectral gap is 1 − ρ"),
], ids=["λ₁", "|λ₂| of a non-normal W", "Re λ₂", "eigvalsh", "Frobenius", "no J", "ρ, not the gap"])
def test_a_spectral_gap_mistake_fails_with_a_hint_naming_it(wrong, says):
    assert says in hint_of(check_spectral_gap(wrong))


def test_symmetric_w_whose_slowest_mode_is_negative_is_caught():
    """The second-largest eigenvalue by value is right on the rings but not on an even ring with small W_ii."""
    def by_value(W):
        lam = np.sort(np.linalg.eigvals(W).real)
        return 1 - lam[-2] if np.allclose(W, W.T) else reference.spectral_gap(W)

    hint = hint_of(check_spectral_gap(by_value))
    assert "second-largest eigenvalue by value" in hint and "-0.8" in hint


def test_a_complex_answer_is_told_to_take_the_modulus():
    result = check_spectral_gap(lambda W: 1 - eigenvalues_by_modulus(W)[1])
    assert "complex number" in result.message and "take their modulus" in hint_of(result)


def test_a_non_callable_is_refused_with_how_to_pass_the_function():
    assert "pass the function itself" in check_ring_rho(0.9).message
    assert "pass the function itself" in check_spectral_gap(reference.spectral_gap(np.eye(2) / 2 + 0.25)).message


def test_a_function_that_returns_none_is_told_return_is_missing():
    assert "is `return` missing?" in check_ring_rho(lambda n, directed=True: None).message
    assert "is `return` missing?" in check_spectral_gap(lambda W: None).message
