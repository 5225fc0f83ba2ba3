"""Exercise 10's checker: the reference step passes, the stub is "not attempted", and the mistakes students make
(blocking when sync_freq=None, resetting the count on a skip, off by one on sync_freq, mixing a stale message
again, mixing when only some in-peers sent, not renormalising W's row, ...) fail with a hint naming them."""

import numpy as np
import pytest
from support import hint_of, load_solution

from galakit.exercises import check_gala_gossip_step
from galakit.exercises.gala_step import cases, reference
from galakit.gossip.rule import GossipAction

solution = load_solution("10_gala_gossip_step")
gala_gossip_step = solution.gala_gossip_step
MIX, SKIP, BLOCK = GossipAction.MIX, GossipAction.SKIP, GossipAction.BLOCK


def test_the_reference_solution_passes():
    assert check_gala_gossip_step(gala_gossip_step).passed


def test_the_cases_reach_every_action_under_every_kind_of_sync_freq():
    seen = {(reference(c)[0], c.sync_freq if c.sync_freq in (None, 0) else "k") for c in cases()}
    assert {(MIX, None), (SKIP, None), (MIX, "k"), (SKIP, "k"), (BLOCK, "k"), (BLOCK, 0)} <= seen
    assert any(not all(f for _, f in c.inbox.values()) and all(j in c.inbox for j in c.peers.in_peers)
               for c in cases()), "a case where every in-peer has a slot but one is stale"


def test_the_stub_is_not_attempted():
    def gala_gossip_step(theta, inbox, staleness, sync_freq, peers):
        raise NotImplementedError  # your code here

    assert check_gala_gossip_step(gala_gossip_step).status == "not attempted"


def is_fresh(inbox, j):
    return j in inbox and inbox[j][1]


def step_with(theta, inbox, staleness, sync_freq, peers, *, counts=is_fresh, mix_when=all,
              skips=lambda s, f: f is None or s < f, after_skip=lambda s: s + 1, after_block=lambda s: s,
              normalise=True):
    """The reference step with one of its rules swapped for a wrong one."""
    if mix_when(counts(inbox, j) for j in peers.in_peers):
        mixed, total = peers.self_weight * theta, peers.self_weight
        for j, w in zip(peers.in_peers, peers.in_weights, strict=True):
            if counts(inbox, j):
                mixed, total = mixed + w * inbox[j][0], total + w
        return MIX, mixed / (total if normalise else 1.0), 0
    if skips(staleness, sync_freq):
        return SKIP, theta, after_skip(staleness)
    return BLOCK, theta, after_block(staleness)


def blocks_when_none(*args):
    return step_with(*args, skips=lambda s, f: s < (f or 0))


def resets_on_skip(*args):
    return step_with(*args, after_skip=lambda s: 0)


def skips_at_the_limit(*args):
    return step_with(*args, skips=lambda s, f: f is None or s <= f)


def blocks_one_early(*args):
    return step_with(*args, skips=lambda s, f: f is None or s + 1 < f)


def mixes_stale_messages(*args):
    return step_with(*args, counts=lambda inbox, j: j in inbox)


def mixes_whatever_came(*args):
    return step_with(*args, mix_when=any)


def row_as_given(*args):
    return step_with(*args, normalise=False)


def counts_a_block_as_a_skip(*args):
    return step_with(*args, after_block=lambda s: s + 1)


def equal_weights(theta, inbox, staleness, sync_freq, peers):
    action, new, count = gala_gossip_step(theta, inbox, staleness, sync_freq, peers)
    if action == MIX:
        new = (theta + sum(inbox[j][0] for j in peers.in_peers)) / (len(peers.in_peers) + 1)
    return action, new, count


def keeps_counting_after_a_mix(theta, inbox, staleness, sync_freq, peers):
    action, new, count = gala_gossip_step(theta, inbox, staleness, sync_freq, peers)
    return action, new, staleness if action == MIX else count


def mixes_while_blocked(theta, inbox, staleness, sync_freq, peers):
    action, new, count = gala_gossip_step(theta, inbox, staleness, sync_freq, peers)
    if action == BLOCK and inbox:
        new = (theta + sum(m for m, _ in inbox.values())) / (len(inbox) + 1)
    return action, new, count


@pytest.mark.parametrize("wrong, says", [
    (blocks_when_none, "sync_freq=None means never block"),
    (resets_on_skip, "resetting it on a skip means the learner never blocks"),
    (skips_at_the_limit, "off by one: staleness = 2 skips in a row have reached sync_freq = 2"),
    (blocks_one_early, "off by one: staleness = 1 < sync_freq = 2, so one more skip is allowed"),
    (mixes_stale_messages, "slot holds a message you mixed already (fresh=False)"),
    (mixes_whatever_came, "only some in-peers sent a fresh message"),
    (row_as_given, "the row of W sums to 2.2 here, not 1"),
    (counts_a_block_as_a_skip, "a blocked learner has not skipped"),
    (equal_weights, "the same weight 1/(p+1)"),
    (keeps_counting_after_a_mix, "a mix resets the count"),
    (mixes_while_blocked, "θ_i changes only when the learner mixes"),
])
def test_each_mistake_is_named(wrong, says):
    assert says in hint_of(check_gala_gossip_step(wrong))


def test_an_action_given_as_a_string_is_told_what_to_return():
    result = check_gala_gossip_step(lambda theta, inbox, staleness, sync_freq, peers: ("mix", theta, 0))
    assert "return GossipAction.MIX, GossipAction.SKIP or GossipAction.BLOCK" in hint_of(result)


def test_two_things_instead_of_three_are_told_what_to_return():
    result = check_gala_gossip_step(lambda theta, inbox, staleness, sync_freq, peers: (MIX, theta))
    assert "return three things: (action, new_theta, new_staleness)" in hint_of(result)


def test_the_inbox_is_copied_so_a_function_that_writes_into_it_cannot_change_the_reference():
    def answers_then_clears(theta, inbox, staleness, sync_freq, peers):
        answer = gala_gossip_step(theta, inbox, staleness, sync_freq, peers)
        answer = (answer[0], answer[1].copy() if hasattr(answer[1], "copy") else answer[1].clone(), answer[2])
        for message, _ in inbox.values():
            message *= np.nan
        inbox.clear()
        return answer

    assert check_gala_gossip_step(answers_then_clears).passed


def test_a_function_that_returns_nothing_is_told_so():
    assert "is `return` missing?" in check_gala_gossip_step(lambda *args: None).message


def test_passing_the_result_instead_of_the_function_is_told_so():
    assert "pass the function itself" in check_gala_gossip_step((MIX, np.zeros(3), 0)).message
