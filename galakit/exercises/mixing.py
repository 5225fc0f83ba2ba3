"""Checker of exercise 05: a mixing matrix W from a networkx graph and a weight rule ("uniform" or "metropolis").

The reference is galakit's own ``mixing_matrix(assign_weights(graph, rule))`` (`galakit.gossip.topology`), in its
convention x_{k+1} = W x_k: the edge (j, i) means "j sends to i" and carries W[i, j].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx
import numpy as np

from galakit.exercises.checking import Hint, as_array, call, checker, expect, expect_close
from galakit.gossip.topology import assign_weights, mixing_matrix


@dataclass(frozen=True)
class Case:
    name: str
    graph: nx.DiGraph
    rule: str


def cases() -> list[Case]:
    ring = nx.DiGraph([(r, (r + 1) % 4) for r in range(4)])
    # out-degrees 3, 1, 1, 2, 1 and in-degrees 2, 2, 2, 1, 1: nothing is regular, every node still hears from all
    uneven = [(0, 1), (0, 2), (0, 3), (1, 2), (2, 0), (3, 0), (3, 4), (4, 1)]
    shuffled = nx.DiGraph()
    shuffled.add_nodes_from([3, 0, 4, 1, 2])  # the same graph, its nodes listed out of order
    shuffled.add_edges_from(uneven)
    looped = nx.DiGraph(ring)
    looped.add_edge(0, 0)
    star = nx.star_graph(4).to_directed()
    kite = nx.Graph([(0, 1), (1, 2), (2, 3), (1, 3), (3, 4)]).to_directed()  # degrees 1, 3, 2, 3, 1
    found = [
        Case("directed ring, n = 4 (r sends to r + 1)", ring, "uniform"),
        Case("a directed graph that is not regular, n = 5", nx.DiGraph(uneven), "uniform"),
        Case("the same graph, its nodes added in the order 3, 0, 4, 1, 2", shuffled, "uniform"),
        Case("undirected star, n = 5 (node 0 is the hub)", star, "uniform"),
        Case("an undirected graph that is not regular, n = 5", kite, "metropolis"),
        Case("directed ring, n = 4, whose graph already has a self-loop on node 0", looped, "uniform"),
    ]
    for seed in range(3):
        g = nx.gnp_random_graph(6, 0.4, seed=seed, directed=True)
        found.append(Case(f"random directed graph, n = 6 (seed {seed})", g, "uniform"))
    for seed in range(3):
        g = nx.gnp_random_graph(7, 0.4, seed=seed).to_directed()
        found.append(Case(f"random undirected graph, n = 7 (seed {seed})", g, "metropolis"))
    return found


@checker("mixing matrix", success="your W matches galakit's assign_weights + mixing_matrix on every graph, "
                                  "uniform and Metropolis weights")
def check_mixing_matrix(fn: Callable) -> None:
    """Check ``fn(graph, rule) -> W`` (n, n) against galakit: uniform weights 1/(d_out(j) + 1) on directed
    graphs that are not regular, Metropolis weights on undirected ones, nodes added out of order, a self-loop."""
    for case in cases():
        expected = mixing_matrix(assign_weights(case.graph, case.rule))
        got = call(fn, nx.DiGraph(case.graph), case.rule, case=case.name)  # a copy: an answer may add self-loops
        expect(not isinstance(got, nx.Graph), case=case.name, shows=shows(case),
               found="your function returned a networkx graph, not the matrix W",
               hint="return W as an (n, n) numpy array (careful: nx.to_numpy_array(G)[j, i] holds the edge "
                    "(j, i), which is W[i, j]: its transpose)")
        expect_close(got, expected, case=case.name, shows=shows(case), what="W", hints=hints(case, expected))


def shows(case: Case) -> str:
    g, n = case.graph, case.graph.number_of_nodes()
    edges = ", ".join(f"{j}→{i}" for j, i in sorted(g.edges))
    degree = "out-degrees d_out" if case.rule == "uniform" else "degrees d"
    return (f"n = {n}, rule = {case.rule!r}\nedges (sender → receiver): {edges}\n"
            f"{degree} (self-loops not counted): {out_degrees(g).tolist()}")


def out_degrees(g: nx.DiGraph) -> np.ndarray:
    return np.array([sum(1 for i in g.successors(j) if i != j) for j in range(g.number_of_nodes())])


def links(g: nx.DiGraph) -> list[tuple[int, int]]:
    return [(j, i) for j, i in g.edges if i != j]


def hints(case: Case, W: np.ndarray) -> list[Hint]:
    g, n = case.graph, case.graph.number_of_nodes()
    order = list(g.nodes)
    found = [Hint(W.T, "W is transposed: W[i, j] is the weight receiver i gives to sender j, so the edge (j, i) "
                       "fills row i, column j (nx.to_numpy_array(G) puts it at [j, i]: take its transpose)")]
    if order != sorted(order):
        permuted = W[np.ix_(order, order)]
        says = (f"rows and columns must follow the node labels 0..{n - 1}, but this graph lists its nodes as "
                f"{order}: nx.to_numpy_array(G) uses that order unless you pass nodelist=range(n)")
        found += [Hint(permuted, says), Hint(permuted.T, says + " (and its result is the transpose of W)")]
    if case.rule == "uniform":
        found += uniform_mistakes(g, W)
    else:
        found += metropolis_mistakes(g, W)
    found.append(Hint(lambda got: got.shape == W.shape and np.allclose(np.diag(got), 0),
                      "W[i, i] is 0: every node keeps a share of its own value, the self-loop (i, i): add W[i, i]"))
    return found


def uniform_mistakes(g: nx.DiGraph, W: np.ndarray) -> list[Hint]:
    n, d_out = g.number_of_nodes(), out_degrees(g)
    d_in = np.array([sum(1 for j in g.predecessors(i) if j != i) for i in range(n)])
    by_receiver, no_plus_one, as_peer = np.diag(1.0 / (d_in + 1)), np.diag(1.0 / np.maximum(d_out, 1)), W.copy()
    for j, i in links(g):
        by_receiver[i, j], no_plus_one[i, j] = 1.0 / (d_in[i] + 1), 1.0 / d_out[j]
    looped = [j for j in range(n) if g.has_edge(j, j)]
    for j in looped:  # a self-loop already in the graph counted as one more out-peer
        as_peer[:, j] = np.where(W[:, j] > 0, 1.0 / (d_out[j] + 2), 0.0)
    found = [
        Hint(by_receiver, "you divided by the receiver's in-degree + 1 (each node averages what it hears, so the "
                          "rows sum to 1). The uniform rule is the sender's split: sender j gives 1/(d_out(j) + 1) "
                          "to itself and to each out-peer, so it is column j that sums to 1"),
        Hint(no_plus_one, "the share is 1/(d_out(j) + 1), not 1/d_out(j): the + 1 counts the sender itself, which "
                          "keeps a share too"),
        Hint(lambda got: _sums_to_one(got, axis=1) and not _sums_to_one(got, axis=0),
             "your rows sum to 1 but the columns don't. With the uniform rule sender j splits its value into "
             "d_out(j) + 1 equal shares, so column j sums to 1; on a graph that is not regular W is then not "
             "doubly stochastic (its rows do not sum to 1), and that is expected"),
    ]
    if looped:
        found.append(Hint(as_peer, f"node {looped[0]} already has a self-loop in the graph: it is not an out-peer. "
                                   "Count d_out(j) over the other nodes and give every node one self-weight"))
    if all(g.has_edge(i, j) for j, i in links(g)):
        found.append(Hint(mixing_matrix(assign_weights(g, "metropolis")),
                          "these are Metropolis weights; rule 'uniform' asks for W[i, j] = 1/(d_out(j) + 1)"))
    return found


def metropolis_mistakes(g: nx.DiGraph, W: np.ndarray) -> list[Hint]:
    d = out_degrees(g)
    no_plus_one, own_share, smaller = np.zeros_like(W), np.zeros_like(W), np.zeros_like(W)
    for j, i in links(g):
        no_plus_one[i, j], smaller[i, j] = 1.0 / max(d[i], d[j]), 1.0 / (1 + min(d[i], d[j]))
        own_share[i, j] = W[i, j]
    for M in (no_plus_one, smaller):
        np.fill_diagonal(M, 1.0 - M.sum(axis=1))
    np.fill_diagonal(own_share, 1.0 / (d + 1))
    return [
        Hint(no_plus_one, "the Metropolis weight is 1/(1 + max(d_i, d_j)): you left out the 1 +"),
        Hint(smaller, "the Metropolis weight uses the larger degree, 1/(1 + max(d_i, d_j)), not the smaller one"),
        Hint(own_share, "the off-diagonal weights are right; the self-weight is what is left of the row, "
                        "W[i, i] = 1 − Σ_{j≠i} W[i, j], not 1/(d_i + 1)"),
        Hint(mixing_matrix(assign_weights(g, "uniform")),
             "these are uniform weights; rule 'metropolis' asks for W[i, j] = 1/(1 + max(d_i, d_j)) and "
             "W[i, i] = 1 − Σ_{j≠i} W[i, j]"),
    ]


def _sums_to_one(got: np.ndarray, axis: int) -> bool:
    return got.ndim == 2 and bool(np.allclose(as_array(got).sum(axis=axis), 1.0, atol=1e-6))
