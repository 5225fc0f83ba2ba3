"""Checkers for exercises 01 (n-step returns) and 03 (GAE): the learner's returns against ``galakit.n_step_returns``
and ``galakit.gae_returns`` on hand-built rollouts (a termination, a life loss, a truncation, autoreset steps) and
on random ones with fixed seeds.

An autoreset step (gymnasium's next-step reset: action ignored, reward 0) is not a transition: its return is
never used, so it is not compared (both answers show it as nan).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from galakit.exercises.checking import Hint, as_array, call, checker, expect_close
from galakit.rl.a2c import gae_returns, n_step_returns


@dataclass(frozen=True)
class Rollout:
    """One case: rewards, terminated, truncated, autoreset (T, N); values (T+1, N) = V(s_0) … V(s_T)."""

    name: str
    rewards: torch.Tensor
    values: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    autoreset: torch.Tensor
    gamma: float
    lam: float | None = None
    seed: int | None = None

    @property
    def args(self) -> tuple:
        """The arguments of ``n_step_returns`` (and of ``gae_returns``, with λ)."""
        args = (self.rewards, self.values, self.terminated, self.truncated, self.gamma)
        return args if self.lam is None else (*args, self.lam)

    def shows(self, column: int = 0) -> str:
        """The case as a table, one row per step t (time runs down, as in the (T, N) answer)."""
        T, N = self.rewards.shape
        lam = "" if self.lam is None else f", lam = {self.lam:g}"
        head = f"gamma = {self.gamma:g}{lam}; T = {T} steps, N = {N} simulator{'s' if N > 1 else ''}"
        if self.seed is not None:
            head = f"a random rollout (seed {self.seed}): {head}; below: simulator {column}, the first that differs"
        rows = [head, "  t   reward   V(s_t)   how the step ended"]
        for t in range(T):
            rows.append(f"{t:>3}  {self.rewards[t, column]:7.3f}  {self.values[t, column]:7.3f}   "
                        f"{self._ending(t, column)}".rstrip())
        rows.append(f"{T:>3}           {self.values[T, column]:7.3f}   (V(s_T): bootstraps the last return)")
        return "\n".join(rows)

    def _ending(self, t: int, i: int) -> str:
        if self.autoreset[t, i]:
            return "autoreset (not a transition: its return is not compared, shown as nan)"
        if self.terminated[t, i]:
            life_lost = t + 1 < self.rewards.shape[0] and not self.autoreset[t + 1, i]
            if life_lost:
                return "terminated (a life lost: the game goes on)"
            return "terminated (game over: s_{t+1} is terminal)"
        if self.truncated[t, i]:
            return "truncated (time limit: the game would have gone on)"
        return ""


def hand_rollout(name: str, rewards: list[float], values: list[float], gamma: float, *, terminated=(),
                 truncated=(), autoreset=(), lam: float | None = None) -> Rollout:
    """One simulator; ``terminated``, ``truncated``, ``autoreset``: the steps t where that flag is True."""
    T = len(rewards)
    flags = [torch.zeros(T, 1, dtype=torch.bool) for _ in range(3)]
    for flag, where in zip(flags, (terminated, truncated, autoreset), strict=True):
        flag[list(where), 0] = True
    column = [torch.tensor(x, dtype=torch.float32).reshape(-1, 1) for x in (rewards, values)]
    return Rollout(name, *column, *flags, gamma=gamma, lam=lam)


def random_rollout(seed: int, T: int, N: int, gamma: float, lam: float | None = None) -> Rollout:
    """A rollout as a vector env gives it: a game over or a truncation is followed by an autoreset step (reward 0,
    no flags), a life loss is not; a rollout may open with an autoreset step (the last one ended a game)."""
    rng = np.random.default_rng(seed)
    rewards, values = rng.normal(size=(T, N)), rng.normal(size=(T + 1, N))
    terminated, truncated, autoreset = (np.zeros((T, N), dtype=bool) for _ in range(3))
    for i in range(N):
        pending = rng.random() < 0.2
        for t in range(T):
            if pending:
                autoreset[t, i], rewards[t, i], pending = True, 0.0, False
                continue
            u = rng.random()
            terminated[t, i] = u < 0.15  # below 0.1 a game over, from 0.1 a life lost
            truncated[t, i] = 0.15 <= u < 0.2
            pending = u < 0.1 or truncated[t, i]
    tensors = [torch.as_tensor(x, dtype=torch.float32) for x in (rewards, values)]
    flags = [torch.as_tensor(x) for x in (terminated, truncated, autoreset)]
    return Rollout(f"random rollout, seed {seed}", *tensors, *flags, gamma=gamma, lam=lam, seed=seed)


def compare(fn: Callable, case: Rollout, reference: Callable, hints: list[Hint]) -> None:
    """The learner's returns against ``reference(*case.args)``, autoreset steps left out of the comparison."""
    got = call(fn, *case.args, case=case.name)
    expected = reference(*case.args)
    column = first_differing_column(got, expected, case) if case.seed is not None else 0
    expect_close(blank_autoreset(got, case), blank_autoreset(expected, case), case=case.name,
                 shows=case.shows(column), what="R (the returns)",
                 hints=[Hint(blank_autoreset(h.wrong, case), h.says) for h in hints])


def blank_autoreset(x, case: Rollout):
    """``x`` with nan at the autoreset steps, when it has the returns' shape (otherwise as it is, to be reported)."""
    try:
        blanked = as_array(x).copy()
    except (TypeError, ValueError):
        return x
    if x is None or blanked.shape != tuple(case.rewards.shape):
        return x
    blanked[case.autoreset.numpy()] = np.nan
    return blanked


def first_differing_column(got, expected, case: Rollout) -> int:
    got, expected = blank_autoreset(got, case), blank_autoreset(expected, case)
    if not isinstance(got, np.ndarray) or got.shape != expected.shape:
        return 0
    bad = ~np.isclose(got, expected, rtol=1e-5, atol=1e-6, equal_nan=True)
    return int(np.argwhere(bad)[0][1]) if bad.any() else 0


def steps(mask: torch.Tensor) -> str:
    """' (here t=1, 4)' for the steps where ``mask`` holds in a one-simulator case; '' otherwise."""
    if mask.shape[1] != 1 or not mask.any():
        return ""
    return " (here t=" + ", ".join(str(int(t)) for t in torch.nonzero(mask[:, 0]).flatten()) + ")"


# ------------------------------------------------------------------------------------------------ n-step returns


def n_step_cases() -> list[Rollout]:
    g = 0.5
    return [
        hand_rollout("no episode ends: a 4-step return bootstrapped from V(s_4)", [1, 0, 2, 1], [0, 0, 0, 0, 4], g),
        hand_rollout("the game ends at t=1 (terminated), t=2 is the autoreset step, then a new game",
                     [1, 2, 0, 1, 1], [0, 0, 3, 8, 0, 4], g, terminated=[1], autoreset=[2]),
        hand_rollout("a time limit at t=1 (truncated): the game would have gone on; t=2 is the autoreset step",
                     [1, 2, 0, 1], [0, 0, 6, 8, 4], g, truncated=[1], autoreset=[2]),
        hand_rollout("a life lost at t=1 (terminated, the game goes on: no autoreset step follows)",
                     [1, -1, 1, 1], [0, 0, 0, 0, 4], g, terminated=[1]),
        hand_rollout("the rollout opens with an autoreset step (the previous rollout ended a game) and its last "
                     "step is truncated", [0, 1, 1, 2], [5, 0, 0, 0, 4], g, truncated=[3], autoreset=[0]),
        hand_rollout("gamma = 0: the return is the reward", [1, 2, 3], [5, 5, 5, 5], 0.0, terminated=[1]),
        *(random_rollout(seed, T, N, gamma) for seed, T, N, gamma in [(0, 5, 4, 0.99), (1, 12, 6, 0.9),
                                                                      (2, 20, 8, 0.99)]),
    ]


def n_step_mistakes(case: Rollout) -> list[Hint]:
    """Known wrong answers to ``case``, computed by making the mistake on purpose, and the words that name it."""
    r, v, term, trunc, g = case.args[:5]
    none = torch.zeros_like(term)
    v_no_bootstrap = v.clone()
    v_no_bootstrap[-1] = 0.0
    return [
        Hint(n_step_returns(r, v, none, trunc, g),
             f"you bootstrapped through a terminal state{steps(term)}: when terminated[t], nothing follows, so "
             "R_t = r_t"),
        Hint(n_step_returns(r, v, none, term | trunc, g),
             f"you bootstrapped from V(s_{{t+1}}) at a terminal state{steps(term)}: a terminal state has no future, "
             "its value is 0, so R_t = r_t"),
        Hint(n_step_returns(r, v, term | trunc, none, g),
             f"you treated the truncation{steps(trunc)} as a termination: the time limit stopped a game that would "
             "have gone on, so R_t = r_t + γ V(s_{t+1}) (V of the last observation)"),
        Hint(n_step_returns(r, v, term, none, g),
             f"you did not stop at the truncation{steps(trunc)}: your return ran on through the autoreset step "
             "into the next game; there, R_t = r_t + γ V(s_{t+1})"),
        Hint(n_step_returns(r, v_no_bootstrap, term, trunc, g),
             "you forgot the bootstrap value: the last return of the rollout is r_{T-1} + γ V(s_T) (values[-1]), "
             "not r_{T-1}"),
        Hint(forward_in_time(*case.args[:5]),
             "you walked forward in time: R_t needs R_{t+1}, so loop t = T-1, …, 0 (reversed)"),
        Hint(gae_returns(r, v, term, trunc, g, 0.0),
             "that is the one-step target r_t + γ V(s_{t+1}): the n-step return keeps going, "
             "R_t = r_t + γ R_{t+1}, and bootstraps only at the end of the rollout or at a truncation"),
    ]


def forward_in_time(rewards, values, terminated, truncated, gamma) -> torch.Tensor:
    """The right recursion in the wrong direction (``range`` where ``reversed(range)`` belongs)."""
    returns, R = torch.zeros_like(rewards), values[-1]
    for t in range(rewards.shape[0]):
        R = rewards[t] + gamma * torch.where(terminated[t], 0.0, torch.where(truncated[t], values[t + 1], R))
        returns[t] = R
    return returns


@checker("n-step returns", success="your returns match galakit.n_step_returns on every case: terminations, "
                                    "life losses, truncations and autoreset steps")
def check_n_step_returns(fn: Callable) -> None:
    """Check ``fn(rewards, values, terminated, truncated, gamma) -> returns (T, N)`` (exercise 01)."""
    for case in n_step_cases():
        compare(fn, case, n_step_returns, n_step_mistakes(case))


# ------------------------------------------------------------------------------------------------ GAE


def gae_cases() -> list[Rollout]:
    g, lam = 0.5, 0.5
    return [
        hand_rollout("no episode ends (gamma = 0.5, lam = 0.5)", [1, 0, 2, 1], [1, 2, 0, 1, 4], g, lam=lam),
        hand_rollout("the game ends at t=1 (terminated), t=2 is the autoreset step, then a new game",
                     [1, 2, 0, 1, 1], [1, 2, 3, 8, 1, 4], g, terminated=[1], autoreset=[2], lam=lam),
        hand_rollout("a time limit at t=1 (truncated): the game would have gone on; t=2 is the autoreset step",
                     [1, 2, 0, 1], [1, 2, 6, 8, 4], g, truncated=[1], autoreset=[2], lam=lam),
        hand_rollout("lam = 0: the one-step TD target r_t + γ V(s_{t+1})", [1, 0, 2, 1], [1, 2, 0, 1, 4], g,
                     terminated=[2], lam=0.0),
        hand_rollout("lam = 1: GAE is the n-step return", [1, 0, 2, 1], [1, 2, 0, 1, 4], g, terminated=[1],
                     lam=1.0),
        *(random_rollout(seed, T, N, gamma, lam) for seed, T, N, gamma, lam in [
            (10, 5, 4, 0.99, 0.95), (11, 12, 6, 0.9, 0.5), (12, 20, 8, 0.99, 1.0), (13, 16, 8, 0.99, 0.95)]),
    ]


def gae_mistakes(case: Rollout) -> list[Hint]:
    r, v, term, trunc, g, lam = case.args
    none = torch.zeros_like(term)
    v_no_bootstrap = v.clone()
    v_no_bootstrap[-1] = 0.0
    right = gae_returns(*case.args)
    return [
        Hint(right - v[:-1], "those are the advantages A_t; return R_t = A_t + V(s_t)"),
        Hint(gae_variant(*case.args, lam_in_delta=True),
             "λ is applied twice: it belongs in the recursion A_t = δ_t + γλ A_{t+1} only; "
             "δ_t = r_t + γ V(s_{t+1}) − V(s_t) has no λ"),
        Hint(gae_variant(*case.args, lam_squared=True),
             "λ is applied twice: A_t = δ_t + γλ A_{t+1}, one factor of γλ per step"),
        Hint(gae_variant(*case.args, baseline=False),
             "δ_t lacks the value baseline: δ_t = r_t + γ V(s_{t+1}) − V(s_t)"),
        Hint(gae_variant(*case.args, baseline=False) - v[:-1],
             "δ_t lacks the value baseline (δ_t = r_t + γ V(s_{t+1}) − V(s_t)), and then R_t = A_t + V(s_t)"),
        Hint(gae_returns(r, v, none, term | trunc, g, lam),
             f"you bootstrapped through a terminal state{steps(term)}: when terminated[t], δ_t = r_t − V(s_t)"),
        Hint(gae_returns(r, v, none, trunc, g, lam),
             f"you bootstrapped through a terminal state{steps(term)}: when terminated[t], δ_t = r_t − V(s_t) and "
             "A_t = δ_t"),
        Hint(gae_returns(r, v, term | trunc, none, g, lam),
             f"you treated the truncation{steps(trunc)} as a termination: the game would have gone on, so δ_t "
             "keeps γ V(s_{t+1}); only the recursion stops (A_t = δ_t)"),
        Hint(gae_returns(r, v, term, none, g, lam),
             f"you did not stop at the truncation{steps(trunc)}: A_t ran on through the autoreset step into the "
             "next game; there A_t = δ_t"),
        Hint(gae_returns(r, v_no_bootstrap, term, trunc, g, lam),
             "you forgot the bootstrap value: δ_{T-1} = r_{T-1} + γ V(s_T) − V(s_{T-1}) uses values[-1]"),
        Hint(n_step_returns(r, v, term, trunc, g), "that is the n-step return, GAE with λ = 1: is λ used?"),
        Hint(gae_returns(r, v, term, trunc, g, 0.0), "that is the one-step target, GAE with λ = 0: is λ used?"),
    ]


def gae_variant(rewards, values, terminated, truncated, gamma, lam, *, lam_in_delta=False, lam_squared=False,
                baseline=True) -> torch.Tensor:
    """GAE returns with one mistake made on purpose (the keyword that is True)."""
    returns, A = torch.zeros_like(rewards), torch.zeros_like(values[-1])
    for t in reversed(range(rewards.shape[0])):
        next_value = torch.where(terminated[t], 0.0, values[t + 1])
        delta = rewards[t] + gamma * (lam if lam_in_delta else 1.0) * next_value - (values[t] if baseline else 0.0)
        A = delta + gamma * lam * (lam if lam_squared else 1.0) * torch.where(terminated[t] | truncated[t], 0.0, A)
        returns[t] = A + values[t]
    return returns


@checker("GAE returns", success="your returns match galakit.gae_returns on every case, λ = 0 and λ = 1 included")
def check_gae_returns(fn: Callable) -> None:
    """Check ``fn(rewards, values, terminated, truncated, gamma, lam) -> returns (T, N)`` (exercise 03)."""
    for case in gae_cases():
        compare(fn, case, gae_returns, gae_mistakes(case))
