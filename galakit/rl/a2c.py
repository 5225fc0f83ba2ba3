"""Advantage actor-critic (A2C): collect a rollout, compute n-step returns, take one gradient step.

Notation (T = rollout length ``num_steps``, N = simulators ``num_envs``): s_t observations, a_t actions,
r_t learning rewards, V(s) the critic, π(a|s) the policy. The n-step bootstrapped return is

    R_t = r_t + γ r_{t+1} + … + γ^{T-1-t} r_{T-1} + γ^{T-t} V(s_T),

cut wherever an episode ends: R_t = r_t if s_{t+1} is terminal, R_t = r_t + γ V(s_{t+1}) if the episode was
truncated by a time limit (s_{t+1} is the last observation, and the game would have gone on). The loss is

    L = −mean[A_t log π(a_t|s_t)] + c_v · mean[(R_t − V(s_t))²] − c_e · mean[H(π(·|s_t))],   A_t = R_t − V(s_t).

gymnasium's vector environments reset a finished simulator on the *next* step: that step's action is ignored
and its reward is 0, so it is not a transition. ``autoreset[t]`` marks such steps; they are masked out of the
loss, and no return ever bootstraps through them (the step before them ended its episode).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


class RolloutBuffer:
    """Preallocated tensors for one rollout (shapes: T steps × N simulators).

    obs (T+1, N, *obs_shape): s_0 … s_T (s_T bootstraps the returns and starts the next rollout)
    actions (T, N) int64 · rewards (T, N) float32 · values (T+1, N) float32: V(s_t) from the rollout
    terminated, truncated, autoreset (T, N) bool: how step t ended, and whether it was an automatic reset
    """

    def __init__(self, num_steps: int, num_envs: int, obs_shape: tuple[int, ...], obs_dtype: torch.dtype,
                 device: torch.device | str = "cpu"):
        T, N = num_steps, num_envs
        self.obs = torch.zeros((T + 1, N, *obs_shape), dtype=obs_dtype, device=device)
        self.actions = torch.zeros((T, N), dtype=torch.int64, device=device)
        self.rewards = torch.zeros((T, N), dtype=torch.float32, device=device)
        self.values = torch.zeros((T + 1, N), dtype=torch.float32, device=device)
        self.terminated = torch.zeros((T, N), dtype=torch.bool, device=device)
        self.truncated = torch.zeros((T, N), dtype=torch.bool, device=device)
        self.autoreset = torch.zeros((T, N), dtype=torch.bool, device=device)

    @property
    def num_steps(self) -> int:
        return self.actions.shape[0]


@dataclass
class Episode:
    """A finished game as reported to users: raw (unclipped, all lives) return and length in agent steps."""

    global_step: int
    ret: float
    length: int
    rank: int = 0


def sample_actions(logits: torch.Tensor) -> torch.Tensor:
    """Draw a_t ~ π(·|s_t) for each row of logits (B, |A|) → (B,)."""
    return torch.multinomial(torch.softmax(logits, dim=-1), 1).squeeze(-1)


@torch.inference_mode()
def collect_rollout(env, model: nn.Module, buf: RolloutBuffer, global_step: int) -> list[Episode]:
    """Step the N simulators T times with the current policy, filling ``buf`` (``buf.obs[0]`` must hold s_0).

    Returns the games that ended during the rollout. ``global_step`` counts agent steps before this rollout.
    """
    episodes = []
    T, N = buf.actions.shape
    for t in range(T):
        logits, buf.values[t] = model(buf.obs[t])
        actions = sample_actions(logits)
        obs, reward, terminated, truncated, info = env.step(actions.cpu().numpy())
        buf.actions[t] = actions
        buf.obs[t + 1] = torch.as_tensor(obs)
        buf.rewards[t] = torch.as_tensor(reward)
        buf.terminated[t] = torch.as_tensor(terminated)
        buf.truncated[t] = torch.as_tensor(truncated)
        buf.autoreset[t] = torch.as_tensor(info["autoreset"])
        for i in np.flatnonzero(info["_episode"]):
            episodes.append(Episode(global_step + (t + 1) * N, float(info["episode"]["r"][i]),
                                    int(info["episode"]["l"][i])))
    buf.values[T] = model(buf.obs[T])[1]
    return episodes


def n_step_returns(rewards: torch.Tensor, values: torch.Tensor, terminated: torch.Tensor,
                   truncated: torch.Tensor, gamma: float) -> torch.Tensor:
    """R_t for t = T-1 … 0 (all tensors (T, N) except values (T+1, N)); see the module docstring."""
    returns = torch.zeros_like(rewards)
    R = values[-1]
    for t in reversed(range(rewards.shape[0])):
        next_value = torch.where(truncated[t], values[t + 1], R)   # time limit: bootstrap from s_{t+1}
        next_value = torch.where(terminated[t], 0.0, next_value)    # terminal state: nothing follows
        R = rewards[t] + gamma * next_value
        returns[t] = R
    return returns


def gae_returns(rewards: torch.Tensor, values: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor,
                gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimation (Schulman et al. 2016) as returns: R_t = A_t^GAE(γ, λ) + V(s_t).

    δ_t = r_t + γ V(s_{t+1})·[not terminated] − V(s_t);  A_t = δ_t + γλ A_{t+1}·[episode goes on after t].
    λ = 1 gives the n-step return above; λ = 0 the one-step TD target.
    """
    advantages = torch.zeros_like(rewards)
    A = torch.zeros_like(values[-1])
    for t in reversed(range(rewards.shape[0])):
        next_value = torch.where(terminated[t], 0.0, values[t + 1])
        delta = rewards[t] + gamma * next_value - values[t]
        goes_on = ~(terminated[t] | truncated[t])
        A = delta + gamma * lam * torch.where(goes_on, A, 0.0)
        advantages[t] = A
    return advantages + values[:-1]


def a2c_loss(model: nn.Module, buf: RolloutBuffer, returns: torch.Tensor, value_coef: float,
             entropy_coef: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The A2C loss on the T·N transitions of ``buf``, with autoreset steps masked out."""
    T, N = buf.actions.shape
    logits, values = model(buf.obs[:T].flatten(0, 1))
    log_probs = torch.log_softmax(logits, dim=-1)
    log_prob_taken = log_probs.gather(1, buf.actions.reshape(-1, 1)).squeeze(1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    real = ~buf.autoreset.reshape(-1)
    returns = returns.reshape(-1)
    advantages = (returns - values).detach()
    policy_loss = -(advantages * log_prob_taken)[real].mean()
    value_loss = (returns - values)[real].pow(2).mean()
    entropy_mean = entropy[real].mean()
    loss = policy_loss + value_coef * value_loss - entropy_coef * entropy_mean
    stats = {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(), "entropy": entropy_mean.item(),
             "explained_variance": explained_variance(values.detach()[real], returns[real])}
    return loss, stats


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """1 − Var[target − predicted] / Var[target]: 1 is a perfect critic, 0 no better than a constant."""
    var = target.var(unbiased=False)
    return float("nan") if var == 0 else float(1 - (target - predicted).var(unbiased=False) / var)


def compute_returns(buf: RolloutBuffer, gamma: float, gae_lambda: float | None) -> torch.Tensor:
    if gae_lambda is None:
        return n_step_returns(buf.rewards, buf.values, buf.terminated, buf.truncated, gamma)
    return gae_returns(buf.rewards, buf.values, buf.terminated, buf.truncated, gamma, gae_lambda)


def a2c_update(model: nn.Module, optimizer: torch.optim.Optimizer, buf: RolloutBuffer, gamma: float,
               gae_lambda: float | None, value_coef: float, entropy_coef: float,
               max_grad_norm: float, grad_hook=None) -> dict[str, float]:
    """One A2C step: returns → loss → backprop → (``grad_hook(model)``, e.g. average the gradients over
    learners) → clip the global grad-norm → optimizer step."""
    returns = compute_returns(buf, gamma, gae_lambda)
    loss, stats = a2c_loss(model, buf, returns, value_coef, entropy_coef)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_hook is not None:
        grad_hook(model)
    stats["grad_norm"] = float(nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm))
    optimizer.step()
    return stats


def make_optimizer(model: nn.Module, lr: float, alpha: float, eps: float) -> torch.optim.RMSprop:
    """RMSProp as in the official GALA code (PyTorch's variant: ε outside the square root, unlike TensorFlow's)."""
    return torch.optim.RMSprop(model.parameters(), lr=lr, alpha=alpha, eps=eps)
