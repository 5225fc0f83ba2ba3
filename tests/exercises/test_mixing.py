"""Exercise 05's checker: the reference W passes, the mistakes students make fail with a hint naming them."""

import networkx as nx
import numpy as np
import pytest
from support import load_solution

from galakit.exercises import check_mixing_matrix

solution = load_solution("05_mixing_matrix").mixing_matrix


def test_the_reference_solution_passes():
    assert check_mixing_matrix(solution).passed


def test_the_stub_is_not_attempted():
    def mixing_matrix(graph, rule="uniform"):
        raise NotImplementedError  # your code here

    result = check_mixing_matrix(mixing_matrix)
    assert result.status == "not attempted" and "not attempted yet" in result.message


def transposed(graph, rule="uniform"):
    return solution(graph, rule).T


def without_self_loops(graph, rule="uniform"):
    W = solution(graph, rule)
    np.fill_diagonal(W, 0.0)
    return W


def by_in_degree(graph, rule="uniform"):
    """Each receiver averages what it hears: rows sum to 1."""
    if rule != "uniform":
        return solution(graph, rule)
    n = graph.number_of_nodes()
    W = np.eye(n)
    for j, i in graph.edges:
        W[i, j] = 1.0
    return W / W.sum(axis=1, keepdims=True)


def from_numpy_array(graph, rule="uniform"):
    """Right weights, but in the order the graph lists its nodes (nx.to_numpy_array without nodelist)."""
    A = nx.to_numpy_array(graph) + np.eye(graph.number_of_nodes())
    return (A / A.sum(axis=1, keepdims=True)).T if rule == "uniform" else solution(graph, rule)


def without_plus_one(graph, rule="uniform"):
    if rule != "uniform":
        return solution(graph, rule)
    n = graph.number_of_nodes()
    W = np.eye(n)
    for j, i in graph.edges:
        W[i, j] = 1.0
    return W / np.maximum(W.sum(axis=0, keepdims=True) - 1, 1)


def metropolis_without_one_plus(graph, rule="uniform"):
    if rule != "metropolis":
        return solution(graph, rule)
    n = graph.number_of_nodes()
    d = [graph.out_degree(v) for v in range(n)]
    W = np.zeros((n, n))
    for j, i in graph.edges:
        W[i, j] = 1.0 / max(d[i], d[j])
    np.fill_diagonal(W, 1.0 - W.sum(axis=1))
    return W


def uniform_for_everything(graph, rule="uniform"):
    return solution(graph, "uniform")


def self_loop_counted_as_peer(graph, rule="uniform"):
    n = graph.number_of_nodes()
    W = np.zeros((n, n))
    for j in range(n):
        out = list(graph.successors(j))
        for i in {*out, j}:
            W[i, j] = 1.0 / (len(out) + 1)
    return W if rule == "uniform" else solution(graph, rule)


@pytest.mark.parametrize("wrong, says", [
    (transposed, "W is transposed"),
    (without_self_loops, "W[i, i] is 0"),
    (by_in_degree, "the receiver's in-degree + 1"),
    (from_numpy_array, "must follow the node labels"),
    (without_plus_one, "the + 1 counts the sender itself"),
    (metropolis_without_one_plus, "you left out the 1 +"),
    (uniform_for_everything, "these are uniform weights"),
    (self_loop_counted_as_peer, "it is not an out-peer"),
], ids=lambda v: getattr(v, "__name__", ""))
def test_a_mistake_fails_with_a_hint_naming_it(wrong, says):
    result = check_mixing_matrix(wrong)
    assert result.status == "failed" and "hint: " in result.message, result.message
    assert says in result.message.split("hint: ", 1)[1], result.message


def test_the_first_failing_case_shows_its_graph_and_both_matrices():
    message = check_mixing_matrix(transposed).message
    assert "case: directed ring, n = 4" in message
    assert "edges (sender → receiver): 0→1, 1→2, 2→3, 3→0" in message and "expected W:" in message


def test_a_graph_returned_instead_of_w_is_named():
    message = check_mixing_matrix(lambda graph, rule="uniform": graph).message
    assert "returned a networkx graph" in message


def test_a_function_that_writes_into_the_graph_cannot_change_the_reference():
    def adds_self_loops(graph, rule="uniform"):
        graph.add_edges_from((v, v) for v in list(graph.nodes))
        return solution(graph, rule)

    assert check_mixing_matrix(adds_self_loops).passed


def test_a_non_callable_is_refused_with_how_to_pass_the_function():
    result = check_mixing_matrix(solution(nx.DiGraph([(0, 1), (1, 0)])))
    assert result.status == "failed" and "pass the function itself" in result.message


def test_a_function_that_returns_none_is_told_return_is_missing():
    result = check_mixing_matrix(lambda graph, rule="uniform": None)
    assert result.status == "failed" and "is `return` missing?" in result.message
