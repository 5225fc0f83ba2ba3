"""Topologies, mixing matrices, checks and spectra (galakit.gossip.topology)."""

import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from galakit.gossip.topology import (
    TOPOLOGIES,
    Schedule,
    assign_weights,
    bipartite_exponential,
    build_topology,
    check_stochastic,
    complete,
    directed_ring,
    eigenvalues,
    exponential,
    from_adjacency,
    from_networkx,
    mixing_matrix,
    one_peer_exponential,
    rho,
    spectral_gap,
    star,
    stochasticity,
    torus,
    undirected_ring,
)

# Topologies whose uniform weights are doubly stochastic (every learner has as many in- as out-peers).
REGULAR = ["ring", "undirected_ring", "complete", "exponential", "one_peer_exponential", "bipartite_exponential",
           "torus", "random_regular"]
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def build_or_skip(name: str, n: int, seed: int, weights: str = "uniform"):
    """Build a topology, skipping parameter draws the topology does not admit (a ValueError naming why)."""
    kw = {"degree": 3 if n > 3 else n - 1} if name == "random_regular" else {}
    if name == "bipartite_exponential":
        n += n % 2
    try:
        return build_topology(name, n, seed=seed, weights=weights, **kw)
    except ValueError as err:  # a disconnected random sample, or n × degree odd
        assume("strongly connected" not in str(err) and "even" not in str(err))
        raise


# ---------------------------------------------------------------------------------------------------- reference


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 16, 31, 64])
def test_directed_ring_rho_is_cos_pi_over_n(n):
    assert abs(build_topology("ring", n).rho() - math.cos(math.pi / n)) < 1e-9


@pytest.mark.parametrize("n", [3, 4, 5, 8, 16, 33, 64])
def test_undirected_ring_with_thirds_has_rho_one_third_plus_two_thirds_cos(n):
    schedule = undirected_ring(n)
    assert np.allclose(schedule.mixing_matrix()[schedule.mixing_matrix() > 0], 1 / 3)
    assert abs(schedule.rho() - (1 / 3 + 2 / 3 * math.cos(2 * math.pi / n))) < 1e-9


@pytest.mark.parametrize("n", [2, 4, 6, 8, 12, 16, 32, 64, 100, 128])
def test_static_exponential_rho_for_even_n(n):
    tau = math.ceil(math.log2(n))
    assert abs(exponential(n).rho() - (1 - 2 / (1 + tau))) < 1e-9


def test_static_exponential_mixes_faster_than_claimed_for_odd_n():
    assert exponential(17).rho() < 1 - 2 / (1 + 5) - 0.1


@pytest.mark.parametrize("n", [2, 4, 8, 16, 32, 64])
def test_one_peer_exponential_averages_exactly_in_log2_n_steps_for_powers_of_two(n):
    schedule = one_peer_exponential(n)
    assert schedule.period == int(math.log2(n))
    assert np.abs(schedule.period_product() - np.full((n, n), 1 / n)).max() < 1e-12
    assert schedule.rho() < 1e-9


@pytest.mark.parametrize(("n", "expected"), [(6, 0.2165), (12, 0.2091), (100, 0.1916)])
def test_one_peer_exponential_is_not_exact_for_other_n(n, expected):
    assert abs(one_peer_exponential(n).rho() - expected) < 1e-4


@pytest.mark.parametrize("n", [4, 8, 16, 32])
def test_a_single_one_peer_step_contracts_only_like_a_ring(n):
    assert abs(rho(one_peer_exponential(n).mixing_matrix(0)) - math.cos(math.pi / n)) < 1e-9


@pytest.mark.parametrize("n", [2, 3, 5, 8, 13, 16, 40])
def test_one_peer_exponential_follows_sgp_schedule(n):
    schedule = one_peer_exponential(n)
    tau = int(math.log2(n - 1)) + 1  # SGP: ⌊log₂(n−1)⌋ + 1
    assert schedule.period == tau
    for k in range(2 * tau):
        for r in (0, n - 1):
            peers = schedule.peers(r, k)
            assert peers.out_peers == ((r + 2 ** (k % tau)) % n,)
            assert peers.in_peers == ((r - 2 ** (k % tau)) % n,)
            assert peers.self_weight == peers.in_weights[0] == 0.5


# ---------------------------------------------------------------------------------------------------- peers


def test_gala_default_is_a_one_peer_directed_ring_with_halves():
    schedule = build_topology("ring", 4)
    assert [(p.out_peers, p.in_peers) for p in map(schedule.peers, range(4))] == [
        ((1,), (3,)), ((2,), (0,)), ((3,), (1,)), ((0,), (2,))]
    assert all(schedule.peers(r).in_weights == (0.5,) and schedule.peers(r).self_weight == 0.5 for r in range(4))


def test_ring_with_p_peers_sends_to_the_next_p_with_weight_one_over_p_plus_one():
    peers = directed_ring(8, peers=3).peers(6)
    assert peers.out_peers == (0, 1, 7)
    assert peers.in_peers == (3, 4, 5)
    assert peers.in_weights == (0.25,) * 3 and peers.self_weight == 0.25


@PROPERTY
@given(name=st.sampled_from(sorted(TOPOLOGIES)), n=st.integers(2, 20), seed=st.integers(0, 10_000),
       step=st.integers(0, 50))
def test_peers_are_read_from_the_mixing_matrix(name, n, seed, step):
    schedule = build_or_skip(name, n, seed)
    W = schedule.mixing_matrix(step)
    for rank in range(schedule.n):
        peers = schedule.peers(rank, step)
        others = np.arange(schedule.n) != rank
        assert peers.self_weight == W[rank, rank]
        assert peers.in_peers == tuple(np.flatnonzero((W[rank] > 0) & others))
        assert peers.in_weights == tuple(W[rank, list(peers.in_peers)])
        assert peers.out_peers == tuple(np.flatnonzero((W[:, rank] > 0) & others))


# ---------------------------------------------------------------------------------------------------- stochasticity


@PROPERTY
@given(name=st.sampled_from(sorted(TOPOLOGIES)), n=st.integers(2, 24), seed=st.integers(0, 10_000))
def test_uniform_weights_are_column_stochastic_and_doubly_on_regular_graphs(name, n, seed):
    schedule = build_or_skip(name, n, seed)
    for k in range(schedule.period):
        kind = stochasticity(schedule.mixing_matrix(k))
        assert kind == "doubly" if name in REGULAR else kind in ("doubly", "column")
    schedule.check("column")


@PROPERTY
@given(name=st.sampled_from(["undirected_ring", "complete", "torus", "star", "random_regular", "erdos_renyi",
                             "bipartite_exponential"]),
       n=st.integers(2, 24), seed=st.integers(0, 10_000))
def test_metropolis_weights_are_symmetric_and_doubly_stochastic(name, n, seed):
    schedule = build_or_skip(name, n, seed, weights="metropolis")
    for k in range(schedule.period):
        W = schedule.mixing_matrix(k)
        assert np.array_equal(W, W.T)
        assert stochasticity(W) == "doubly"
    schedule.check("doubly")


@PROPERTY
@given(n=st.integers(2, 30), peers=st.integers(1, 29))
def test_directed_ring_with_any_peers_is_doubly_stochastic(n, peers):
    assume(peers < n)
    directed_ring(n, peers).check("doubly")


def test_star_with_uniform_weights_is_column_but_not_row_stochastic():
    W = star(6).mixing_matrix()
    assert stochasticity(W) == "column"
    with pytest.raises(ValueError, match=r"^schedule: got .*\(not doubly-stochastic: row 0 .*; accepted: a doubly-"):
        star(6).check("doubly")


def test_bipartite_exponential_pairs_odd_with_even_learners_each_step():
    schedule = bipartite_exponential(16)
    for k in range(schedule.period):
        edges = schedule.edges(k)
        assert len(edges) == 16  # a perfect matching, both directions
        assert np.all(edges[:, 0] % 2 != edges[:, 1] % 2)
        assert np.array_equal(np.sort(edges[:, 0]), np.arange(16))


def test_torus_is_four_regular():
    schedule = torus(12, shape=(3, 4))
    assert np.all(np.bincount(schedule.edges()[:, 1]) == 4)
    assert np.allclose(schedule.self_weights(), 0.2)


def test_complete_graph_with_uniform_weights_is_the_averaging_matrix():
    assert np.allclose(complete(5).mixing_matrix(), 1 / 5)
    assert complete(5).rho() < 1e-12


# ---------------------------------------------------------------------------------------------------- spectra


def test_spectral_gap_and_eigenvalues_of_the_directed_ring():
    W = build_topology("ring", 8).mixing_matrix()
    assert spectral_gap(W) == pytest.approx(1 - math.cos(math.pi / 8))
    lam = eigenvalues(W)
    assert lam[0] == pytest.approx(1)
    assert abs(lam[1]) == pytest.approx(math.cos(math.pi / 8))  # |(1 + e^{2πi/8})/2|


def test_a_single_step_may_not_contract_although_the_period_is_exact():
    schedule = one_peer_exponential(8)
    assert rho(schedule.mixing_matrix(1)) == pytest.approx(1)  # +2 splits the ring into two cycles
    assert schedule.rho() < 1e-9


# ---------------------------------------------------------------------------------------------------- user graphs


def test_from_networkx_undirected_cycle_matches_undirected_ring():
    assert np.allclose(from_networkx(nx.cycle_graph(7)).mixing_matrix(), undirected_ring(7).mixing_matrix())


def test_from_networkx_keeps_given_weights():
    g = nx.DiGraph()
    g.add_weighted_edges_from([(0, 0, 0.75), (1, 1, 0.5), (0, 1, 0.5), (1, 0, 0.25)])
    W = from_networkx(g, weights="given").mixing_matrix()
    assert np.array_equal(W, [[0.75, 0.25], [0.5, 0.5]])


def test_from_adjacency_reads_a_mixing_matrix_in_the_receiver_sender_convention():
    W = build_topology("ring", 5, peers=2).mixing_matrix()
    schedule = from_adjacency(W)
    assert np.array_equal(schedule.mixing_matrix(), W)
    assert schedule.peers(0).in_peers == (3, 4)  # W[0, j] > 0: 0 receives from 3 and 4


def test_from_adjacency_of_a_zero_one_matrix_with_uniform_weights():
    A = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]])  # A[i, j] = 1: j sends to i
    assert np.array_equal(from_adjacency(A, weights="uniform").peers(0).in_peers, (1,))


def test_mixing_matrix_of_a_graph_uses_edge_j_to_i_for_entry_i_j():
    g = assign_weights(nx.DiGraph([(0, 1), (1, 2), (2, 0)]))
    W = mixing_matrix(g)
    assert W[1, 0] == W[2, 1] == W[0, 2] == 0.5 and W[0, 1] == 0


def test_graphs_of_a_schedule_are_read_only():
    with pytest.raises(nx.NetworkXError):
        build_topology("ring", 4).graph(0).add_edge(0, 2)


# ---------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
@pytest.mark.parametrize("n", [0, -3])
def test_fewer_than_one_learner_is_rejected(name, n):
    with pytest.raises(ValueError, match=rf"^n: got {n}; accepted: an int >= 1"):
        build_topology(name, n)


@pytest.mark.parametrize(("n", "peers"), [(4, 4), (4, 7), (1, 1), (4, 0)])
def test_peers_must_be_fewer_than_n(n, peers):
    with pytest.raises(ValueError, match=rf"^peers: got {peers}.*; accepted: an int in \[1, n − 1\] = \[1, {n - 1}\]"):
        build_topology("ring", n, peers=peers)


def test_a_schedule_that_is_not_strongly_connected_is_rejected():
    g = assign_weights(nx.DiGraph([(0, 1), (1, 0), (2, 3), (3, 2)]))
    with pytest.raises(ValueError, match=r"^schedule: got .*not strongly connected .* 2 strongly connected components"
                                         r".*; accepted: a strongly connected graph"):
        Schedule([g], name="two islands")


def test_strong_connectivity_is_checked_jointly_over_the_period():
    steps = [one_peer_exponential(8).graph(k) for k in range(3)]
    Schedule(steps)  # +1, +2, +4 together connect everyone
    with pytest.raises(ValueError, match=r"^schedule: .*not strongly connected jointly over its period of 2 steps"):
        Schedule(steps[1:])  # +2 and +4 keep odd and even learners apart


def test_a_directed_path_is_not_strongly_connected():
    with pytest.raises(ValueError, match=r"^schedule: .*not strongly connected.*; accepted: a strongly connected"):
        from_networkx(nx.DiGraph([(0, 1), (1, 2)]))


def test_non_stochastic_user_weights_are_rejected():
    with pytest.raises(ValueError, match=r"^schedule: .*neither row- nor column-stochastic: row 0 .* sums to 3.*; "
                                         r"accepted: a row- or column-stochastic W"):
        from_adjacency(np.ones((3, 3)))


def test_negative_user_weights_are_rejected():
    with pytest.raises(ValueError, match=r"^schedule: .*\(edge \(1, 0\) has weight -0.5\); accepted: a finite, "
                                         r"non-negative 'weight' on every edge"):
        from_adjacency(np.array([[1.5, -0.5], [0.5, 0.5]]))


def test_a_missing_self_loop_is_rejected():
    with pytest.raises(ValueError, match=r"^schedule: .*node 0 has no self-loop.*; accepted: a positive self-loop"):
        from_adjacency(np.array([[0.0, 1.0], [1.0, 0.0]]))


def test_a_graph_with_missing_nodes_is_rejected():
    g = assign_weights(nx.DiGraph([(0, 1), (1, 3), (3, 0)]))
    with pytest.raises(ValueError, match=r"^schedule: .*\(missing nodes \[2\]\); accepted: a graph on the nodes 0..3$"):
        Schedule([g])
    with pytest.raises(ValueError, match=r"^graph: .*\(missing nodes \[2\]\); accepted: a graph on the nodes 0..3$"):
        from_networkx(nx.Graph([(0, 1), (1, 3), (3, 0)]))


def test_graphs_of_different_sizes_in_one_schedule_are_rejected():
    with pytest.raises(ValueError, match=r"^schedule: .*has 4 nodes but step 0 has 3\); accepted: graphs on the same"):
        Schedule([undirected_ring(3).graph(), undirected_ring(4).graph()])


def test_an_unknown_topology_lists_the_accepted_names():
    with pytest.raises(ValueError, match="^topology: got 'hypercube'; accepted: 'ring', 'undirected_ring'"):
        build_topology("hypercube", 8)


def test_unknown_weights_rule_lists_the_accepted_rules():
    with pytest.raises(ValueError, match="^weights: got 'equal'; accepted: 'uniform', 'metropolis', 'given'$"):
        build_topology("ring", 8, weights="equal")


def test_metropolis_weights_need_an_undirected_graph():
    with pytest.raises(ValueError, match=r"^weights: got 'metropolis' \('metropolis' needs an undirected .* edge "
                                         r"\(0, 1\) has no reverse .*; accepted: 'uniform' for a directed graph"):
        build_topology("ring", 4, weights="metropolis")


def test_options_a_topology_does_not_take_are_rejected():
    with pytest.raises(ValueError, match=r"^peers: got 2; accepted: 1 with topology 'exponential' \(only ring, "
                                         r"undirected_ring take peers\)"):
        build_topology("exponential", 8, peers=2)
    with pytest.raises(ValueError, match=r"^options: got \['degree'\] \(not options of topology 'torus'\); "
                                         r"accepted: options of topology 'torus': shape, weights"):
        build_topology("torus", 8, degree=3)


def test_bipartite_exponential_needs_even_n():
    with pytest.raises(ValueError, match=r"^n: got 7 \(bipartite_exponential pairs odd learners with even ones\); "
                                         r"accepted: an even int"):
        bipartite_exponential(7)


def test_torus_shape_must_multiply_to_n():
    with pytest.raises(ValueError, match=r"^shape: got \(3, 5\); accepted: \(rows, cols\) with rows × cols = n = 12"):
        torus(12, shape=(3, 5))


def test_check_stochastic_names_the_offending_column():
    W = np.array([[0.5, 0.5], [0.25, 0.75]])
    check_stochastic(W, "row")
    with pytest.raises(ValueError, match=r"^W: got an array of shape \(2, 2\) \(not column-stochastic: column 0 .* "
                                         r"sums to 0.75\); accepted: a column-stochastic W"):
        check_stochastic(W, "column")


def test_rank_out_of_range_is_rejected():
    with pytest.raises(ValueError, match=r"^rank: got 4 .*; accepted: an int in \[0, 3\]"):
        build_topology("ring", 4).peers(4)


def test_links_of_weight_zero_are_not_peers():
    g = nx.DiGraph()
    g.add_weighted_edges_from([(0, 0, 0.5), (1, 1, 0.5), (0, 1, 0.5), (1, 0, 0.5), (2, 2, 1.0), (2, 0, 0.0)])
    g.add_weighted_edges_from([(0, 2, 0.0), (1, 2, 0.0)])
    with pytest.raises(ValueError, match="^schedule: .*not strongly connected"):  # 2 is linked only with weight 0
        from_networkx(g, weights="given")
