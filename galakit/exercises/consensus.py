"""Checkers for exercise 09 (consensus distance): each learner's distance to the average ‖θ_i − θ̄‖ and the
largest pairwise distance max_{i,j} ‖θ_i − θ_j‖, against `galakit.gossip.consensus.distance_to_average` and
`galakit.gossip.consensus.max_pairwise_distance`, on lists of vectors, matrices, tensors and state_dicts.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from galakit.exercises.checking import Hint, as_array, call, checker, expect_close
from galakit.gossip.consensus import distance_to_average, max_pairwise_distance, stack_parameters


@dataclass(frozen=True)
class Case:
    name: str
    params: list  # one entry per learner: an array, a tensor or a state_dict
    center: np.ndarray | None = None
    unit: float = 1.0  # near consensus the distances are tiny: compare (and show) them in this unit

    @property
    def x(self) -> np.ndarray:
        """The learners' parameters flattened, (n, d), as the reference sees them."""
        return stack_parameters(self.params).double().numpy()

    def shows(self) -> str:
        first = self.params[0]
        if isinstance(first, dict):
            shapes = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in first.items())
            lines = [f"{len(self.params)} state_dicts, each {{{shapes}}} (d = {self.x.shape[1]})"]
        elif self.x.size <= 24:
            lines = [f"θ_{i} = {np.array2string(np.asarray(p, dtype=float), precision=4)}"
                     for i, p in enumerate(self.params)]
        else:
            kind = type(first).__name__
            lines = [f"{len(self.params)} learners, each a {kind} of shape {tuple(first.shape)}"]
        if self.center is not None:
            lines.append(f"center = {np.array2string(self.center, precision=4)}")
        return "\n".join(lines)


def _state_dict(rng: np.random.Generator) -> OrderedDict:
    """A tiny actor-critic's state_dict: float32 tensors of 4 shapes (d = 26)."""
    shapes = {"body.weight": (4, 3), "body.bias": (4,), "pi.weight": (2, 4), "pi.bias": (2,)}
    return OrderedDict((k, torch.tensor(rng.normal(size=s), dtype=torch.float32)) for k, s in shapes.items())


def cases() -> list[Case]:
    rng = np.random.default_rng(9)
    triangle = [np.array([0.0, 0.0]), np.array([3.0, 0.0]), np.array([0.0, 3.0])]
    square = [np.array([2.0, 1.0]), np.array([1.0, 3.0]), np.array([0.0, 0.0]), np.array([4.5, 0.0])]
    base = 5.0 + rng.normal(size=500)
    return [
        Case("3 learners in ℝ² (θ̄ = (1, 1))", triangle),
        Case("4 learners in ℝ², the farthest pair is learners 1 and 3", square),
        Case("every θ_i is a 2×3 matrix (flatten it: d = 6)", [rng.normal(size=(2, 3)) for _ in range(4)]),
        Case("torch tensors, 5 learners, d = 7", [torch.tensor(rng.normal(size=7)) for _ in range(5)]),
        Case("state_dicts of 3 small actor-critics (4 tensors each)", [_state_dict(rng) for _ in range(3)]),
        Case("all learners equal (consensus)", [np.arange(4.0) for _ in range(3)]),
        Case("one learner", [rng.normal(size=3)]),
        Case("near consensus: θ_i ≈ 5 + 1e-6 noise, d = 500",
             [base + 1e-6 * rng.normal(size=500) for _ in range(6)], unit=1e-6),
        *(_random_case(seed, n, d) for seed, n, d in ((0, 2, 1), (1, 8, 10), (2, 16, 100))),
    ]


def _random_case(seed: int, n: int, d: int) -> Case:
    rng = np.random.default_rng(seed)
    return Case(f"random, seed {seed}: n = {n}, d = {d}", [rng.normal(size=d) * rng.uniform(0.1, 3) for _ in range(n)])


def center_case() -> Case:
    """A center other than the mean, as push-sum's Σ s_i / Σ w_i."""
    return Case("a given center (push-sum's Σ s_i / Σ w_i)", [np.array([0.0, 0.0]), np.array([2.0, 0.0]),
                                                              np.array([1.0, 3.0])], center=np.array([1.0, 0.5]))


def _distance_hints(case: Case) -> list[Hint]:
    x = case.x
    n = len(x)
    center = x.mean(axis=0) if case.center is None else case.center
    hints = [
        Hint(np.linalg.norm(x - x.mean(axis=0), axis=1), "`center` is given in this case: measure the distance "
             "to it, not to the mean (use the mean only when center is None)") if case.center is not None else None,
        Hint(np.linalg.norm(x - x[0], axis=1), "you measured the distance to learner 0 (θ_0), not to the average "
             "θ̄ = (1/n) Σ_i θ_i"),
        Hint(np.sum((x - center) ** 2, axis=1), "these are squared distances ‖θ_i − θ̄‖²: take the square root"),
        Hint(np.linalg.norm(x - x.mean(axis=1, keepdims=True), axis=1), "you averaged each learner's own "
             "parameters (axis 1); θ̄ is the average over the learners (axis 0): a vector of d numbers"),
        Hint(np.linalg.norm(x - center, axis=0), "you took the norm over the learners (axis 0); take it over each "
             "learner's d parameters (axis 1): one distance per learner, shape (n,)"),
        *_state_dict_hints(case, lambda y: np.linalg.norm(y - y.mean(axis=0), axis=1)),
        Hint(lambda got: got.shape != (n,), f"return one distance per learner, shape ({n},): flatten each learner's "
             "parameters (all its tensors) into one vector first, e.g. np.asarray(p).reshape(-1)"),
    ]
    return [h for h in hints if h is not None]


def _pairwise_hints(case: Case) -> list[Hint]:
    x = case.x
    n = len(x)
    pairs = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2)
    to_mean = np.linalg.norm(x - x.mean(axis=0), axis=1)
    hints = [
        Hint(pairs.max() ** 2, "that is the largest squared distance ‖θ_i − θ_j‖²: take the square root"),
        Hint(to_mean.max(), "that is the largest distance to the average, max_i ‖θ_i − θ̄‖, not between two "
             "learners"),
        Hint(2 * to_mean.max(), "that is 2 max_i ‖θ_i − θ̄‖, an upper bound (triangle inequality), not the exact "
             "largest distance between two learners"),
        Hint(pairs[0].max(), "you compared every learner with learner 0 only; compare every pair (i, j)"),
        Hint(max((pairs[i, i + 1] for i in range(n - 1)), default=0.0), "you compared neighbours i, i + 1 only; "
             "compare every pair (i, j)") if n > 2 else None,
        Hint(lambda got: got.size > 1, "return one number, the largest entry of the n×n matrix of distances "
             "‖θ_i − θ_j‖"),
        *_state_dict_hints(case, lambda y: np.linalg.norm(y[:, None] - y[None], axis=2).max()),
    ]
    return [h for h in hints if h is not None]


def _state_dict_hints(case: Case, measure) -> list[Hint]:
    """Known wrong answers on state_dicts: only one of the tensors, or only the weight matrices."""
    if not isinstance(case.params[0], dict):
        return []
    keys = list(case.params[0])

    def only(names):
        return measure(np.stack([np.concatenate([sd[k].double().numpy().reshape(-1) for k in names])
                                 for sd in case.params]))

    says = "you used only {what} of each state_dict: flatten every tensor (sd.values()) and join them into one vector"
    return [Hint(only(keys[:1]), says.format(what=f"the first tensor ({keys[0]!r})")),
            Hint(only(keys[-1:]), says.format(what=f"the last tensor ({keys[-1]!r})")),
            Hint(only([k for k in keys if k.endswith("weight")]), says.format(what="the weights"))]


NEAR_CONSENSUS = [Hint(lambda got: True, "the learners are about 1e-6 apart around values near 5, where "
                                         "‖a‖² + ‖b‖² − 2a·b loses most digits (catastrophic cancellation): use the "
                                         "differences θ_i − θ_j themselves")]


def _compare(got: Any, expected: Any, case: Case, hints: list[Hint], what: str) -> None:
    """expect_close, in units of ``case.unit`` when the distances are tiny (so that they show, and count)."""
    if case.unit != 1.0:
        hints, what = NEAR_CONSENSUS, f"{what} (in units of {case.unit:g})"
        expected = np.asarray(expected) / case.unit
        if got is not None:
            try:
                got = as_array(got) / case.unit
            except (TypeError, ValueError):
                pass  # expect_close says what is wrong with it
    expect_close(got, expected, case=case.name, shows=case.shows(), hints=hints, what=what)


@checker("distance to the average", success="your distances ‖θ_i − θ̄‖ match galakit.distance_to_average on "
                                            "every case (vectors, matrices, tensors, state_dicts, a given center)")
def check_distance_to_average(fn: Any) -> None:
    """``fn(params, center=None)`` → ‖θ_i − θ̄‖ for each learner i, shape (n,)."""
    for case in [*cases(), center_case()]:
        expected = distance_to_average(case.params, center=case.center)
        params = copy.deepcopy(case.params)  # a function that writes into its inputs cannot change the next case
        if case.center is None:
            got = call(fn, params, case=case.name)
        else:
            got = call(fn, params, center=case.center.copy(), case=case.name)
        _compare(got, expected, case, _distance_hints(case), "the distances")


@checker("max pairwise distance", success="your max_{i,j} ‖θ_i − θ_j‖ matches galakit.max_pairwise_distance on "
                                          "every case, near consensus too")
def check_max_pairwise_distance(fn: Any) -> None:
    """``fn(params)`` → max_{i,j} ‖θ_i − θ_j‖, one number."""
    for case in cases():
        expected = max_pairwise_distance(case.params)
        got = call(fn, copy.deepcopy(case.params), case=case.name)
        _compare(got, expected, case, _pairwise_hints(case), "the largest distance")

