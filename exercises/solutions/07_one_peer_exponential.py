"""Exercise 07, a reference solution: the one-peer exponential graph (SGP's time-varying schedule).

At gossip step k learner r sends to the single peer r + 2^(k mod τ) (mod n), τ = ⌈log₂ n⌉: the jumps 1, 2, 4, …
reach every distance in τ steps, one message per learner per step.
"""


def out_peer(rank: int, step: int, n: int) -> int:
    """The rank that learner ``rank`` sends to at gossip step ``step`` (n ≥ 2 learners)."""
    tau = max(1, (n - 1).bit_length())  # ⌈log₂ n⌉ for n ≥ 2: the number of bits of n − 1
    return (rank + 2 ** (step % tau)) % n
