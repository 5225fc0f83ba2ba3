"""Exercise 09's checkers: the reference distances pass, the stub is "not attempted", and the mistakes students
make (the first learner for the average, squared distances, the wrong axis, one tensor of a state_dict, the
‖a‖² + ‖b‖² − 2a·b expansion near consensus, ...) fail with a hint naming them."""

import numpy as np
import pytest
from support import hint_of, load_solution

from galakit.exercises import check_distance_to_average, check_max_pairwise_distance

solution = load_solution("09_consensus_distance")
flatten = solution.flatten


def stack(params):
    return np.stack([flatten(p) for p in params])


def test_the_reference_solutions_pass():
    assert check_distance_to_average(solution.distance_to_average).passed
    assert check_max_pairwise_distance(solution.max_pairwise_distance).passed


def test_the_stubs_are_not_attempted():
    def distance_to_average(params, center=None):
        raise NotImplementedError  # your code here

    def max_pairwise_distance(params):
        raise NotImplementedError  # your code here

    assert check_distance_to_average(distance_to_average).status == "not attempted"
    assert check_max_pairwise_distance(max_pairwise_distance).status == "not attempted"


def to_first_learner(params, center=None):
    x = stack(params)
    return np.linalg.norm(x - x[0], axis=1)


def squared(params, center=None):
    x = stack(params)
    return np.sum((x - x.mean(axis=0)) ** 2, axis=1)


def mean_over_parameters(params, center=None):
    x = stack(params)
    return np.linalg.norm(x - x.mean(axis=1, keepdims=True), axis=1)


def norm_over_learners(params, center=None):
    x = stack(params)
    return np.linalg.norm(x - x.mean(axis=0), axis=0)


def without_flattening(params, center=None):
    x = np.stack([np.asarray(p) for p in params])  # (n, 2, 3) for matrices
    return np.linalg.norm(x - x.mean(axis=0), axis=1)


def first_tensor_only(params, center=None):
    x = np.stack([np.asarray(next(iter(p.values()))).reshape(-1) if isinstance(p, dict) else flatten(p)
                  for p in params])
    return np.linalg.norm(x - x.mean(axis=0), axis=1)


def ignores_center(params, center=None):
    return solution.distance_to_average(params)


@pytest.mark.parametrize("wrong, says", [
    (to_first_learner, "distance to learner 0"),
    (squared, "squared distances"),
    (mean_over_parameters, "averaged each learner's own parameters (axis 1)"),
    (norm_over_learners, "norm over the learners (axis 0)"),
    (without_flattening, "flatten each learner's parameters"),
    (first_tensor_only, "only the first tensor ('body.weight')"),
    (ignores_center, "`center` is given"),
])
def test_each_distance_mistake_is_named(wrong, says):
    assert says in hint_of(check_distance_to_average(wrong))


def expansion(params):
    x = stack(params)
    sq = np.sum(x**2, axis=1)
    return float(np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0)).max())


def largest_distance_to_average(params):
    return float(solution.distance_to_average(params).max())


def twice_the_largest_distance_to_average(params):
    return 2 * largest_distance_to_average(params)


def from_learner_0(params):
    x = stack(params)
    return float(np.linalg.norm(x - x[0], axis=1).max())


def neighbours_only(params):
    x = stack(params)
    return float(np.linalg.norm(x[1:] - x[:-1], axis=1).max()) if len(x) > 1 else 0.0


def the_whole_matrix(params):
    x = stack(params)
    return np.linalg.norm(x[:, None] - x[None], axis=2)


def squared_pairwise(params):
    return solution.max_pairwise_distance(params) ** 2


@pytest.mark.parametrize("wrong, says", [
    (expansion, "catastrophic cancellation"),
    (largest_distance_to_average, "largest distance to the average"),
    (twice_the_largest_distance_to_average, "an upper bound"),
    (from_learner_0, "with learner 0 only"),
    (neighbours_only, "neighbours i, i + 1 only"),
    (the_whole_matrix, "return one number"),
    (squared_pairwise, "largest squared distance"),
])
def test_each_pairwise_mistake_is_named(wrong, says):
    assert says in hint_of(check_max_pairwise_distance(wrong))


def test_tiny_distances_are_compared_in_their_own_unit():
    """Near consensus the distances are ~1e-5: a 0.3% error must fail, not hide under an absolute tolerance."""
    result = check_max_pairwise_distance(expansion)
    assert "near consensus" in result.message and "in units of 1e-06" in result.message


def zero_in_place(params):
    for p in params:
        for tensor in (p.values() if isinstance(p, dict) else [p]):
            tensor *= 0


def test_a_function_that_writes_into_its_inputs_cannot_change_the_reference_or_the_next_case():
    def answers_then_zeroes(params, center=None):
        answer = solution.distance_to_average(params, center)
        zero_in_place(params)
        return answer

    def pairwise_then_zeroes(params):
        answer = solution.max_pairwise_distance(params)
        zero_in_place(params)
        return answer

    assert check_distance_to_average(answers_then_zeroes).passed
    assert check_max_pairwise_distance(pairwise_then_zeroes).passed


def test_a_function_that_returns_nothing_is_told_so():
    assert "is `return` missing?" in check_distance_to_average(lambda params, center=None: None).message
    assert "is `return` missing?" in check_max_pairwise_distance(lambda params: None).message


def test_passing_the_result_instead_of_the_function_is_told_so():
    assert "pass the function itself" in check_distance_to_average(np.zeros(3)).message
    assert "pass the function itself" in check_max_pairwise_distance(1.0).message
