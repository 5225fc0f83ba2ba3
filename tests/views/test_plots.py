"""Matplotlib views (galakit.views.plots), drawn off-screen with the Agg backend."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from galakit.gossip.consensus import epsilon_bound  # noqa: E402
from galakit.gossip.simulate import random_delays, simulate_async, simulate_sync  # noqa: E402
from galakit.gossip.topology import build_topology, one_peer_exponential  # noqa: E402
from galakit.views.plots import draw_mixing_matrix, draw_topology, plot_consensus  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def highlighted(ax) -> int:
    return sum(patch.get_gid() == "active-edge" for patch in ax.patches)


@pytest.mark.parametrize("step", [0, 1, 2])
def test_draw_topology_highlights_exactly_the_messages_of_step_k(step):
    schedule = one_peer_exponential(8)
    ax = draw_topology(schedule, step)
    assert highlighted(ax) == len(schedule.edges(step)) == 8
    assert len(ax.patches) == sum(len(schedule.edges(k)) for k in range(3))  # the others drawn in grey
    assert "step" in ax.get_title()


def test_draw_topology_keeps_learners_in_place_across_steps():
    schedule = one_peer_exponential(8)
    positions = [draw_topology(schedule, k).collections[0].get_offsets().tolist() for k in range(3)]
    assert positions[0] == positions[1] == positions[2]


def test_draw_topology_can_highlight_the_edges_an_async_trace_mixed():
    schedule = build_topology("ring", 6)
    trace = simulate_async(schedule, np.zeros((6, 1)), 20, sync_freq=2, delay=random_delays(3, seed=0))
    k = int(np.argmin(trace.messages))
    assert highlighted(draw_topology(schedule, k, active_edges=trace.active_edges[k])) == trace.messages[k] < 6


def test_draw_topology_colours_learners_by_value():
    values = np.linspace(-1, 1, 8)
    ax = draw_topology(one_peer_exponential(8), values=values, vmin=-1, vmax=1)
    assert np.allclose(ax.collections[0].get_array(), values)


def test_draw_mixing_matrix_shows_w_with_its_entries():
    schedule = build_topology("ring", 4)
    ax = draw_mixing_matrix(schedule)
    assert np.array_equal(ax.images[0].get_array(), schedule.mixing_matrix())
    assert len(ax.texts) == np.count_nonzero(schedule.mixing_matrix())
    assert ax.get_xlabel() == "j (sender)" and ax.get_ylabel() == "i (receiver)"


def test_plot_consensus_draws_error_predicted_rate_and_epsilon_bound():
    schedule = build_topology("undirected_ring", 8)
    alpha, g = 0.05, 1.0
    trace = simulate_sync(schedule, np.random.default_rng(0).normal(size=(8, 2)), 40, alpha=alpha, grad_bound=g,
                          seed=0)
    ax = plot_consensus(trace, rho=schedule.rho(), alpha=alpha, grad_bound=g)
    measured, bound, radius = ax.lines
    assert np.allclose(measured.get_ydata(), trace.consensus_error)
    e0 = trace.consensus_error[0]
    assert np.allclose(bound.get_ydata(), [epsilon_bound(schedule.rho(), alpha, g, 8, e0=e0, k=k) for k in range(41)])
    assert radius.get_ydata()[0] == pytest.approx(epsilon_bound(schedule.rho(), alpha, g, 8, e0=e0))
    assert ax.get_yscale() == "log"


def test_plot_consensus_without_bounds_draws_only_the_measurement():
    trace = simulate_sync(one_peer_exponential(8), np.arange(8.0), 6)
    ax = plot_consensus(trace, pairwise=True)
    assert len(ax.lines) == 2
    assert np.all(ax.lines[0].get_ydata() > 0)  # exact zeros are lifted to machine precision for the log axis
