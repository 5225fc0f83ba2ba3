"""Exercise 01, a reference solution: n-step bootstrapped returns over a rollout of T steps × N simulators.

Written with torch only (no galakit), so that it can be read on its own.
"""

import torch


def n_step_returns(rewards: torch.Tensor, values: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor,
                   gamma: float) -> torch.Tensor:
    """R_t = r_t + γ R_{t+1}, walked backwards from R_T = V(s_T), cut where an episode ends.

    rewards, terminated, truncated: (T, N); values: (T+1, N), V(s_0) … V(s_T). Returns (T, N).
    """
    T = rewards.shape[0]
    returns = torch.zeros_like(rewards)
    future = values[T]  # what follows the last step: the critic's guess V(s_T)
    for t in reversed(range(T)):
        # After step t comes: nothing (a terminal state), V(s_{t+1}) (a time limit stopped a game that would have
        # gone on), or the return of step t+1 (the episode goes on).
        next_value = torch.where(truncated[t], values[t + 1], future)
        next_value = torch.where(terminated[t], torch.zeros_like(next_value), next_value)
        returns[t] = rewards[t] + gamma * next_value
        future = returns[t]
    # A step after a terminated or truncated one is the autoreset step; its own return is never used, and no return
    # reaches through it, because the step before it cut the sum.
    return returns
