"""Exercise 05, a reference solution: the mixing matrix W of a graph, x_{k+1} = W x_k.

The edge (j, i) means "j sends to i" and fills W[i, j], the weight receiver i gives to sender j.
"""

import networkx as nx
import numpy as np


def mixing_matrix(graph: nx.DiGraph, rule: str = "uniform") -> np.ndarray:
    """W (n, n) of ``graph`` (nodes 0..n−1) with ``rule`` "uniform" or "metropolis" (see the notebook)."""
    n = graph.number_of_nodes()
    links = [(j, i) for j, i in graph.edges if i != j]  # a self-loop in the graph is not a peer
    degree = np.zeros(n, dtype=int)
    for j, _ in links:
        degree[j] += 1  # d_out(j); for an undirected graph (both directions listed) it is the degree
    W = np.zeros((n, n))
    if rule == "uniform":
        # sender j splits its value in d_out(j) + 1 equal shares: one it keeps, one per out-peer
        for j, i in links:
            W[i, j] = 1.0 / (degree[j] + 1)
        W[np.arange(n), np.arange(n)] = 1.0 / (degree + 1)
    elif rule == "metropolis":
        # symmetric weights, the self-weight takes what is left of the row: doubly stochastic
        for j, i in links:
            W[i, j] = 1.0 / (1 + max(degree[i], degree[j]))
        W[np.arange(n), np.arange(n)] = 1.0 - W.sum(axis=1)
    else:
        raise ValueError(f"rule: got {rule!r}; accepted: 'uniform' or 'metropolis'")
    return W
