"""Exercise 02, a reference solution: the A2C loss over a rollout's T·N transitions, autoreset steps left out.

Written with torch only (no galakit), so that it can be read on its own.
"""

import torch


def a2c_loss(logits: torch.Tensor, values: torch.Tensor, actions: torch.Tensor, returns: torch.Tensor,
             autoreset: torch.Tensor, value_coef: float, entropy_coef: float) -> torch.Tensor:
    """L = −mean[A_t log π(a_t|s_t)] + c_v · mean[(R_t − V(s_t))²] − c_e · mean[H(π(·|s_t))],  A_t = R_t − V(s_t).

    logits (T, N, |A|); values, returns (T, N) float; actions (T, N) int64; autoreset (T, N) bool. Returns a 0-d
    tensor. Every mean runs over the real transitions only: an autoreset step's action was ignored by the simulator.
    """
    real = ~autoreset
    log_probs = torch.log_softmax(logits, dim=-1)  # (T, N, |A|), steadier than log(softmax(...))
    log_prob_taken = log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # log π(a_t|s_t), (T, N)
    entropy = -(log_probs.exp() * log_probs).sum(-1)  # H(π(·|s_t)), (T, N)

    # The advantage weighs the policy gradient; it is a number here, not something to optimise: detach it, or the
    # policy term would also move the critic.
    advantage = (returns - values).detach()
    policy_loss = -(advantage * log_prob_taken)[real].mean()
    value_loss = (returns - values)[real].pow(2).mean()
    entropy_bonus = entropy[real].mean()
    return policy_loss + value_coef * value_loss - entropy_coef * entropy_bonus
