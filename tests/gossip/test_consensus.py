"""ε-ball diagnostics (galakit.gossip.consensus): distances, the bound, predicted steps."""

import math
from collections import OrderedDict

import numpy as np
import pytest
import torch

from galakit.gossip.consensus import (
    consensus_error,
    distance_to_average,
    epsilon_bound,
    max_pairwise_distance,
    predicted_steps,
    stack_parameters,
)
from galakit.gossip.simulate import simulate_sync
from galakit.gossip.topology import build_topology, rho

X = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 3.0]])  # average (1, 1)


def test_distance_to_average_of_a_matrix():
    assert np.allclose(distance_to_average(X), [math.sqrt(2), math.sqrt(2), 2.0])
    assert consensus_error(X) == pytest.approx(math.sqrt(8))


def test_list_of_tensors_and_state_dicts_give_the_same_distances():
    tensors = [torch.tensor(row, dtype=torch.float64) for row in X]
    state_dicts = [OrderedDict(w=torch.tensor([[a]]), steps=torch.tensor(7), b=torch.tensor([b])) for a, b in X]
    assert np.allclose(distance_to_average(tensors), distance_to_average(X))
    assert np.allclose(distance_to_average(state_dicts), distance_to_average(X))


def test_state_dicts_are_flattened_in_key_order_skipping_integer_buffers():
    sd = OrderedDict(b=torch.tensor([1.0, 2.0]), count=torch.tensor(3), a=torch.tensor([[4.0], [5.0]]))
    assert stack_parameters([sd, sd]).tolist() == [[1.0, 2.0, 4.0, 5.0]] * 2


def test_state_dicts_with_different_keys_are_rejected():
    with pytest.raises(ValueError, match=r"^params: got state_dict 1 \(its floating-point keys differ from "
                                         r"state_dict 0's: missing \['b'\], extra \[\]\); accepted: state_dicts"):
        stack_parameters([{"a": torch.zeros(1), "b": torch.zeros(1)}, {"a": torch.zeros(1)}])


def test_learners_with_different_sizes_are_rejected():
    with pytest.raises(ValueError, match=r"^params: got 2 learners with \[2, 3\] parameters; accepted: the same "
                                         r"number of parameters"):
        distance_to_average([np.zeros(2), np.zeros(3)])


def test_empty_params_are_rejected():
    with pytest.raises(ValueError, match=r"^params: got \[\]; accepted: one entry per learner"):
        distance_to_average([])


def test_distance_to_a_given_center():
    assert np.allclose(distance_to_average(X, center=np.zeros(2)), [0.0, 2.0, math.sqrt(10)])


def test_max_pairwise_distance_matches_brute_force_across_chunks():
    x = np.random.default_rng(0).normal(size=(10, 4))
    brute = max(np.linalg.norm(a - b) for a in x for b in x)
    assert max_pairwise_distance(x, chunk_size=3) == pytest.approx(brute, rel=1e-12)


def test_max_pairwise_distance_stays_accurate_near_consensus():
    x = 1e4 + np.array([[0.0, 0.0], [3e-9, 4e-9]])  # a Gram-matrix formula would return noise here
    assert max_pairwise_distance(x) == pytest.approx(5e-9, rel=1e-3)


def test_epsilon_bound_at_step_zero_is_the_initial_error():
    assert epsilon_bound(0.9, 0.1, 1.0, 16, e0=3.0, k=0) == 3.0


def test_epsilon_bound_sup_is_e0_plus_alpha_rho_sqrt_n_g_over_one_minus_rho():
    rho, alpha, g, n = 0.9493, 0.01, 1.0, 16
    assert epsilon_bound(rho, alpha, g, n) == pytest.approx(alpha * rho * 4 * g / (1 - rho))  # note §6.9: 0.748
    assert epsilon_bound(rho, alpha, g, n) == pytest.approx(0.748, abs=1e-3)
    assert epsilon_bound(rho, alpha, g, n, e0=2.0) == pytest.approx(2.0 + 0.748, abs=1e-3)


def test_epsilon_bound_at_step_k_increases_to_the_sup():
    bounds = [epsilon_bound(0.8, 0.1, 1.0, 4, k=k) for k in range(200)]
    assert np.all(np.diff(bounds) >= 0)
    assert bounds[-1] == pytest.approx(epsilon_bound(0.8, 0.1, 1.0, 4))


def test_epsilon_bound_over_windows_of_a_time_varying_schedule():
    # σ = 0 (exact after τ = 4 steps): a window adds at most τ α √n G, plus r α √n G inside the next one.
    assert epsilon_bound(0.0, 0.1, 1.0, 16, window=4, k=6) == pytest.approx(0.4 * (4 + 2))
    assert epsilon_bound(0.0, 0.1, 1.0, 16, window=4) == pytest.approx(0.4 * (4 + 3))


def test_epsilon_bound_is_infinite_without_contraction():
    assert epsilon_bound(1.0, 0.1, 1.0, 4) == math.inf
    assert epsilon_bound(1.0, 0.0, 1.0, 4, e0=2.0) == 2.0
    # ρ of two disconnected blocks is 1 computed as 1 − 1e-16: no bound, not a huge finite one
    blocks = np.kron(np.eye(2), np.full((5, 5), 0.2))
    assert epsilon_bound(rho(blocks), 0.01, 1.0, 10) == math.inf

@pytest.mark.parametrize("bad", [{"rho": -0.1}, {"alpha": -1.0}, {"grad_bound": float("nan")}, {"e0": -1.0}])
def test_epsilon_bound_rejects_negative_inputs(bad):
    args = {"rho": 0.5, "alpha": 0.1, "grad_bound": 1.0, "n": 4} | bad
    with pytest.raises(ValueError, match=rf"^{next(iter(bad))}: got .*; accepted: a number >= 0$"):
        epsilon_bound(**args)


def test_predicted_steps():
    assert predicted_steps(0.5, 0.25) == 2  # exactly, despite round-off in log(0.25)/log(0.5)
    assert predicted_steps(0.5, 0.2) == 3
    assert predicted_steps(0.0, 1e-9, window=4) == 4
    assert predicted_steps(1.0, 0.1) == math.inf
    assert predicted_steps(0.9, 1.0) == 0


@pytest.mark.parametrize("n", [4, 8, 16])
def test_gossip_reaches_the_predicted_error_within_the_predicted_steps(n):
    schedule = build_topology("ring", n)
    x0 = np.random.default_rng(n).normal(size=(n, 3))
    k = predicted_steps(schedule.rho(), 1e-6)
    error = simulate_sync(schedule, x0, k).consensus_error
    assert error[k] <= 1e-6 * error[0]


# ---------------------------------------------------------------- the live bound of a run (galakit.runtime.diagnostics)


def board_with(params: torch.Tensor, step_norm: float):
    """A diagnostics board on which every learner has published row i of ``params`` (n, D) at update 10."""
    import multiprocessing

    from galakit.runtime.diagnostics import DiagnosticsBoard

    board = DiagnosticsBoard(params.shape[0], params.shape[1], multiprocessing.get_context("spawn"))
    for rank, theta in enumerate(params):
        board.publish(rank, 10, theta, step_norm)
    return board


def test_live_bound_of_a_time_varying_schedule_counts_its_period_not_zero(tmp_path):
    from galakit.config import Config
    from galakit.runtime.diagnostics import ConsensusRecorder, coupling_contraction

    cfg = Config(algo="gala", num_learners=8, topology="one_peer_exponential", tensorboard=False)
    rho, period = coupling_contraction(cfg)
    assert rho == pytest.approx(0.0, abs=1e-12) and period == 3   # exact after 3 steps: ρ = 0 over the period
    recorder = ConsensusRecorder(rho, tmp_path, tensorboard=False, period=period)
    reading = recorder.record(board_with(torch.zeros(8, 5), step_norm=0.1))
    # e0 + α√n G (τ / (1 − ρ) + τ − 1) = 0.1 · √8 · (3 + 2) = 1.414 (a window of 1 step would give ρ/(1 − ρ) = 0)
    assert reading["epsilon_bound"] == pytest.approx(0.1 * math.sqrt(8) * 5)
    assert reading["epsilon_bound"] == pytest.approx(1.414, abs=1e-3)


def test_live_bound_includes_the_initial_spread_of_learners_started_apart(tmp_path):
    from galakit.config import Config
    from galakit.rl.models import initial_model
    from galakit.runtime.diagnostics import ConsensusRecorder

    cfg = Config(algo="gala", num_learners=4, identical_init=False, tensorboard=False, hidden_sizes=(8,))
    recorder = ConsensusRecorder.for_run(cfg, tmp_path)
    initial = [torch.nn.utils.parameters_to_vector(initial_model(cfg, r, (4,), 2).parameters()) for r in range(4)]
    assert recorder.e0 == pytest.approx(consensus_error(initial)) and recorder.e0 > 1  # CartPole: 4 obs, 2 actions
    reading = recorder.record(board_with(torch.stack(initial).detach(), step_norm=0.01))
    rho = build_topology("ring", 4).rho()
    assert reading["epsilon_bound"] == pytest.approx(recorder.e0 + 0.01 * 2 * rho / (1 - rho))
    assert math.sqrt(sum(d**2 for d in reading["distance_to_average"])) <= reading["epsilon_bound"]
    assert ConsensusRecorder.for_run(cfg.replace(identical_init=True), tmp_path).e0 == 0.0


def test_a_reading_waits_for_the_slowest_learner_so_it_compares_one_update(tmp_path):
    from galakit.runtime.diagnostics import ConsensusRecorder

    recorder = ConsensusRecorder(0.5, tmp_path, tensorboard=False)
    board = board_with(torch.zeros(2, 3), step_norm=0.1)  # both at update 10
    assert recorder.record(board)["updates"] == [10, 10]
    board.publish(0, 20, torch.ones(3), 0.1)  # the leader is on: learner 1's θ is still update 10's
    assert recorder.record(board) is None
    board.publish(1, 20, torch.ones(3), 0.1)
    reading = recorder.record(board)
    assert reading["updates"] == [20, 20] and reading["update_min"] == reading["update_max"] == 20
    assert reading["max_pairwise_distance"] == 0.0
    board.publish(0, 30, torch.zeros(3), 0.1)
    assert recorder.record(board) is None and recorder.record(board, final=True)["updates"] == [30, 20]
