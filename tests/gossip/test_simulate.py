"""The gossip rule (galakit.gossip.rule) and the simulator (galakit.gossip.simulate): sync, async with GALA's
sync_freq and either write policy, push-sum, ε-ball."""

import subprocess
import sys

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from galakit.gossip import simulate as gossip
from galakit.gossip.consensus import epsilon_bound, max_pairwise_distance
from galakit.gossip.rule import (
    DEFAULT_POLICY,
    GossipAction,
    WritePolicy,
    gossip_action,
    mix,
    mixing_scale,
    resolve_policy,
)
from galakit.gossip.simulate import local_updates, random_delays, simulate_async, simulate_push_sum, simulate_sync
from galakit.gossip.topology import build_topology, from_adjacency, from_networkx, one_peer_exponential, star

PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HUGE = 100_000_000  # the README's "never block" sync_freq


def random_x(n: int, d: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


# ---------------------------------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(("fresh", "staleness", "sync_freq", "action"), [
    (True, 0, 0, GossipAction.MIX), (True, 5, 3, GossipAction.MIX),
    (False, 0, 0, GossipAction.BLOCK),  # sync_freq 0: always wait (synchronous gossip)
    (False, 2, 3, GossipAction.SKIP), (False, 3, 3, GossipAction.BLOCK),
    (False, 10**6, HUGE, GossipAction.SKIP), (False, 10**12, None, GossipAction.SKIP),  # None: never wait
])
def test_gossip_action_is_gala_bounded_staleness_rule(fresh, staleness, sync_freq, action):
    assert gossip_action(fresh, staleness, sync_freq) is action


def test_gossip_action_works_elementwise():
    actions = gossip_action(np.array([True, False, False]), np.array([9, 0, 2]), 2)
    assert actions.tolist() == [GossipAction.MIX, GossipAction.SKIP, GossipAction.BLOCK]


def test_mix_on_star_divides_each_row_by_its_sum_unless_told_to_apply_w_as_given():
    peers = star(4).peers(0)  # the hub: W_00 = 1/4, W_0j = 1/2 from each of the 3 leaves (row sum 7/4)
    own, messages = np.array([7.0]), [np.array([0.0]), np.array([7.0]), np.array([14.0])]
    assert np.allclose(mix(own, messages, peers), (0.25 * 7 + 0.5 * 21) / 1.75)  # = 7: a convex combination
    assert np.allclose(mix(own, messages, peers, normalise=False), 0.25 * 7 + 0.5 * 21)


def test_mixing_scale_is_one_over_the_row_sum_or_one():
    assert mixing_scale(0.25, 1.5) == pytest.approx(1 / 1.75)
    assert mixing_scale(0.25, 1.5, normalise=False) == 1.0
    assert np.allclose(mixing_scale(np.array([0.5, 0.25]), np.array([0.5, 1.5])), [1.0, 1 / 1.75])


def test_the_policy_a_learner_follows_is_its_choice_unless_push_sum_or_synchronous_gossip_needs_another():
    assert DEFAULT_POLICY is WritePolicy.LATEST and WritePolicy("skip") is WritePolicy.SKIP
    assert resolve_policy("skip", sync_freq=None) is WritePolicy.SKIP
    assert resolve_policy("latest", sync_freq=3) is WritePolicy.LATEST
    assert resolve_policy("skip", sync_freq=0) is WritePolicy.EXACT  # step k mixes the step-k messages
    assert resolve_policy("latest", sync_freq=0, push_sum=True) is WritePolicy.SUM
    with pytest.raises(ValueError, match="^policy: got 'exact'; accepted: 'latest' .* or 'skip'"):
        resolve_policy("exact", sync_freq=None)  # a mode's need, not a choice


def test_the_rule_module_loads_no_torch():
    code = "import sys, galakit.gossip.rule; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_mix_is_one_row_of_w_times_x():
    schedule = build_topology("ring", 5, peers=2)
    x = torch.as_tensor(random_x(5))
    peers = schedule.peers(0)
    mixed = mix(x[0], [x[j] for j in peers.in_peers], peers)
    assert torch.allclose(mixed, (torch.as_tensor(schedule.mixing_matrix()) @ x)[0])


def test_mix_needs_one_message_per_in_peer():
    peers = build_topology("ring", 4).peers(0)
    with pytest.raises(ValueError, match="^messages: got 2 \\(rank 0 at step 0 hears from \\[3\\]\\); accepted: 1,"):
        mix(np.zeros(2), [np.zeros(2), np.zeros(2)], peers)


# ---------------------------------------------------------------------------------------------------- sync


@pytest.mark.parametrize(("name", "n"), [("ring", 6), ("one_peer_exponential", 64), ("exponential", 12),
                                         ("bipartite_exponential", 80), ("star", 7)])
def test_sync_gossip_is_x_k_plus_one_equals_w_k_x_k(name, n):
    schedule = build_topology(name, n)  # n = 64 and 80 use the gather path, the others the dense product
    x0 = random_x(n)
    trace = simulate_sync(schedule, x0, 7, store_values=True)
    x = x0
    for k in range(7):
        W = schedule.mixing_matrix(k)
        x = (W / W.sum(axis=1, keepdims=True)) @ x  # rows divided by their sums: W itself but on star
        assert np.allclose(trace.values[k + 1], x, atol=1e-12)
    assert np.allclose(trace.final, x, atol=1e-12)


@pytest.mark.parametrize("n", [7, 80])  # dense product, gather
def test_sync_gossip_on_star_applies_w_as_given_when_told_not_to_normalise(n):
    schedule, x0 = star(n), random_x(n)
    W = schedule.mixing_matrix()
    assert not np.allclose(W.sum(axis=1), 1)  # only column-stochastic: normalising changes it
    trace = simulate_sync(schedule, x0, 3, normalise=False, store_values=True)
    assert np.allclose(trace.values[3], W @ W @ W @ x0, atol=1e-12)


def test_one_peer_exponential_reaches_exact_consensus_after_log2_n_steps():
    exact = simulate_sync(one_peer_exponential(16), random_x(16), 8).consensus_error
    assert np.all(exact[:4] > 0.1) and np.all(exact[4:] < 1e-12 * exact[0])
    inexact = simulate_sync(one_peer_exponential(12), random_x(12), 8).consensus_error
    assert inexact[4] > 1e-3 * inexact[0]


def test_sync_gossip_preserves_the_average_on_doubly_stochastic_graphs():
    trace = simulate_sync(build_topology("exponential", 10), random_x(10), 20)
    assert np.allclose(trace.mean, trace.mean[0], atol=1e-12)


def test_trace_records_each_steps_messages_and_distances():
    schedule = one_peer_exponential(8)
    x0 = random_x(8)
    trace = simulate_sync(schedule, x0, 5)
    assert trace.steps == 5 and trace.mode == "sync" and trace.schedule == "one_peer_exponential"
    assert [e.tolist() for e in trace.active_edges] == [schedule.edges(k).tolist() for k in range(5)]
    assert trace.messages.tolist() == [8] * 5
    assert np.allclose(trace.distance_to_average[0], np.linalg.norm(x0 - x0.mean(0), axis=1))
    assert trace.max_pairwise[0] == pytest.approx(max_pairwise_distance(x0)) and trace.pairwise_exact


def test_large_runs_keep_summaries_but_not_values(monkeypatch):
    monkeypatch.setattr(gossip, "EXACT_PAIRWISE_MAX", 0)
    trace = simulate_sync(build_topology("ring", 64), random_x(64, d=200), 3)
    assert trace.values is None and not trace.pairwise_exact
    assert trace.distance_to_average.shape == (4, 64)
    assert np.allclose(trace.max_pairwise, 2 * trace.distance_to_average.max(axis=1))


def test_float32_input_is_simulated_in_float32():
    trace = simulate_sync(one_peer_exponential(8), torch.randn(8, 5), 3)
    assert trace.final.dtype == np.float32


def test_x0_with_the_wrong_number_of_learners_is_rejected():
    with pytest.raises(ValueError, match="^x0: got an array of shape \\(5, 2\\) .*; accepted: shape \\(n,\\) or "
                                         "\\(n, d\\) with n = 4"):
        simulate_sync(build_topology("ring", 4), np.zeros((5, 2)), 3)


# ---------------------------------------------------------------------------------------------------- local updates


def test_gradient_noise_rows_have_norm_exactly_g():
    g = local_updates(alpha=0.5, grad_bound=2.0, seed=0)(0, torch.zeros(6, 4, dtype=torch.float64))
    assert torch.allclose(torch.linalg.vector_norm(g, dim=1), torch.full((6,), 1.0, dtype=torch.float64))


def test_grad_fn_and_grad_bound_are_exclusive():
    with pytest.raises(ValueError, match="^grad_bound: got 1.0 \\(grad_fn is given too\\); accepted: 0 when grad_fn"):
        local_updates(0.1, grad_bound=1.0, grad_fn=lambda k, x: x)


@PROPERTY
@given(name=st.sampled_from(["ring", "undirected_ring", "exponential", "torus", "complete"]),
       n=st.integers(2, 24), d=st.integers(1, 4), alpha=st.floats(1e-3, 0.2), grad_bound=st.floats(0.1, 5.0),
       spread=st.floats(0.0, 3.0), seed=st.integers(0, 10_000))
def test_simulated_consensus_error_never_leaves_the_epsilon_ball(name, n, d, alpha, grad_bound, spread, seed):
    schedule = build_topology(name, n)
    rho = schedule.rho()
    trace = simulate_sync(schedule, spread * random_x(n, d, seed), 150, alpha=alpha, grad_bound=grad_bound,
                          seed=seed)
    error = trace.consensus_error
    bound = [epsilon_bound(rho, alpha, grad_bound, n, e0=error[0], k=k) for k in range(len(error))]
    assert np.all(error <= np.array(bound) * (1 + 1e-9) + 1e-12)
    assert error.max() <= epsilon_bound(rho, alpha, grad_bound, n, e0=error[0]) * (1 + 1e-9) + 1e-12


@PROPERTY
@given(n=st.sampled_from([4, 6, 8, 12, 16]), alpha=st.floats(1e-3, 0.2), seed=st.integers(0, 10_000))
def test_one_peer_exponential_stays_in_the_windowed_epsilon_ball(n, alpha, seed):
    schedule = one_peer_exponential(n)
    trace = simulate_sync(schedule, random_x(n, 2, seed), 60, alpha=alpha, grad_bound=1.0, seed=seed)
    error = trace.consensus_error
    bound = [epsilon_bound(schedule.rho(), alpha, 1.0, n, e0=error[0], k=k, window=schedule.period)
             for k in range(len(error))]
    assert np.all(error <= np.array(bound) * (1 + 1e-9) + 1e-12)


# ---------------------------------------------------------------------------------------------------- async


@pytest.mark.parametrize("sync_freq", [0, 3, HUGE])
@pytest.mark.parametrize("policy", ["latest", "skip"])
def test_async_without_delays_is_synchronous_gossip(sync_freq, policy):
    schedule = build_topology("ring", 6, peers=2)
    x0 = random_x(6)
    a = simulate_async(schedule, x0, 15, sync_freq=sync_freq, policy=policy, alpha=0.1, grad_bound=1.0, seed=3)
    s = simulate_sync(schedule, x0, 15, alpha=0.1, grad_bound=1.0, seed=3)
    assert np.allclose(a.final, s.final, atol=1e-12)
    assert a.mixed.all() and not a.skipped.any() and not a.blocked.any()


@pytest.mark.parametrize("policy", ["latest", "skip"])
def test_with_huge_sync_freq_a_learner_whose_in_peer_is_silent_keeps_going_without_mixing(policy):
    schedule = build_topology("ring", 4)  # learner 0 hears only from 3
    silent = lambda step, senders, receivers: np.where(senders == 3, -1, 0)  # noqa: E731 (every message dropped)
    x0 = random_x(4)
    trace = simulate_async(schedule, x0, 30, sync_freq=HUGE, policy=policy, delay=silent, alpha=0.1,
                           grad_fn=lambda k, x: torch.ones_like(x))
    assert not trace.mixed[:, 0].any() and not trace.blocked[:, 0].any()
    assert trace.skipped[:, 0].all() and trace.staleness[:, 0].tolist() == list(range(1, 31))
    assert np.allclose(trace.final[0], x0[0] - 0.1 * 30)  # all 30 local steps taken, no mixing
    assert trace.mixed[:, 1:3].all()  # the others keep gossiping


def late_first_message(step, senders, receivers, late=10):
    """3's first message to 0 arrives at step 10; every other message is immediate."""
    return np.where((step == 0) & (senders == 3), late, 0)


@pytest.mark.parametrize("policy", ["skip", "latest"])
@pytest.mark.parametrize("sync_freq", [0, 1, 3])
def test_with_sync_freq_s_a_learner_blocks_after_s_skips_until_the_message_arrives(sync_freq, policy):
    x0, late = random_x(4), 10
    trace = simulate_async(build_topology("ring", 4), x0, 14, sync_freq=sync_freq, delay=late_first_message,
                           policy=policy, store_values=True)
    s = sync_freq
    assert trace.skipped[:s, 0].all() and not trace.skipped[s:late + 1, 0].any()
    assert not trace.blocked[:s, 0].any() and trace.blocked[s:late, 0].all()
    assert not trace.mixed[:late, 0].any() and trace.mixed[late, 0]
    assert trace.staleness[late - 1, 0] == s and trace.staleness[late, 0] == 0
    assert not np.allclose(trace.values[late, 3], x0[3])  # 3 has mixed since its first message
    if policy == "skip":  # the official rule: 3 wrote nothing more while its first message was on its way ...
        assert np.allclose(trace.values[late + 1, 0], (x0[0] + x0[3]) / 2)  # ... so 0 mixes that stale one
        assert trace.age[late, 0] == late - trace.blocked[:late, 3].sum()  # 3's updates since (it waits too)
    else:  # 3's newer writes queued behind it, the newest arrives with it and replaces it: 3's θ of step 10
        assert np.allclose(trace.values[late + 1, 0], (x0[0] + trace.values[late, 3]) / 2)
        assert trace.age[late, 0] == 0


@pytest.mark.parametrize(("policy", "age"), [("latest", 0), ("skip", 3)])
def test_a_slow_learner_mixes_its_fast_in_peers_newest_parameters_or_under_skip_one_of_its_own_period_ago(policy,
                                                                                                         age):
    # ring of 4: learner 0 finishes an update every 4 steps and hears from 3, who updates at every step
    trace = simulate_async(build_topology("ring", 4), random_x(4), 40, sync_freq=HUGE, policy=policy,
                           update_every=[4, 1, 1, 1])
    assert trace.mixed[3::4, 0].all() and not trace.mixed[:, 0].reshape(10, 4)[:, :3].any()  # only when done
    assert set(trace.age[trace.mixed[:, 0], 0][1:].tolist()) == {age}  # (the first: 3's first message, age 3)
    # its out-peer 1 hears from it once every 4 steps, whatever the policy: it mixes each message exactly once
    assert trace.mixed[:, 1].sum() == 10 and trace.skipped[:, 1].sum() == 30


def test_update_every_needs_one_positive_int_per_learner():
    with pytest.raises(ValueError, match="^update_every: got \\[1, 2\\]; accepted: an int >= 1, or 4 of them"):
        simulate_async(build_topology("ring", 4), random_x(4), 5, sync_freq=1, update_every=[1, 2])


@pytest.mark.parametrize("policy", ["latest", "skip"])
def test_a_blocked_learner_takes_no_local_steps(policy):
    schedule = build_topology("ring", 4)
    delay = lambda step, senders, receivers: np.where((step == 0) & (senders == 3), 5, 0)  # noqa: E731
    trace = simulate_async(schedule, np.zeros((4, 1)), 5, sync_freq=0, policy=policy, delay=delay, alpha=1.0,
                           grad_fn=lambda k, x: torch.ones_like(x), store_values=True)
    assert trace.blocked[:5, 0].all()
    assert trace.values[1:, 0, 0].tolist() == [-1.0] * 5  # one local step (at step 0), then waiting


@pytest.mark.parametrize("policy", ["latest", "skip"])
def test_sync_freq_zero_never_skips(policy):
    trace = simulate_async(build_topology("ring", 8), random_x(8), 100, sync_freq=0, policy=policy,
                           delay=random_delays(max_delay=3, seed=0))
    assert not trace.skipped.any() and trace.blocked.any()


@pytest.mark.parametrize("policy", ["latest", "skip"])
def test_drops_do_not_deadlock_blocking_learners(policy):
    trace = simulate_async(build_topology("ring", 8), random_x(8), 300, sync_freq=1, policy=policy,
                           delay=random_delays(max_delay=2, drop_prob=0.3, seed=1))
    assert trace.mixed[-60:].any(axis=0).all()  # everyone still mixes near the end
    assert trace.consensus_error[-1] < 1e-3 * trace.consensus_error[0]


@pytest.mark.parametrize("policy", ["latest", "skip"])
def test_async_gossip_reaches_consensus_but_the_average_drifts(policy):
    trace = simulate_async(build_topology("ring", 8), random_x(8), 400, sync_freq=2, policy=policy,
                           delay=random_delays(max_delay=4, seed=2))
    assert trace.consensus_error[-1] < 1e-3 * trace.consensus_error[0]
    assert np.abs(trace.mean[-1] - trace.mean[0]).max() > 1e-6  # plain averaging, not push-sum


def test_async_rejects_time_varying_schedules_and_bad_arguments():
    with pytest.raises(ValueError, match="^schedule: got 'one_peer_exponential' with period 3 .*; accepted: a static"):
        simulate_async(one_peer_exponential(8), random_x(8), 5, sync_freq=1)
    with pytest.raises(ValueError, match="^sync_freq: got -1; accepted: an int >= 0"):
        simulate_async(build_topology("ring", 4), random_x(4), 5, sync_freq=-1)
    with pytest.raises(ValueError, match="^delay: got -2; accepted: an int >= 0 .* or a function"):
        simulate_async(build_topology("ring", 4), random_x(4), 5, sync_freq=1, delay=-2)
    with pytest.raises(ValueError, match="^policy: got 'newest'; accepted: 'latest'"):
        simulate_async(build_topology("ring", 4), random_x(4), 5, sync_freq=1, policy="newest")


# ---------------------------------------------------------------------------------------------------- push-sum


def random_directed_graph(n: int, seed: int) -> nx.DiGraph:
    """A directed ring (for strong connectivity) plus random extra links: not regular, not doubly stochastic."""
    g = nx.gnp_random_graph(n, 0.3, seed=seed, directed=True)
    g.add_edges_from((i, (i + 1) % n) for i in range(n))
    return g


@PROPERTY
@given(n=st.integers(3, 12), d=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_push_sum_conserves_mass_and_weight_and_finds_the_true_mean(n, d, seed):
    schedule = from_networkx(random_directed_graph(n, seed))
    x0 = random_x(n, d, seed)
    trace = simulate_push_sum(schedule, x0, 600)
    assert np.allclose(trace.total_mass, x0.sum(0), rtol=0, atol=1e-9)
    assert np.allclose(trace.total_weight, n, rtol=0, atol=1e-9)
    assert np.abs(trace.final - x0.mean(0)).max() < 1e-6


def test_push_sum_recovers_the_mean_where_plain_gossip_does_not():
    x0 = np.arange(6.0)[:, None]
    assert np.allclose(simulate_push_sum(star(6), x0, 60).final, 2.5, atol=1e-8)
    # Plain gossip with rows normalised agrees on the average weighted by the stationary distribution π of the
    # normalised W (hub 4/19, each leaf 3/19): 45/19, not the mean 2.5; with W as given it drifts away entirely.
    assert np.allclose(simulate_sync(star(6), x0, 60).final, 45 / 19, atol=1e-6)
    plain = simulate_sync(star(6), x0, 60, normalise=False).final
    assert np.abs(plain - 2.5).max() > 1.0


def test_push_sum_needs_column_stochastic_weights():
    row_stochastic = from_adjacency(np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.5, 0.25, 0.25]]))
    with pytest.raises(ValueError, match="^schedule: got .* column 1 .* sums to 1.25\\); accepted: a column-stochastic "
                                         "schedule: push-sum needs"):
        simulate_push_sum(row_stochastic, random_x(3), 3)
