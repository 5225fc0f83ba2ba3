"""Exercise 07's checker: the reference peers pass, the mistakes students make fail with a hint naming them."""

import math

import pytest
from support import hint_of, load_solution

from galakit.exercises import check_one_peer_exponential

out_peer = load_solution("07_one_peer_exponential").out_peer


def tau(n):
    return max(1, math.ceil(math.log2(n)))


def test_the_reference_solution_passes_and_says_why_six_is_not_exact():
    result = check_one_peer_exponential(out_peer)
    assert result.passed and "for n = 6 they cannot" in result.message


def test_the_stub_is_not_attempted():
    def out_peer(rank, step, n):
        raise NotImplementedError  # your code here

    assert check_one_peer_exponential(out_peer).status == "not attempted"


@pytest.mark.parametrize("wrong, says", [
    (lambda r, k, n: (r + 2 ** (k % tau(n))), "ranks wrap around"),
    (lambda r, k, n: (r - 2 ** (k % tau(n))) % n, "who r hears from"),
    (lambda r, k, n: (r + 2**k) % n, "the offset is 2^(k mod τ)"),
    (lambda r, k, n: (r + 2 ** (k % max(1, int(math.log2(n))))) % n, "not ⌊log₂ n⌋"),
    (lambda r, k, n: (r + 2 ** (k % n)) % n, "the offset is 2^(k mod τ)"),
    (lambda r, k, n: (r + 2 ** (k % (tau(n) + 1))) % n, "one less"),
    (lambda r, k, n: r if k == 4 else out_peer(r, k, n), "a learner sends to itself"),
    (lambda r, k, n: (r + 2 ** (k % tau(n) + 1)) % n, "step k = 0 sends to the next learner"),
    (lambda r, k, n: (r - 2 ** (k % tau(n))), "outside 0..7"),
], ids=["no mod n", "direction reversed", "no period", "period ⌊log₂ n⌋", "period n", "period τ + 1",
         "sends to itself", "starts at 2", "negative"])
def test_a_mistake_fails_with_a_hint_naming_it(wrong, says):
    assert says in hint_of(check_one_peer_exponential(wrong))


def test_the_report_shows_the_table_of_peers_and_the_first_difference():
    message = check_one_peer_exponential(lambda r, k, n: (r - 2 ** (k % tau(n))) % n).message
    assert "row k = step, column r = rank" in message and "first difference at step k = 0, rank r = 0" in message


def test_a_list_of_peers_is_told_to_return_one_int():
    hint = hint_of(check_one_peer_exponential(lambda r, k, n: [out_peer(r, k, n)]))
    assert "return one int" in hint


def test_a_non_callable_is_refused_with_how_to_pass_the_function():
    assert "pass the function itself" in check_one_peer_exponential(out_peer(0, 0, 8)).message


def test_a_function_that_returns_none_is_told_return_is_missing():
    assert "is `return` missing?" in check_one_peer_exponential(lambda r, k, n: None).message
