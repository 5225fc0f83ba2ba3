"""The A2C maths: n-step returns by hand, GAE, the masked loss, the models."""

import pytest
import torch

from galakit.rl.a2c import RolloutBuffer, a2c_loss, gae_returns, n_step_returns
from galakit.rl.models import AtariActorCritic, MLPActorCritic, make_model

GAMMA = 0.9


def scripted_rollout():
    """Three simulators, T = 5. Columns: (0) a game that terminates at t=1, is auto-reset at t=2, is truncated
    at t=3 and auto-reset at t=4; (1) no episode end; (2) a life loss at t=1 (terminated, no reset follows)."""
    rewards = torch.tensor([[1.0, 1, 5], [2, 1, -1], [0, 1, 1], [3, 1, 1], [0, 1, 1]])
    terminated = torch.zeros(5, 3, dtype=torch.bool)
    truncated = torch.zeros(5, 3, dtype=torch.bool)
    autoreset = torch.zeros(5, 3, dtype=torch.bool)
    terminated[1, 0] = truncated[3, 0] = autoreset[2, 0] = autoreset[4, 0] = True
    terminated[1, 2] = True
    values = torch.tensor([10.0, 11, 12, 13, 14, 15]).unsqueeze(1).repeat(1, 3)  # V(s_0) … V(s_5)
    return rewards, values, terminated, truncated, autoreset


def test_n_step_returns_match_hand_computation():
    rewards, values, terminated, truncated, _ = scripted_rollout()
    R = n_step_returns(rewards, values, terminated, truncated, GAMMA)
    # column 0, computed by hand from the end: t=3 truncated → 3 + γ V(s_4); t=1 terminated → 2; t=0 → 1 + γ·2
    assert R[3, 0] == pytest.approx(3 + GAMMA * 14)
    assert R[1, 0] == pytest.approx(2)
    assert R[0, 0] == pytest.approx(1 + GAMMA * 2)
    # column 1: a plain 5-step return bootstrapped from V(s_5) = 15
    expected = 15.0
    for t in reversed(range(5)):
        expected = 1 + GAMMA * expected
        assert R[t, 1] == pytest.approx(expected)
    assert R[0, 1] == pytest.approx(sum(GAMMA**k for k in range(5)) + GAMMA**5 * 15)
    # column 2: the life loss at t=1 cuts the return; later steps are ordinary transitions
    assert R[1, 2] == pytest.approx(-1)
    assert R[0, 2] == pytest.approx(5 + GAMMA * -1)
    assert R[2, 2] == pytest.approx(1 + GAMMA * (1 + GAMMA * (1 + GAMMA * 15)))


def test_gae_with_lambda_one_equals_n_step_returns():
    torch.manual_seed(0)
    T, N = 7, 6
    rewards, values = torch.randn(T, N), torch.randn(T + 1, N)
    terminated, truncated = torch.rand(T, N) < 0.2, torch.rand(T, N) < 0.2
    truncated &= ~terminated
    assert torch.allclose(gae_returns(rewards, values, terminated, truncated, GAMMA, 1.0),
                          n_step_returns(rewards, values, terminated, truncated, GAMMA), atol=1e-5)


def test_gae_with_lambda_zero_is_the_one_step_td_target():
    rewards, values, terminated, truncated, _ = scripted_rollout()
    R = gae_returns(rewards, values, terminated, truncated, GAMMA, 0.0)
    assert R[0, 1] == pytest.approx(1 + GAMMA * 11)
    assert R[1, 0] == pytest.approx(2)  # terminal: no bootstrap
    assert R[3, 0] == pytest.approx(3 + GAMMA * 14)  # truncated: bootstrap from the last observation


def _buffer_for_loss(seed: int = 0) -> RolloutBuffer:
    torch.manual_seed(seed)
    _, _, terminated, truncated, autoreset = scripted_rollout()
    buf = RolloutBuffer(5, 3, (4,), torch.float32)
    buf.obs.normal_()
    buf.actions.random_(0, 2)
    buf.terminated, buf.truncated, buf.autoreset = terminated, truncated, autoreset
    return buf


def test_autoreset_step_is_not_a_transition():
    """Whatever sits in an autoreset slot (its action, its return target) changes neither loss nor gradient."""
    model = MLPActorCritic(4, 2, (8,))
    buf = _buffer_for_loss()
    returns = torch.randn(5, 3)

    def loss_and_grad(b, r):
        model.zero_grad()
        loss, _ = a2c_loss(model, b, r, value_coef=0.5, entropy_coef=0.01)
        loss.backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])

    loss_a, grad_a = loss_and_grad(buf, returns)
    buf.actions[buf.autoreset] = 1 - buf.actions[buf.autoreset]
    changed = returns.clone()
    changed[buf.autoreset] += 100.0
    loss_b, grad_b = loss_and_grad(buf, changed)
    assert loss_a == pytest.approx(loss_b)
    assert torch.allclose(grad_a, grad_b)
    changed[0, 0] += 1.0  # a real transition does change it
    assert loss_and_grad(buf, changed)[0] != pytest.approx(loss_a)


def test_loss_is_policy_plus_half_value_minus_entropy_bonus():
    model = MLPActorCritic(4, 2, (8,))
    buf = _buffer_for_loss()
    buf.autoreset.zero_()
    returns = torch.randn(5, 3)
    loss, stats = a2c_loss(model, buf, returns, value_coef=0.5, entropy_coef=0.01)
    logits, values = model(buf.obs[:5].flatten(0, 1))
    logp = torch.log_softmax(logits, -1)
    adv = returns.flatten() - values
    policy = -(adv.detach() * logp.gather(1, buf.actions.reshape(-1, 1)).squeeze(1)).mean()
    entropy = -(logp.exp() * logp).sum(-1).mean()
    assert loss.item() == pytest.approx((policy + 0.5 * adv.pow(2).mean() - 0.01 * entropy).item(), rel=1e-6)
    assert stats["value_loss"] == pytest.approx(adv.pow(2).mean().item(), rel=1e-6)


def test_atari_network_matches_the_official_architecture():
    model = AtariActorCritic(num_actions=6)
    n_params = sum(p.numel() for p in model.parameters())
    # conv 4→32 8x8, 32→64 4x4, 64→32 3x3, fc 1568→512, heads 512→6 and 512→1
    expected = (4 * 32 * 64 + 32) + (32 * 64 * 16 + 64) + (64 * 32 * 9 + 32) + (1568 * 512 + 512) + (512 * 6 + 6) + 513
    assert n_params == expected
    logits, value = model(torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8))
    assert logits.shape == (3, 6) and value.shape == (3,)
    w = model.policy.weight  # orthogonal rows scaled by 0.01
    assert torch.allclose(w @ w.T, 0.01**2 * torch.eye(6), atol=1e-7)
    assert torch.all(model.value.bias == 0)
    first = model.torso[0].weight.flatten(1)
    assert torch.allclose(first @ first.T, 2 * torch.eye(32), atol=1e-4)  # gain √2


def test_make_model_rejects_unknown_observation_shapes():
    with pytest.raises(ValueError, match="observation shape"):
        make_model((3, 64, 64), 4)
    assert isinstance(make_model((4,), 2), MLPActorCritic)
    assert isinstance(make_model((4, 84, 84), 4), AtariActorCritic)
