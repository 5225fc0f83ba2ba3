"""Checker of exercise 07: the out-peer of learner r at gossip step k in the one-peer exponential graph, and
what its steps multiply to.

The reference is galakit's own ``one_peer_exponential(n).peers(rank, step)`` (`galakit.gossip.topology`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from galakit.exercises.checking import Hint, call, checker, expect, expect_close, show
from galakit.gossip.topology import averaging_matrix, one_peer_exponential

SIZES = (8, 6, 2, 3, 4, 5, 7, 12, 16)
EXACT, INEXACT = (2, 4, 8, 16), 6  # n = 2^τ averages exactly in τ steps; n = 6 never does


@checker("one-peer exponential graph", success=(
    "your peers match galakit's one_peer_exponential for n = 2…16 over two periods. For n = 4, 8, 16 the "
    "log₂ n steps multiply to J exactly; for n = 6 they cannot, in any number of steps: every W_k has entries "
    "0, ½ or 1, so a product of 3 steps has entries that are multiples of 1/8, and 1/6 is not one"))
def check_one_peer_exponential(fn: Callable) -> None:
    """Check ``fn(rank, step, n) -> peer`` for every rank and two periods of steps, then the product of one
    period: J for n a power of two, not J for n = 6."""
    tables = {n: peer_table(fn, n) for n in SIZES}
    for n in (*EXACT, INEXACT):
        tau = period(n)
        name = f"the product of one period, W_{tau - 1}⋯W_0, for n = {n}"
        product = period_product(tables[n][:tau])
        if n in EXACT:
            expect_close(product, averaging_matrix(n), case=name, what="the product", shows=f"n = {n}, τ = {tau}")
        else:
            expect(not np.allclose(product, averaging_matrix(n)), case=name, shows=f"n = {n}, τ = {tau}",
                   found=f"the product is J:\n{show(product)}",
                   hint="with n = 6 no product of one-peer steps can be J (entries k/8 ≠ 1/6): check the peers")


def period(n: int) -> int:
    """τ = ⌈log₂ n⌉, the number of distinct steps (1 for n = 2)."""
    return one_peer_exponential(n).period


def peer_table(fn: Callable, n: int) -> np.ndarray:
    """The learner's peers, row k = step k (two periods), column r = rank; compared with galakit's."""
    tau, schedule = period(n), one_peer_exponential(n)
    steps = range(2 * tau)
    name = f"n = {n}, τ = ⌈log₂ {n}⌉ = {tau}, steps k = 0..{2 * tau - 1}, every rank r"
    shows = f"rank r sends to one peer at step k; n = {n} learners"
    expected = np.array([[schedule.peers(r, k).out_peers[0] for r in range(n)] for k in steps])
    got = np.array([[one_peer(fn, r, k, n, name) for r in range(n)] for k in steps])
    if not np.array_equal(got, expected):
        k, r = np.argwhere(got != expected)[0]
        hint = next((h.says for h in peer_mistakes(n, tau, len(steps)) if h.matches(got)), "")
        expect(False, case=name, shows=shows, hint=hint,
               found=f"expected peers (row k = step, column r = rank):\n{ints(expected)}\ngot:\n{ints(got)}\n"
                     f"first difference at step k = {k}, rank r = {r}: expected {expected[k, r]}, got {got[k, r]}")
    return got


def ints(table: np.ndarray) -> str:
    return "\n".join("    " + line for line in np.array2string(table, max_line_width=100).splitlines())


def one_peer(fn: Callable, rank: int, step: int, n: int, name: str) -> int:
    got = call(fn, rank, step, n, case=name)
    where = f"{getattr(fn, '__name__', 'your function')}(rank={rank}, step={step}, n={n})"
    expect(got is not None, case=name, found=f"{where} returned None", hint="is `return` missing?")
    value = np.asarray(got, dtype=object)
    expect(value.ndim == 0, case=name, found=f"{where} returned {got!r}",
           hint="return one int, the rank this learner sends to (one peer per step)")
    expect(isinstance(got, (int, np.integer)) or (isinstance(got, float) and got.is_integer()), case=name,
           found=f"{where} returned {got!r}", hint="a peer is a rank: an int in 0..n−1")
    return int(got)


def period_product(peers: np.ndarray) -> np.ndarray:
    """W_{τ−1} ⋯ W_0 with W_k = ½ (I + the shift r → peers[k, r]): each learner keeps half, sends half."""
    n = peers.shape[1]
    product = np.eye(n)
    for row in peers.astype(int):
        W = np.eye(n) / 2
        W[row, np.arange(n)] += 0.5  # column r: r keeps ½ and gives ½ to its peer
        product = W @ product
    return product


def peer_mistakes(n: int, tau: int, steps: int) -> list[Hint]:
    k, r = np.arange(steps)[:, None], np.arange(n)[None, :]
    floor = max(1, n.bit_length() - 1)

    def table(offset: np.ndarray, wrap: bool = True) -> np.ndarray:
        return (r + offset) % n if wrap else r + offset

    return [
        Hint(table(-(2 ** (k % tau))), "that is who r hears from (its in-peer, r − 2^(k mod τ)): r sends to "
                                       "r + 2^(k mod τ)"),
        Hint(table(2 ** (k % tau), wrap=False), "some peers are ≥ n: ranks wrap around, (r + 2^(k mod τ)) mod n"),
        Hint(table(2 ** (k % tau + 1)), "step k = 0 sends to the next learner, r + 2⁰ = r + 1: the offsets are "
                                        "1, 2, 4, …"),
        Hint(table(2 ** (k % floor)), f"the period is τ = ⌈log₂ n⌉ = {tau} (offsets 1, 2, …, 2^(τ−1)), not "
                                      f"⌊log₂ n⌋ = {floor}: with ⌊·⌋ the longest jumps are never made"),
        Hint(table(2**k), f"after τ = ⌈log₂ n⌉ = {tau} steps the offsets start again at 1: the offset is "
                          "2^(k mod τ)"),
        Hint(table(2 ** (k % (tau + 1))), f"the period is τ = ⌈log₂ n⌉ = {tau}, one less: the offset 2^τ ≥ n would "
                                          "jump over the whole ring"),
        Hint(lambda got: got.shape == (steps, n) and bool(np.any((got < 0) | (got >= n))),
             f"some peers are outside 0..{n - 1}: take them mod n"),
        Hint(lambda got: got.shape == (steps, n) and bool(np.any(got == r)),
             "at some step a learner sends to itself: 2^k mod n is 0 once 2^k is a multiple of n. The offset "
             "2^(k mod τ) cycles with period τ = ⌈log₂ n⌉"),
    ]
