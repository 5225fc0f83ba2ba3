"""The checker of exercise 02 (the A2C loss): galakit's loss on tensors is a2c_loss's own, the reference solution
passes, the stub is "not attempted", and each mistake students make fails with a hint that names it."""

import pytest
import torch
from support import load_solution

from galakit.exercises import check_a2c_loss
from galakit.exercises.a2c_loss import cases, galakit_loss
from galakit.exercises.checking import FAILED, NOT_ATTEMPTED
from galakit.rl.a2c import RolloutBuffer, a2c_loss
from galakit.rl.models import MLPActorCritic

solution = load_solution("02_a2c_loss").a2c_loss


def test_galakit_loss_on_tensors_is_a2c_loss_on_a_real_model_and_buffer():
    torch.manual_seed(0)
    model, buf = MLPActorCritic(4, 3, (8,)), RolloutBuffer(5, 2, (4,), torch.float32)
    buf.obs.normal_()
    buf.actions.random_(0, 3)
    buf.autoreset[2, 1] = True
    returns = torch.randn(5, 2)
    loss, _ = a2c_loss(model, buf, returns, value_coef=0.5, entropy_coef=0.01)
    logits, values = model(buf.obs[:5].flatten(0, 1))
    on_tensors = galakit_loss(logits.reshape(5, 2, 3), values.reshape(5, 2), buf.actions, returns, buf.autoreset,
                              0.5, 0.01)
    assert torch.allclose(loss, on_tensors)
    grad = torch.autograd.grad(loss, list(model.parameters()))
    grad_on_tensors = torch.autograd.grad(on_tensors, list(model.parameters()))
    assert all(torch.allclose(a, b) for a, b in zip(grad, grad_on_tensors, strict=True))


def test_the_reference_solution_passes():
    assert check_a2c_loss(solution).passed


def test_the_cases_cover_each_term_and_an_autoreset_step():
    coefs = [(c.value_coef, c.entropy_coef) for c in cases()]
    assert (0.0, 0.0) in coefs and (0.5, 0.0) in coefs and any(e > 0 for _, e in coefs)
    assert all(c.autoreset.any() for c in cases()[3:]) and not any(c.autoreset.any() for c in cases()[:3])


def test_the_stub_is_not_attempted():
    def stub(logits, values, actions, returns, autoreset, value_coef, entropy_coef):
        raise NotImplementedError  # your code here

    result = check_a2c_loss(stub)
    assert result.status == NOT_ATTEMPTED and "not attempted yet" in result.message


def test_a_function_that_returns_nothing_is_told_so():
    result = check_a2c_loss(lambda *args: None)
    assert result.status == FAILED and "is `return` missing?" in result.message


def test_passing_the_result_instead_of_the_function_is_told_so():
    result = check_a2c_loss(torch.tensor(1.0))
    assert result.status == FAILED and "pass the function itself" in result.message


def test_a_loss_without_gradient_is_told_so():
    result = check_a2c_loss(lambda *args: solution(*args).item())
    assert result.status == FAILED and "carries no gradient" in result.message and "no .item()" in result.message


def test_a_loss_that_was_backpropagated_inside_the_function_is_told_so():
    def backward_inside(*args):
        loss = solution(*args)
        loss.backward()
        return loss

    result = check_a2c_loss(backward_inside)
    assert result.status == FAILED and "without calling .backward()" in result.message


def student(logits, values, actions, returns, autoreset, value_coef, entropy_coef, *, detach=True, mask=True,
            divide_by_all=False, reduce="mean", entropy_sign=-1.0, policy_sign=1.0, weight="advantage",
            value_scale=1.0, use_value_coef=True, entropy="sum", detach_value=False, keep_axes=False):
    """A student's A2C loss with the switches that a mistake turns."""
    real = ~autoreset if mask else torch.ones_like(autoreset)
    log_probs = torch.log_softmax(logits, -1)
    log_prob = log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    advantage = returns - values
    weight = {"advantage": advantage.detach() if detach else advantage, "returns": returns}[weight]
    policy = -policy_sign * weight * log_prob
    value = (returns - (values.detach() if detach_value else values)) ** 2
    h = {"sum": -(log_probs.exp() * log_probs).sum(-1), "mean": -(log_probs.exp() * log_probs).mean(-1),
         "taken": -log_prob}[entropy]

    def average(x):
        if keep_axes:
            return x * real
        if divide_by_all:
            return (x * real).sum() / x.numel()
        return x[real].sum() if reduce == "sum" else x[real].mean()

    c_v = value_coef if use_value_coef else 1.0
    return average(policy) + value_scale * c_v * average(value) + entropy_sign * entropy_coef * average(h)


@pytest.mark.parametrize(("mistake", "says"), [
    (dict(detach=False), "the advantage is not detached in the policy term"),
    (dict(entropy_sign=+1.0), "the entropy bonus has the wrong sign"),
    (dict(reduce="sum"), "sum where a mean belongs"),
    (dict(use_value_coef=False), "value_coef is missing"),
    (dict(weight="returns"), "the policy term weighs log π(a_t|s_t) by the return R_t"),
    (dict(mask=False), "the autoreset steps are in the means"),
    (dict(divide_by_all=True), "the autoreset steps are zeroed, but each mean still divides by T·N"),
    (dict(policy_sign=-1.0), "the policy term has the wrong sign"),
    (dict(value_scale=0.5), "the value term has an extra ½"),
    (dict(entropy="taken"), "the entropy is H(π(·|s_t)) = −Σ_a π(a|s_t) log π(a|s_t), a sum over all actions"),
    (dict(entropy="mean"), "the entropy is a sum over actions"),
    (dict(detach_value=True), "V(s_t) gets no gradient"),
    (dict(keep_axes=True), "L is one number (a 0-d tensor)"),
])
def test_each_mistake_is_named(mistake, says):
    result = check_a2c_loss(lambda *args: student(*args, **mistake))
    assert result.status == FAILED and "hint: " + says in result.message, result.message


def test_the_mistake_free_student_passes():
    """The switches above turn real mistakes only: with none turned, the student's loss is right."""
    assert check_a2c_loss(student).passed


def test_a_failure_shows_the_case_as_a_table():
    message = check_a2c_loss(lambda *args: student(*args, mask=False)).message
    assert "case: an autoreset step at t=1, i=0" in message
    assert "  1  0  [ 0.50,  0.50]  [ 0.50,  0.50]    0   3.000  -2.000   autoreset: not a transition" in message
