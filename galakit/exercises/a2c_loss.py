"""Checker for exercise 02 (the A2C loss): the learner's loss, written on tensors (logits, values, actions, returns,
autoreset), against ``galakit.a2c_loss`` fed the same tensors (:func:`galakit_loss`), in value and in gradient
(∂L/∂logits, ∂L/∂V), on hand-built cases (each term on its own, an autoreset step) and random ones (fixed seeds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from galakit.exercises.checking import Hint, Wrong, call, checker, expect, expect_close
from galakit.rl.a2c import RolloutBuffer, a2c_loss

TOLERANCE = dict(rtol=1e-4, atol=1e-6)  # float32 sums, added up in another order than galakit's


def galakit_loss(logits: torch.Tensor, values: torch.Tensor, actions: torch.Tensor, returns: torch.Tensor,
                 autoreset: torch.Tensor, value_coef: float, entropy_coef: float) -> torch.Tensor:
    """``galakit.a2c_loss`` on given tensors (shapes as in the exercise: logits (T, N, |A|), the rest (T, N)).

    ``a2c_loss`` takes a model and a rollout buffer; here the "model" is a lookup table (observation i, a number,
    gets row i of ``logits`` and ``values``), so the loss and its gradient are galakit's own, on these numbers.
    """
    T, N = actions.shape
    buf = RolloutBuffer(T, N, (), torch.int64)
    buf.obs[:T] = torch.arange(T * N).reshape(T, N)
    buf.actions[:], buf.autoreset[:] = actions, autoreset

    def table(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return logits.reshape(T * N, -1)[obs], values.reshape(T * N)[obs]

    loss, _ = a2c_loss(table, buf, returns, value_coef, entropy_coef)
    return loss


@dataclass(frozen=True)
class LossCase:
    """One case; ``logits`` and ``values`` are leaves that require grad (the gradient is checked too)."""

    name: str
    logits: torch.Tensor
    values: torch.Tensor
    actions: torch.Tensor
    returns: torch.Tensor
    autoreset: torch.Tensor
    value_coef: float
    entropy_coef: float
    seed: int | None = None

    @property
    def args(self) -> tuple:
        return (self.logits, self.values, self.actions, self.returns, self.autoreset, self.value_coef,
                self.entropy_coef)

    def shows(self) -> str:
        T, N, A = self.logits.shape
        head = (f"value_coef = {self.value_coef:g}, entropy_coef = {self.entropy_coef:g}; T = {T} steps, N = {N} "
                f"simulator{'s' if N > 1 else ''}, {A} actions")
        if self.seed is not None:
            return f"random tensors (seed {self.seed}): {head}; {int(self.autoreset.sum())} autoreset steps"
        logits, values = self.logits.detach(), self.values.detach()
        probs = torch.softmax(logits, -1)
        width = len(_numbers(logits[0, 0]))
        rows = [head, f"  t  i  {'logits'.ljust(width)}  {'π(·|s_t)'.ljust(width)}  a_t   R_t     V(s_t)"]
        for t in range(T):
            for i in range(N):
                numbers = f"{int(self.actions[t, i]):>3}  {float(self.returns[t, i]):6.3f}  {float(values[t, i]):6.3f}"
                row = f"{t:>3} {i:>2}  {_numbers(logits[t, i])}  {_numbers(probs[t, i])}  {numbers}"
                rows.append(row + ("   autoreset: not a transition" if self.autoreset[t, i] else ""))
        return "\n".join(rows)


def _numbers(x: torch.Tensor) -> str:
    return "[" + ", ".join(f"{float(v):5.2f}" for v in x) + "]"


def hand_case(name: str, logits: list, actions: list, returns: list, values: list, value_coef: float,
              entropy_coef: float, autoreset=()) -> LossCase:
    """``logits`` (T, N, |A|) as nested lists, the rest (T, N); ``autoreset``: the (t, i) that are autoreset steps."""
    mask = torch.zeros(len(actions), len(actions[0]), dtype=torch.bool)
    for t, i in autoreset:
        mask[t, i] = True
    return LossCase(name, torch.tensor(logits, requires_grad=True), torch.tensor(values, requires_grad=True),
                    torch.tensor(actions), torch.tensor(returns), mask, value_coef, entropy_coef)


def random_case(seed: int, T: int, N: int, A: int, value_coef: float, entropy_coef: float) -> LossCase:
    g = torch.Generator().manual_seed(seed)
    autoreset = torch.rand(T, N, generator=g) < 0.15
    autoreset[0, 0] = False  # at least one real transition
    return LossCase(f"random tensors, seed {seed}", torch.randn(T, N, A, generator=g).requires_grad_(),
                    torch.randn(T, N, generator=g).requires_grad_(), torch.randint(0, A, (T, N), generator=g),
                    2 * torch.randn(T, N, generator=g), autoreset, value_coef, entropy_coef, seed)


def cases() -> list[LossCase]:
    logits = [[[0.0, 1.0, 0.0]], [[2.0, 0.0, -1.0]]]  # T = 2, N = 1, 3 actions
    actions, returns, values = [[1], [2]], [[2.0], [-1.0]], [[1.0], [0.5]]
    logits3 = [[[0.0, 1.0], [1.0, 0.0]], [[0.5, 0.5], [2.0, 0.0]], [[0.0, -1.0], [0.0, 0.0]]]  # T = 3, N = 2
    return [
        hand_case("the policy term alone (value_coef = 0, entropy_coef = 0)", logits, actions, returns, values,
                  0.0, 0.0),
        hand_case("the value term joins (value_coef = 0.5)", logits, actions, returns, values, 0.5, 0.0),
        hand_case("the entropy bonus joins (entropy_coef = 0.1)", logits, actions, returns, values, 0.5, 0.1),
        hand_case("an autoreset step at t=1, i=0 (not a transition: it is left out of every mean)", logits3,
                  [[1, 0], [0, 0], [1, 1]], [[1.0, -1.0], [3.0, 0.5], [0.0, 2.0]],
                  [[0.5, 0.0], [-2.0, 1.0], [0.5, 1.0]], 0.5, 0.1, autoreset=[(1, 0)]),
        random_case(0, 5, 4, 6, 0.5, 0.01),
        random_case(1, 5, 16, 4, 0.25, 0.01),
        random_case(2, 20, 8, 18, 0.5, 0.05),
    ]


def terms(case: LossCase, *, detach: bool = True) -> tuple[torch.Tensor, ...]:
    """Each transition's pieces: log π(·|s_t) (T, N, |A|), log π(a_t|s_t), A_t and (R_t − V(s_t))² (T, N)."""
    log_probs = torch.log_softmax(case.logits, -1)
    log_prob_taken = log_probs.gather(-1, case.actions.unsqueeze(-1)).squeeze(-1)
    error = case.returns - case.values
    return log_probs, log_prob_taken, error.detach() if detach else error, error**2


def loss_mistakes(case: LossCase) -> list[Hint]:
    """Known wrong losses for ``case``, each with the mistake made on purpose, and the words that name it."""
    log_probs, log_prob, advantage, squared_error = terms(case)
    real, c_v, c_e = ~case.autoreset, case.value_coef, case.entropy_coef
    entropy = -(log_probs.exp() * log_probs).sum(-1)

    def mean(v: torch.Tensor) -> torch.Tensor:  # the right mean: over the real transitions
        return v[real].mean()

    def averaged_by(average: Callable) -> torch.Tensor:
        return average(-advantage * log_prob) + c_v * average(squared_error) - c_e * average(entropy)

    policy, value, bonus = mean(-advantage * log_prob), c_v * mean(squared_error), c_e * mean(entropy)
    wrong = [
        (policy + value + bonus,
         "the entropy bonus has the wrong sign: L = … − c_e · mean H(π). The bonus rewards a spread-out policy, so "
         "minimising L must raise H"),
        (-policy + value - bonus,
         "the policy term has the wrong sign: it is −mean[A_t log π(a_t|s_t)], so that minimising L raises the "
         "probability of actions with A_t > 0"),
        (policy + mean(squared_error) - bonus,
         f"value_coef is missing: the value term is c_v · mean[(R_t − V(s_t))²] (c_v = {c_v:g} here)"),
        (policy + 0.5 * value - bonus,
         "the value term has an extra ½: it is c_v · mean[(R_t − V(s_t))²]; the ½ is in c_v already"),
        (mean(-case.returns * log_prob) + value - bonus,
         "the policy term weighs log π(a_t|s_t) by the return R_t; weigh it by the advantage A_t = R_t − V(s_t)"),
        (mean(-advantage * log_prob.exp()) + value - bonus,
         "the policy term uses π(a_t|s_t); it uses its log, log π(a_t|s_t) (log_softmax of the logits)"),
        (policy + value - c_e * mean(-log_prob),
         "the entropy is H(π(·|s_t)) = −Σ_a π(a|s_t) log π(a|s_t), a sum over all actions, not −log π(a_t|s_t)"),
        (policy + value - c_e * mean(-(log_probs.exp() * log_probs).mean(-1)),
         "the entropy is a sum over actions, −Σ_a π(a|s_t) log π(a|s_t), not a mean over them"),
        (averaged_by(lambda v: v[real].sum()), "sum where a mean belongs: each term is a mean over the transitions"),
        (averaged_by(lambda v: v.mean()),
         "the autoreset steps are in the means: they are not transitions (the action was ignored), leave them out"),
        (averaged_by(lambda v: (v * real).sum() / v.numel()),
         "the autoreset steps are zeroed, but each mean still divides by T·N; divide by the number of real "
         "transitions (`term[~autoreset].mean()`)"),
    ]
    not_a_number = Hint(lambda got: got.shape != (),
                        "L is one number (a 0-d tensor): average each term over the real transitions")
    return [not_a_number] + [Hint(w.detach(), says) for w, says in wrong]


def gradients(loss: torch.Tensor, case: LossCase) -> list[np.ndarray]:
    """(∂L/∂logits, ∂L/∂V) as numpy arrays; zeros where the loss does not depend on them."""
    grads = torch.autograd.grad(loss, [case.logits, case.values], allow_unused=True)
    return [np.zeros(tuple(x.shape)) if g is None else g.numpy() for g, x in zip(grads, case.args[:2], strict=True)]


def check_gradient(got: torch.Tensor, case: LossCase) -> None:
    expect(torch.is_tensor(got) and got.requires_grad, case=case.name, shows=case.shows(),
           found=f"your loss is right, but it is a {type(got).__name__} that carries no gradient",
           hint="keep it a torch tensor built from logits and values: no .item(), .detach(), numpy or torch.no_grad()")
    try:
        got_logits, got_values = gradients(got, case)
    except RuntimeError as error:  # e.g. the graph was freed by a .backward() inside the learner's function
        raise Wrong(f"case: {case.name}\nthe gradient of your loss could not be computed ({error})\nhint: return "
                    "the loss without calling .backward() on it: the checker differentiates it") from error
    right_logits, right_values = gradients(galakit_loss(*case.args), case)
    _, log_prob, advantage, squared_error = terms(case, detach=False)
    real = ~case.autoreset
    not_detached = (-advantage * log_prob)[real].mean() + case.value_coef * squared_error[real].mean()
    expect_close(got_logits, right_logits, case=case.name, shows=case.shows(), what="∂L/∂logits", **TOLERANCE)
    expect_close(got_values, right_values, case=case.name, shows=case.shows(), what="∂L/∂V(s_t)", **TOLERANCE,
                 hints=[Hint(gradients(not_detached, case)[1],
                             "the advantage is not detached in the policy term: A_t = R_t − V(s_t) is a fixed weight "
                             "there (`.detach()` it), or the policy term pulls V(s_t) too"),
                        Hint(np.zeros(tuple(case.values.shape)),
                             "V(s_t) gets no gradient: do not detach V(s_t) in the value term (R_t − V(s_t))²")])


@checker("A2C loss", success="your loss matches galakit.a2c_loss on every case, in value and in gradient")
def check_a2c_loss(fn: Callable) -> None:
    """Check ``fn(logits, values, actions, returns, autoreset, value_coef, entropy_coef) -> L`` (exercise 02)."""
    for case in cases():
        got = call(fn, *case.args, case=case.name)
        expected = galakit_loss(*case.args).detach()
        expect_close(got, expected, case=case.name, shows=case.shows(), what="L", hints=loss_mistakes(case),
                     **TOLERANCE)
        check_gradient(got, case)

