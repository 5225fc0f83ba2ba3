"""The gossip explorer (galakit.views.explorer) without a browser: each control changes the data drawn, the step
slider only redraws, and the pictures, static copies and errors are what a student would see."""

import matplotlib

matplotlib.use("Agg")

import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from galakit.gossip.topology import build_topology, one_peer_exponential  # noqa: E402
from galakit.views import explorer as explorer_module  # noqa: E402
from galakit.views.explorer import GIVEN, Settings, draw_graph, explore  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def edge_set(frame) -> set[tuple[int, int]]:
    return {tuple(e) for e in frame.active_edges.tolist()}


@pytest.fixture
def simulations(monkeypatch) -> list[str]:
    """The simulators the explorer calls, counted: one entry per simulation, named by its mode."""
    calls = []
    for mode in ("sync", "async", "push_sum"):
        real = getattr(explorer_module, f"simulate_{mode}")

        def counted(*args, _real=real, _mode=mode, **kwargs):
            calls.append(_mode)
            return _real(*args, **kwargs)

        monkeypatch.setattr(explorer_module, f"simulate_{mode}", counted)
    return calls


def test_one_peer_exponential_on_8_sends_i_to_i_plus_4_at_step_2_and_agrees_exactly_after_3():
    ex = explore(topology="one_peer_exponential", n=8, steps=5)
    assert edge_set(ex.frame(2)) == {(i, (i + 4) % 8) for i in range(8)}
    ex.step.value = 2
    assert edge_set(ex.frame()) == {(i, (i + 4) % 8) for i in range(8)}  # frame() reads the slider
    error = ex.frame().consensus_error
    assert error[0] > 0.1 and error[3] <= 1e-12
    assert ex.frame().rho <= 1e-12 and ex.frame().spectral_gap == pytest.approx(1.0)
    assert np.array_equal(ex.frame(2).mixing_matrix, one_peer_exponential(8).mixing_matrix(2))


def test_n_changes_the_number_of_learners_and_topology_changes_the_graph():
    ex = explore(topology="ring", n=8, steps=4)
    ex.controls["n"].value = 12
    assert ex.frame().values.shape == (12,) and ex.frame().mixing_matrix.shape == (12, 12)
    assert edge_set(ex.frame(0)) == {(i, (i + 1) % 12) for i in range(12)}
    ex.controls["topology"].value = "complete"
    assert len(ex.frame(0).active_edges) == 12 * 11
    assert ex.frame().rho == pytest.approx(0.0, abs=1e-12)


def test_peers_2_ring_has_two_in_edges_per_node_and_peers_is_greyed_out_for_other_topologies():
    ex = explore(topology="ring", n=8, steps=3)
    ex.controls["peers"].value = 2
    assert np.bincount(ex.frame(0).active_edges[:, 1], minlength=8).tolist() == [2] * 8
    assert not ex.controls["peers"].disabled
    ex.controls["topology"].value = "torus"
    assert ex.controls["peers"].disabled
    assert ex.settings.schedule_key[2] == 1  # the torus is built without peers, whatever the slider says


def test_metropolis_weights_change_w_on_a_star():
    ex = explore(topology="star", n=5, steps=3)
    uniform = ex.frame(0).mixing_matrix
    ex.controls["weights"].value = "metropolis"
    metropolis = ex.frame(0).mixing_matrix
    assert not np.allclose(uniform, metropolis)
    assert np.allclose(metropolis, metropolis.T) and np.allclose(metropolis.sum(axis=1), 1)  # doubly stochastic
    assert metropolis[1, 0] == pytest.approx(1 / 5)  # 1 / (1 + max(degree 4, degree 1))


def test_async_with_drops_or_delays_mixes_fewer_messages_than_without():
    ex = explore(topology="ring", n=8, mode="async", max_delay=0, drop_prob=0.0, steps=30, seed=3)
    mixed = int(ex.trace.messages.sum())
    assert mixed == 8 * 30  # no delay, no drop: every message fresh at every step, as synchronous gossip
    ex.controls["drop_prob"].value = 0.5
    dropped = ex.trace.messages.sum()
    ex.controls["drop_prob"].value = 0.0
    ex.controls["max_delay"].value = 3
    delayed = ex.trace.messages.sum()
    assert dropped < mixed and delayed < mixed
    assert len(ex.frame(5).active_edges) == ex.trace.messages[5]  # the red arrows are the messages mixed


def test_sync_freq_0_makes_learners_wait_and_a_larger_one_lets_them_skip():
    ex = explore(topology="ring", n=8, mode="async", max_delay=3, sync_freq=0, steps=30)
    assert ex.trace.blocked.any() and not ex.trace.skipped.any()
    ex.controls["sync_freq"].value = 5
    assert ex.trace.skipped.any()


def test_push_sum_reaches_the_true_average_on_a_star_where_synchronous_gossip_drifts():
    ex = explore(topology="star", n=5, steps=150)
    start = ex.frame(0).values.mean()
    assert abs(ex.frame(150).values - start).max() > 1e-3  # rows normalised: a weighted average
    ex.controls["mode"].value = "push_sum"
    assert ex.trace.mode == "push_sum"
    assert np.allclose(ex.frame(150).values, start, atol=1e-9)


def test_seed_changes_the_initial_values_and_only_the_seed_does():
    ex = explore(steps=3)
    x0 = ex.frame(0).values.copy()
    ex.controls["steps"].value = 4
    assert np.array_equal(ex.frame(0).values, x0)
    ex.controls["seed"].value = 1
    assert not np.allclose(ex.frame(0).values, x0)


def test_async_controls_are_greyed_out_unless_the_mode_is_async():
    ex = explore(steps=3)
    assert all(ex.controls[name].disabled for name in ("max_delay", "drop_prob", "sync_freq"))
    ex.controls["topology"].value = "ring"
    ex.controls["mode"].value = "async"
    assert not any(ex.controls[name].disabled for name in ("max_delay", "drop_prob", "sync_freq"))


def test_the_step_slider_only_redraws_and_a_setting_seen_before_is_not_simulated_again(simulations):
    ex = explore(topology="ring", n=8, steps=6)
    assert simulations == ["sync"]
    for k in (1, 2, 6, 0, 3):
        ex.step.value = k
    assert simulations == ["sync"]
    ex.controls["max_delay"].value = 5  # asynchronous only: synchronous gossip does not read it
    assert simulations == ["sync"]
    ex.controls["n"].value = 9
    ex.controls["n"].value = 8
    ex.controls["mode"].value = "push_sum"
    ex.controls["mode"].value = "sync"
    assert simulations == ["sync", "sync", "push_sum"]


def test_step_slider_and_play_button_share_the_number_of_steps():
    ex = explore(steps=5)
    assert ex.step.max == ex.play.max == 5
    assert {ex._link.source, ex._link.target} == {(ex.play, "value"), (ex.step, "value")}
    ex.step.value = 5
    ex.controls["steps"].value = 3
    assert ex.step.max == ex.play.max == 3 and ex.step.value == 3


def test_the_picture_changes_with_the_step_and_static_copies_are_valid(tmp_path):
    ex = explore(n=8, steps=3)
    first = ex.image.value
    ex.step.value = 1
    assert bytes(first).startswith(PNG_SIGNATURE) and ex.image.value != first
    assert "step k = 1" in ex.readout.value and "ρ = 0" in ex.readout.value and "spectral gap" in ex.readout.value
    path = ex.save_png(tmp_path / "frame.png")
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    page = ex.to_html(tmp_path / "gossip.html")
    assert "<script" in page and "Animation" in page and page.count("data:image/png;base64") == 4
    assert (tmp_path / "gossip.html").read_text() == page


def test_widgets_carry_the_dom_classes_a_browser_test_looks_for():
    ex = explore(steps=2)
    assert "galakit-explorer" in ex.widget._dom_classes
    assert "galakit-explorer-step" in ex.step._dom_classes
    assert "galakit-explorer-view" in ex.image._dom_classes
    assert "galakit-explorer-readout" in ex.readout._dom_classes
    assert "application/vnd.jupyter.widget-view+json" in ex._repr_mimebundle_()


def test_a_schedule_passed_in_is_selected_and_fixes_n():
    schedule = build_topology("undirected_ring", 6, weights="metropolis")
    ex = explore(schedule, steps=4)
    assert ex.controls["topology"].value == GIVEN and ex.schedule is schedule
    assert ex.controls["n"].value == 6 and ex.controls["n"].disabled and ex.controls["weights"].disabled
    assert np.array_equal(ex.frame(0).mixing_matrix, schedule.mixing_matrix())
    ex.controls["topology"].value = "ring"
    ex.controls["n"].value = 10
    ex.controls["topology"].value = GIVEN
    assert ex.controls["n"].value == 6 and ex.schedule is schedule


def test_a_networkx_digraph_passed_in_is_used_with_the_chosen_weights():
    graph = nx.DiGraph([(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (0, 2)])
    ex = explore(graph, steps=3)
    assert ex.schedule.n == 5 and edge_set(ex.frame(0)) == set(graph.edges)
    assert "(yours)" in ex.controls["topology"].options[0][0]
    with pytest.raises(ValueError, match="^n: got 7 "):
        explore(graph, n=7)


def test_n_64_control_changes_complete():
    ex = explore(topology="one_peer_exponential", n=32, steps=10)
    ex.controls["n"].value = 64
    ex.step.value = 6
    assert ex.frame().values.shape == (64,) and ex.frame().consensus_error[6] <= 1e-12  # 64 = 2^6
    ex.controls["topology"].value = "complete"  # 4032 links: drawn as lines
    assert len(ex.frame().active_edges) == 64 * 63 and bytes(ex.image.value).startswith(PNG_SIGNATURE)


def test_a_dense_graph_is_drawn_with_lines_highlighting_the_messages():
    ex = explore(topology="complete", n=20, steps=2)
    ax = Figure().subplots()
    draw_graph(ax, ex.schedule, ex.frame(0))
    active = [c for c in ax.collections if c.get_gid() == "active-edge"]
    assert len(active) == 1 and len(active[0].get_segments()) == 20 * 19


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n": 0}, "^n: got 0; accepted: an int in \\[1, 64\\]"),
    ({"topology": "rnig"}, "^topology: got 'rnig'; accepted: 'ring', "),
    ({"mode": "gossip"}, "^mode: got 'gossip'; accepted: 'sync', 'async', 'push_sum'"),
    ({"drop_prob": 2.0}, "^drop_prob: got 2.0; accepted: a number in \\[0.0, 1.0\\]"),
    ({"topology": "ring", "n": 4, "weights": "metropolis"}, "^weights: got 'metropolis'"),
])
def test_bad_values_raise_the_one_error_format(kwargs, message):
    with pytest.raises(ValueError, match=message):
        explore(**kwargs)


def test_a_graph_of_the_wrong_kind_is_refused():
    with pytest.raises(ValueError, match="^graph_or_schedule: got 3"):
        explore(3)
    with pytest.raises(ValueError, match="^graph_or_schedule: got a Graph with 65 nodes"):
        explore(nx.cycle_graph(65))
    with pytest.raises(ValueError, match="^n: got 0"):
        Settings(n=0)


def test_a_setting_that_cannot_be_simulated_shows_its_error_and_keeps_the_picture():
    ex = explore(topology="one_peer_exponential", n=8, steps=3)
    picture, schedule = ex.image.value, ex.schedule
    ex.controls["mode"].value = "async"  # simulate_async models static graphs only
    assert "schedule: got" in ex.readout.value and "static" in ex.readout.value
    assert ex.image.value == picture and ex.schedule is schedule
    ex.controls["topology"].value = "ring"
    assert "step k = 0" in ex.readout.value and ex.trace.mode == "async"


def test_a_topology_name_may_come_first():
    assert explore("ring", n=5).frame(0).active_edges.tolist() == [[0, 1], [1, 2], [2, 3], [3, 4], [4, 0]]
