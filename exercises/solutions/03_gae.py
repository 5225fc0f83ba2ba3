"""Exercise 03, a reference solution: generalised advantage estimation (GAE), returned as returns A_t + V(s_t).

Written with torch only (no galakit), so that it can be read on its own.
"""

import torch


def gae_returns(rewards: torch.Tensor, values: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor,
                gamma: float, lam: float) -> torch.Tensor:
    """δ_t = r_t + γ V(s_{t+1})·[not terminated] − V(s_t);  A_t = δ_t + γλ A_{t+1}·[the episode goes on after t].

    rewards, terminated, truncated: (T, N); values: (T+1, N), V(s_0) … V(s_T). Returns R_t = A_t + V(s_t), (T, N).
    """
    T = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros_like(values[T])  # nothing is known after the rollout: V(s_T) is the whole guess
    for t in reversed(range(T)):
        # A terminal state is worth 0; after a time limit, s_{t+1} (the last observation) is worth V(s_{t+1}).
        next_value = values[t + 1] * (~terminated[t])
        delta = rewards[t] + gamma * next_value - values[t]
        # The sum of δs stops where the episode stops, terminated or truncated: the next step (an autoreset step)
        # belongs to another game.
        goes_on = ~(terminated[t] | truncated[t])
        advantages[t] = delta + gamma * lam * next_advantage * goes_on
        next_advantage = advantages[t]
    return advantages + values[:T]
