"""Checker of exercise 08: one push-sum step (x, w) → (W x, W w) with a column-stochastic W, read out as
z = x / w.

The reference is galakit's own ``simulate_push_sum`` (`galakit.gossip.simulate`): each case starts from its
state after some steps (x_k = z_k · w_k, w_k) and expects its state one step later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx
import numpy as np

from galakit.exercises.checking import Hint, Wrong, call, checker, expect, expect_close
from galakit.gossip.simulate import simulate_push_sum
from galakit.gossip.topology import Schedule, build_topology, from_networkx


@dataclass(frozen=True)
class Case:
    name: str
    x: np.ndarray  # (n, d) the numerators x_k
    w: np.ndarray  # (n,) the weights w_k
    W: np.ndarray  # (n, n) column-stochastic W_k
    after: tuple[np.ndarray, np.ndarray, np.ndarray]  # galakit's x_{k+1}, w_{k+1}, z_{k+1}


def state(schedule: Schedule, x0: np.ndarray, k: int, name: str) -> Case:
    """Push-sum on ``schedule`` from (x0, 1): the state after k steps, and galakit's step k → k + 1."""
    trace = simulate_push_sum(schedule, x0, k + 1, store_values=True)
    z, w = trace.values, trace.weights  # z: (k + 2, n, d), w: (k + 2, n)
    x = z * w[:, :, None]
    return Case(name, x[k], w[k], schedule.mixing_matrix(k), (x[k + 1], w[k + 1], z[k + 1]))


def cases() -> list[Case]:
    rng = np.random.default_rng(0)
    uneven = from_networkx(nx.DiGraph([(0, 1), (0, 2), (0, 3), (1, 2), (2, 0), (3, 0), (3, 4), (4, 1)]))
    star = build_topology("star", 4)
    found = [
        state(star, np.arange(8.0).reshape(4, 2), 0, "the first step (w = 1) on the star, n = 4"),
        state(uneven, rng.normal(size=(5, 3)), 3, "step 3 on a directed graph that is not regular, n = 5 "
                                                  "(w is no longer 1)"),
        state(uneven, rng.normal(size=(5, 1)), 2, "step 2 with d = 1: x has shape (5, 1)"),
        state(star, rng.normal(size=(4, 4)), 2, "step 2 on the star with d = n = 4: x has shape (4, 4)"),
    ]
    for seed in (1, 2, 3):  # strongly connected samples (seed 0 is not)
        directed = build_topology("erdos_renyi", 6, edge_prob=0.5, seed=seed, directed=True)
        found.append(state(directed, rng.normal(size=(6, 2)), 5,
                           f"step 5 on a random directed graph, n = 6 (seed {seed})"))
    return found


@checker("push-sum step", success="your step matches galakit.simulate_push_sum on every case: Σ x and Σ w are "
                                  "kept, and z = x / w reads out the average")
def check_push_sum_step(fn: Callable) -> None:
    """Check ``fn(x, w, W) -> (x_next, w_next, z_next)`` on states of push-sum runs where w ≠ 1, d = 1 and d = n."""
    for case in cases():
        got, hints = step_of(fn, case), mistakes(case)
        for value, expected, what in zip(got, case.after, ("x_next", "w_next", "z_next"), strict=True):
            expect_close(value, expected, case=case.name, shows=shows(case), what=what, hints=hints[what])


def step_of(fn: Callable, case: Case) -> tuple:
    try:
        got = call(fn, case.x, case.w, case.W, case=case.name)
    except Wrong as wrong:
        if any(word in str(wrong) for word in ("broadcast", "matmul", "shapes", "dimension")):
            raise Wrong(f"{wrong}\nhint: x has shape (n, d) and w shape (n,): mix with W @ x and W @ w, and divide "
                        "row i of x by w_i with x / w[:, None]") from wrong
        raise
    expect(isinstance(got, (tuple, list)) and len(got) == 3, case=case.name, shows=shows(case),
           found=f"your function returned {type(got).__name__}" + (f" of length {len(got)}"
                                                                   if isinstance(got, (tuple, list)) else ""),
           hint="return three arrays: x_next (n, d), w_next (n,) and z_next (n, d)")
    return tuple(got)


def shows(case: Case) -> str:
    n, d = case.x.shape
    rows, cols = case.W.sum(axis=1), case.W.sum(axis=0)
    return (f"x: shape ({n}, {d}), w = {np.array2string(case.w, precision=4)}\n"
            f"W: shape ({n}, {n}), column sums {np.array2string(cols, precision=3)}, row sums "
            f"{np.array2string(rows, precision=3)}")


def mistakes(case: Case) -> dict[str, list[Hint]]:
    x, w, W = case.x, case.w, case.W
    n = len(w)
    x_next, w_next, _ = case.after
    rows = W / W.sum(axis=1, keepdims=True)
    transposed = "you applied Wᵀ: in x_{k+1} = W x_k row i of W is what learner i receives. W is " \
                 "column-stochastic (each sender splits its mass), so W keeps Σ x and Σ w and Wᵀ does not"
    normalised = "you normalised the rows of W (plain gossip, each learner takes a convex combination). " \
                 "Push-sum applies the column-stochastic W as given and lets w carry the bias"
    divided_first = "you mixed the ratios x / w: push-sum mixes the numerators x and the weights w as they are, " \
                    "x ← W x and w ← W w, and divides only to read out z = x / w"
    right_side = "x has one row per learner: the step is W @ x, not x @ W"
    return {
        "x_next": [Hint(W @ (x / w[:, None]), divided_first), Hint(W.T @ x, transposed), Hint(rows @ x, normalised),
                   *([Hint(x @ W, right_side), Hint(x @ W.T, right_side)] if x.shape[1] == n else [])],
        "w_next": [Hint(w, "w did not change: the weights travel with the mass, w ← W w"),
                   Hint(np.ones(n), "w is back to 1: w ← W w, from the w you were given"),
                   Hint(W.T @ w, transposed), Hint(rows @ w, normalised)],
        "z_next": [Hint(x_next / n, "you divided by n: each learner divides by its own weight, z_i = x_i / w_i (the "
                                    "w_i sum to n but are not 1 on a graph that is not regular, and learner i "
                                    "knows only its own)"),
                   Hint(x_next / (n * w_next[:, None]), "z_i = x_i / w_i: no n"),
                   *undivided(x_next, w),
                   Hint(W @ (x / w[:, None]), divided_first),
                   Hint(lambda got: got.shape == (n, n) != x_next.shape,
                        "z has shape (n, n): x / w with x of shape (n, 1) and w of shape (n,) broadcasts; use "
                        "x / w[:, None]"),
                   *([Hint(x_next / w_next[None, :], "x / w divided column j by w_j (numpy broadcasts w along the "
                                                     "last axis): divide row i by w_i, x / w[:, None]")]
                     if x.shape[1] == n else [])],
    }


def undivided(x_next: np.ndarray, w: np.ndarray) -> list[Hint]:
    """z = x_next (not de-biased) and z = x_next / w (the old w): the same answer at the first step, where w = 1."""
    if np.allclose(w, 1.0):
        return [Hint(x_next, "z equals x_next: you divided by nothing, or by the old w (all 1 at the first step). "
                             "z = x_next / w_next: the new x over the new w")]
    return [Hint(x_next, "z is x / w: without dividing by w, x_i is biased towards the learners that receive more"),
            Hint(x_next / w[:, None], "you divided by the old w: divide the new x by the new w")]
