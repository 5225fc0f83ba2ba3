"""Exercise 08's checker: the reference step passes, the mistakes students make fail with a hint naming them."""

import numpy as np
import pytest
from support import hint_of, load_solution

from galakit.exercises import check_push_sum_step

push_sum_step = load_solution("08_push_sum").push_sum_step


def test_the_reference_solution_passes():
    assert check_push_sum_step(push_sum_step).passed


def test_the_stub_is_not_attempted():
    def push_sum_step(x, w, W):
        raise NotImplementedError  # your code here

    assert check_push_sum_step(push_sum_step).status == "not attempted"


def divides_before_mixing(x, w, W):
    x_next = W @ (x / w[:, None])
    w_next = W @ w
    return x_next, w_next, x_next / w_next[:, None]


def mixes_x_but_not_w(x, w, W):
    x_next = W @ x
    return x_next, w, x_next / w[:, None]


def row_stochastic_transpose(x, w, W):
    x_next, w_next = W.T @ x, W.T @ w
    return x_next, w_next, x_next / w_next[:, None]


def de_biases_by_n(x, w, W):
    x_next, w_next = W @ x, W @ w
    return x_next, w_next, x_next / len(w)


def normalises_the_rows(x, w, W):
    R = W / W.sum(axis=1, keepdims=True)
    x_next, w_next = R @ x, R @ w
    return x_next, w_next, x_next / w_next[:, None]


def divides_by_the_old_w(x, w, W):
    x_next, w_next = W @ x, W @ w
    return x_next, w_next, x_next / w[:, None]


def broadcasts_w_along_columns(x, w, W):
    """x / w: an error for most shapes, and silently wrong when d = n."""
    x_next, w_next = W @ x, W @ w
    z = x_next / w_next if x.shape[1] == len(w) else x_next / w_next[:, None]
    return x_next, w_next, z


@pytest.mark.parametrize("wrong, says", [
    (divides_before_mixing, "you mixed the ratios x / w"),
    (mixes_x_but_not_w, "w did not change"),
    (row_stochastic_transpose, "you applied Wᵀ"),
    (de_biases_by_n, "you divided by n"),
    (normalises_the_rows, "you normalised the rows of W"),
    (divides_by_the_old_w, "by the old w"),
    (broadcasts_w_along_columns, "divided column j by w_j"),
    (lambda x, w, W: (x @ W, W @ w, (x @ W) / (W @ w)[:, None]), "x / w[:, None]"),
], ids=lambda v: getattr(v, "__name__", ""))
def test_a_mistake_fails_with_a_hint_naming_it(wrong, says):
    assert says in hint_of(check_push_sum_step(wrong))


def test_a_shape_error_is_explained():
    def divides_without_axis(x, w, W):
        x_next, w_next = W @ x, W @ w
        return x_next, w_next, x_next / w_next

    result = check_push_sum_step(divides_without_axis)
    assert "raised ValueError" in result.message and "x / w[:, None]" in hint_of(result)


def test_one_array_instead_of_three_is_named():
    hint = hint_of(check_push_sum_step(lambda x, w, W: W @ x))
    assert "return three arrays" in hint


def test_the_report_shows_the_weights_and_the_sums_of_w():
    message = check_push_sum_step(mixes_x_but_not_w).message
    assert "column sums [1. 1. 1. 1.]" in message and "row sums [1.75" in message


def test_a_non_callable_is_refused_with_how_to_pass_the_function():
    assert "pass the function itself" in check_push_sum_step(np.eye(3)).message


def test_a_function_that_returns_none_is_told_return_is_missing():
    result = check_push_sum_step(lambda x, w, W: (None, None, None))
    assert "is `return` missing?" in result.message
    assert "return three arrays" in check_push_sum_step(lambda x, w, W: None).message
