"""Exercise 11's checker: the reference bound passes, the stub is "not attempted", and the mistakes students make
(no √n, 1/(1 − ρ²), |λ₂| of a non-normal W, λ₂ of a W with a negative eigenvalue, α for α G, ‖W‖₂, no e0, the
bound over all k for the bound at k, ...) fail with a hint naming them."""

import math

import numpy as np
import pytest
from support import hint_of, load_solution

from galakit.exercises import check_epsilon_bound
from galakit.exercises.epsilon import cases
from galakit.gossip.topology import rho

epsilon_bound = load_solution("11_epsilon_bound").epsilon_bound


def test_the_reference_solution_passes():
    assert check_epsilon_bound(epsilon_bound).passed


def test_the_cases_tell_rho_from_the_eigenvalues():
    """One W is not normal (|λ₂| < ρ), one symmetric W has |λ_n| > λ₂, and one has ρ = 1."""
    def lam(W):
        return np.linalg.eigvals(W)

    assert any(np.sort(np.abs(lam(c.W)))[-2] < rho(c.W) - 0.1 for c in cases())
    assert any(np.allclose(c.W, c.W.T) and np.sort(lam(c.W).real)[-2] < rho(c.W) - 0.1 for c in cases())
    assert any(rho(c.W) >= 1 for c in cases())


def test_the_stub_is_not_attempted():
    def epsilon_bound(W, alpha, grad_bound, e0=0.0, k=None):
        raise NotImplementedError  # your code here

    assert check_epsilon_bound(epsilon_bound).status == "not attempted"


def bound_with(W, alpha, grad_bound, e0=0.0, k=None, *, rho_of=lambda W: rho(W), sqrt_n=True, squares=False,
               with_G=True, rho_on_top=True, with_e0=True, use_k=True, k_offset=0, e0_decays=True):
    """The reference bound with one ingredient swapped for a wrong one."""
    n, r = len(W), rho_of(np.asarray(W))
    push = alpha * (r if rho_on_top else 1.0) * (math.sqrt(n) if sqrt_n else 1.0) * (grad_bound if with_G else 1.0)
    gap = 1 - r**2 if squares else 1 - r
    e0 = e0 if with_e0 else 0.0
    if gap <= 0:
        return math.inf
    if k is None or not use_k:
        return e0 + push / gap
    k = k + k_offset
    return (r**k if e0_decays else 1.0) * e0 + push * (1 - r**k) / gap


def second_modulus(W):
    return np.sort(np.abs(np.linalg.eigvals(W)))[-2]


def second_eigenvalue(W):
    return np.sort(np.linalg.eigvals(W).real)[-2]


@pytest.mark.parametrize("mistake, says", [
    (dict(sqrt_n=False), "√n is missing"),
    (dict(squares=True), "not 1/(1 − ρ²)"),
    (dict(with_G=False), "G is missing"),
    (dict(rho_on_top=False), "each step adds at most α ρ √n G"),
    (dict(rho_of=second_modulus), "you used |λ₂| = 0.6348"),
    (dict(rho_of=second_eigenvalue), "you used λ₂ = 0.8536"),
    (dict(rho_of=lambda W: np.linalg.norm(W, 2)), "not ‖W‖₂ = 1"),
    (dict(rho_of=lambda W: np.linalg.norm(W - 1 / len(W))), "nor the Frobenius norm"),
    (dict(with_e0=False), "the learners start e0 apart"),
    (dict(use_k=False), "this is the bound over all k"),
    (dict(k_offset=1), "off by one"),
    (dict(e0_decays=False), "e0 shrinks too"),
])
def test_each_mistake_is_named(mistake, says):
    def wrong(W, alpha, grad_bound, e0=0.0, k=None):
        return bound_with(W, alpha, grad_bound, e0, k, **mistake)

    assert says in hint_of(check_epsilon_bound(wrong))


def test_lambda_2_of_a_symmetric_w_with_a_negative_eigenvalue_is_named():
    """On the directed ring λ₂ is complex; on the symmetric W with eigenvalues 1, 0.1, 0.1, −0.8 it is 0.1."""
    def wrong(W, alpha, grad_bound, e0=0.0, k=None):
        r = second_eigenvalue(W) if np.allclose(W, W.T) else rho(W)
        return bound_with(W, alpha, grad_bound, e0, k, rho_of=lambda _: r)

    assert "a negative eigenvalue contracts by its modulus" in hint_of(check_epsilon_bound(wrong))


def test_a_finite_bound_where_nothing_contracts_is_told_to_return_inf():
    def never_infinite(W, alpha, grad_bound, e0=0.0, k=None):
        value = epsilon_bound(W, alpha, grad_bound, e0, k)
        return value if math.isfinite(value) else 1.0

    assert "return math.inf when ρ ≥ 1" in hint_of(check_epsilon_bound(never_infinite))


def test_a_function_that_returns_nothing_is_told_so():
    assert "is `return` missing?" in check_epsilon_bound(lambda W, alpha, grad_bound, e0=0.0, k=None: None).message


def test_passing_the_result_instead_of_the_function_is_told_so():
    assert "pass the function itself" in check_epsilon_bound(0.34).message
