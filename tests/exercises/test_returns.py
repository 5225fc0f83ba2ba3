"""The checkers of exercises 01 (n-step returns) and 03 (GAE): the reference solutions pass, the stubs are "not
attempted", and each mistake students make fails with a hint that names it."""

import pytest
import torch
from support import load_solution

from galakit.exercises import check_gae_returns, check_n_step_returns
from galakit.exercises.checking import FAILED, NOT_ATTEMPTED


def test_the_reference_solutions_pass():
    assert check_n_step_returns(load_solution("01_n_step_returns").n_step_returns).passed
    assert check_gae_returns(load_solution("03_gae").gae_returns).passed


def stub(*args):
    raise NotImplementedError  # your code here


@pytest.mark.parametrize("check", [check_n_step_returns, check_gae_returns])
def test_the_stub_is_not_attempted(check):
    result = check(stub)
    assert result.status == NOT_ATTEMPTED and "not attempted yet" in result.message


@pytest.mark.parametrize("check", [check_n_step_returns, check_gae_returns])
def test_a_function_that_returns_nothing_is_told_so(check):
    result = check(lambda *args: None)
    assert result.status == FAILED and "is `return` missing?" in result.message


@pytest.mark.parametrize("check", [check_n_step_returns, check_gae_returns])
def test_passing_the_result_instead_of_the_function_is_told_so(check):
    result = check(torch.zeros(3, 1))
    assert result.status == FAILED and "pass the function itself" in result.message


def test_a_function_that_crashes_is_reported_with_its_error():
    result = check_n_step_returns(lambda rewards, values, terminated, truncated, gamma: rewards @ values)
    assert result.status == FAILED and "your function raised RuntimeError" in result.message


# ---------------------------------------------------------------- n-step returns: the mistakes, as students write them


def n_step(rewards, values, terminated, truncated, gamma, *, cut=None, bootstrap_at=None, start=None, forward=False):
    """A student's backward loop: R = r + γ·(next), where ``cut(t)`` says where the next value is 0 and
    ``bootstrap_at(t)`` where it is V(s_{t+1}); ``start`` is what follows the last step."""
    T = rewards.shape[0]
    cut = cut or (lambda t: terminated[t])
    bootstrap_at = bootstrap_at or (lambda t: truncated[t])
    R = values[-1] if start is None else start
    returns = torch.zeros_like(rewards)
    for t in range(T) if forward else reversed(range(T)):
        nxt = torch.where(bootstrap_at(t), values[t + 1], R)
        R = rewards[t] + gamma * torch.where(cut(t), 0.0, nxt)
        returns[t] = R
    return returns


def through_terminal(r, v, term, trunc, g):
    return n_step(r, v, term, trunc, g, cut=lambda t: torch.zeros_like(term[t]))


def bootstrap_at_terminal(r, v, term, trunc, g):  # "done means bootstrap" mixed up with truncation
    return n_step(r, v, term, trunc, g, cut=lambda t: torch.zeros_like(term[t]),
                  bootstrap_at=lambda t: term[t] | trunc[t])


def truncation_as_termination(r, v, term, trunc, g):  # the pre-gymnasium-0.26 `done`
    done = (term | trunc).float()
    R, out = v[-1], torch.zeros_like(r)
    for t in reversed(range(r.shape[0])):
        R = r[t] + g * R * (1 - done[t])
        out[t] = R
    return out


def truncation_ignored(r, v, term, trunc, g):  # runs on through the autoreset step as if it were a transition
    return n_step(r, v, term, trunc, g, bootstrap_at=lambda t: torch.zeros_like(trunc[t]))


def no_bootstrap_value(r, v, term, trunc, g):
    return n_step(r, v, term, trunc, g, start=torch.zeros_like(v[-1]))


def forward_in_time(r, v, term, trunc, g):
    return n_step(r, v, term, trunc, g, forward=True)


def one_step_target(r, v, term, trunc, g):
    return r + g * v[1:] * (~term)


def time_and_simulators_swapped(r, v, term, trunc, g):
    return load_solution("01_n_step_returns").n_step_returns(r, v, term, trunc, g).T


@pytest.mark.parametrize(("wrong", "says"), [
    (through_terminal, "you bootstrapped through a terminal state (here t=1)"),
    (bootstrap_at_terminal, "you bootstrapped from V(s_{t+1}) at a terminal state (here t=1)"),
    (truncation_as_termination, "you treated the truncation (here t=1) as a termination"),
    (truncation_ignored, "you did not stop at the truncation (here t=1): your return ran on through the autoreset "
                         "step into the next game"),
    (no_bootstrap_value, "you forgot the bootstrap value"),
    (forward_in_time, "you walked forward in time"),
    (one_step_target, "that is the one-step target"),
    (time_and_simulators_swapped, "the axes are swapped"),
])
def test_each_n_step_mistake_is_named(wrong, says):
    result = check_n_step_returns(wrong)
    assert result.status == FAILED and "hint: " + says in result.message, result.message


def test_a_failure_shows_the_case_as_a_table_with_the_autoreset_step_not_compared():
    message = check_n_step_returns(truncation_as_termination).message
    assert "case: a time limit at t=1 (truncated)" in message
    assert "truncated (time limit: the game would have gone on)" in message
    assert "autoreset (not a transition: its return is not compared, shown as nan)" in message
    assert "expected R (the returns):\n    [[3.5]\n     [5. ]\n     [nan]\n     [3. ]]" in message


def test_the_autoreset_steps_return_is_not_compared():
    solution = load_solution("01_n_step_returns").n_step_returns

    def anything_at_autoreset_steps(r, v, term, trunc, g):
        returns = solution(r, v, term, trunc, g)
        after_an_end = torch.zeros_like(term)
        after_an_end[1:] = term[:-1] | trunc[:-1]
        autoreset = after_an_end & (r == 0)  # a life loss is an end that no autoreset step follows
        return torch.where(autoreset, torch.full_like(returns, 1e6), returns)

    assert check_n_step_returns(anything_at_autoreset_steps).passed


def test_a_random_case_shows_the_first_simulator_that_differs():
    solution = load_solution("01_n_step_returns").n_step_returns

    def wrong_in_the_last_simulator_of_big_rollouts(r, v, term, trunc, g):
        returns = solution(r, v, term, trunc, g)
        if r.shape[1] > 1:
            returns[:, -1] += 1.0
        return returns

    message = check_n_step_returns(wrong_in_the_last_simulator_of_big_rollouts).message
    assert "case: random rollout, seed 0" in message and "below: simulator 3, the first that differs" in message


# ---------------------------------------------------------------- GAE: the mistakes


def gae(r, v, term, trunc, g, lam, *, lam_in_delta=False, lam_squared=False, baseline=True, cut_terminal=True,
        cut_truncation=True, bootstrap_truncation=True, bootstrap=True, add_values=True):
    """A student's GAE loop with the switches that a mistake turns."""
    values = torch.cat([v[:-1], v[-1:] if bootstrap else torch.zeros_like(v[-1:])])
    A, advantages = torch.zeros_like(v[-1]), torch.zeros_like(r)
    for t in reversed(range(r.shape[0])):
        no_future = (term[t] if cut_terminal else torch.zeros_like(term[t])) | (trunc[t] & (not bootstrap_truncation))
        delta = r[t] + g * (lam if lam_in_delta else 1.0) * values[t + 1] * (~no_future)
        delta = delta - (values[t] if baseline else 0.0)
        stop = (term[t] if cut_terminal else torch.zeros_like(term[t])) | (trunc[t] & cut_truncation)
        A = delta + g * lam * (lam if lam_squared else 1.0) * A * (~stop)
        advantages[t] = A
    return advantages + v[:-1] if add_values else advantages


@pytest.mark.parametrize(("mistake", "says"), [
    (dict(add_values=False), "those are the advantages A_t; return R_t = A_t + V(s_t)"),
    (dict(lam_in_delta=True), "λ is applied twice: it belongs in the recursion"),
    (dict(lam_squared=True), "λ is applied twice: A_t = δ_t + γλ A_{t+1}, one factor of γλ per step"),
    (dict(baseline=False), "δ_t lacks the value baseline"),
    (dict(baseline=False, add_values=False), "δ_t lacks the value baseline"),
    (dict(cut_terminal=False), "you bootstrapped through a terminal state (here t=1)"),
    (dict(bootstrap_truncation=False), "you treated the truncation (here t=1) as a termination"),
    (dict(cut_truncation=False), "you did not stop at the truncation (here t=1): A_t ran on through the autoreset "
                                 "step into the next game"),
    (dict(bootstrap=False), "you forgot the bootstrap value"),
])
def test_each_gae_mistake_is_named(mistake, says):
    result = check_gae_returns(lambda r, v, term, trunc, g, lam: gae(r, v, term, trunc, g, lam, **mistake))
    assert result.status == FAILED and "hint: " + says in result.message, result.message


def test_the_mistake_free_student_loop_passes():
    """The switches above turn real mistakes only: with none turned, the loop is right."""
    assert check_gae_returns(gae).passed


def test_gae_that_ignores_lambda_is_told_it_computed_the_n_step_return():
    n_step_solution = load_solution("01_n_step_returns").n_step_returns
    result = check_gae_returns(lambda r, v, term, trunc, g, lam: n_step_solution(r, v, term, trunc, g))
    assert result.status == FAILED and "hint: that is the n-step return, GAE with λ = 1: is λ used?" in result.message


def test_gae_with_lambda_one_is_the_n_step_return_of_exercise_01():
    from galakit.exercises.returns import gae_cases

    n_step_solution = load_solution("01_n_step_returns").n_step_returns
    gae_solution = load_solution("03_gae").gae_returns
    for case in gae_cases():
        r, v, term, trunc, g, _ = case.args
        assert torch.allclose(gae_solution(r, v, term, trunc, g, 1.0), n_step_solution(r, v, term, trunc, g),
                              atol=1e-5), case.name
