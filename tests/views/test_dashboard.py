"""The training dashboard: it draws exactly what a run recorded (live or reloaded), marks readings of parameters
from different updates, stops a started run from its button, and without widgets prints lines and a figure."""

import re
import threading
import time

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from support import tiny_config  # noqa: E402

import galakit  # noqa: E402
from galakit.io.observers import RunInfo  # noqa: E402
from galakit.views.charts import Curve, Panel, panel_svg  # noqa: E402
from galakit.views.dashboard import Dashboard, RunRecord, dashboard_panels, draw_dashboard  # noqa: E402
from galakit.views.plots import smoothed_returns  # noqa: E402


def curves(fig):
    """{panel title: [(x, y) of each line]} of a dashboard figure."""
    return {ax.get_title(): [(np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float))
                             for line in ax.lines if len(line.get_xdata())]
            for ax in fig.axes}


def panel(fig, prefix):
    return next(lines for title, lines in curves(fig).items() if title.startswith(prefix))


@pytest.fixture(scope="module")
def gala_run(tmp_path_factory):
    """A finished 2-learner GALA CartPole run with ε-ball readings."""
    cfg = tiny_config(tmp_path_factory.mktemp("dash"), algo="gala", num_learners=2, total_timesteps=2 * 5 * 400,
                      diag_interval=20, log_interval=20)
    return galakit.train(cfg)


@pytest.mark.processes
def test_a_reloaded_run_reproduces_its_curves(gala_run):
    dash = Dashboard(gala_run.run_dir, window=5, live=False)
    fig = dash.figure()
    reloaded = galakit.load_run(gala_run.run_dir)
    returns = panel(fig, "raw return")
    assert len(returns) == 2
    for rank, (x, y) in enumerate(returns):
        games = [e for e in reloaded.episodes if e.rank == rank]
        steps, mean = smoothed_returns([e.global_step for e in games], [e.ret for e in games], 5)
        np.testing.assert_array_equal(x, steps)
        np.testing.assert_allclose(y, mean)
    for rank, (x, y) in enumerate(panel(fig, "steps/s")):
        rows = [r for r in reloaded.progress if r["rank"] == rank]
        np.testing.assert_array_equal(x, [r["global_step"] for r in rows])
        np.testing.assert_array_equal(y, [r["SPS"] for r in rows])
    distances = panel(fig, "distance to the average")
    readings = reloaded.consensus
    assert readings, "the run took ε-ball readings"
    for i in range(2):  # one line per learner, then max pairwise, then (maybe) the skewed points and the bound
        np.testing.assert_array_equal(distances[i][0], [r["update_max"] for r in readings])
        np.testing.assert_array_equal(distances[i][1], [r["distance_to_average"][i] for r in readings])
    ax = next(ax for ax in fig.axes if ax.get_title().startswith("distance to the average"))
    bound = [line for line in ax.lines if line.get_label().startswith("ε bound")]
    if all(r["epsilon_bound"] for r in readings):
        np.testing.assert_array_equal(bound[0].get_ydata(), [r["epsilon_bound"] for r in readings])
    else:  # 2 learners on a ring average exactly (ρ = 0): the bound is 0, not drawn on a log scale
        assert not bound
    assert panel(fig, "gossip counters"), "a GALA run has gossip counters"


@pytest.mark.processes
def test_the_live_dashboard_holds_what_the_run_returned(gala_run, tmp_path):
    cfg = gala_run.config.replace(run_dir=str(tmp_path / "again"))
    dash = Dashboard(live=False, log_every=3600)
    metrics = galakit.train(cfg, observers=[dash])
    assert sorted(dash.record.ranks) == [0, 1]
    assert sum(len(v) for v in dash.record.rows.values()) == len(metrics.progress)
    assert sum(len(v) for v in dash.record.episodes.values()) == len(metrics.episodes)
    assert len(dash.record.readings) == len(metrics.consensus)
    assert dash.state == "finished"
    assert (tmp_path / "again" / "dashboard.png").stat().st_size > 10_000  # a script gets the figure saved


def test_readings_of_parameters_from_different_updates_are_marked_and_the_bound_drawn():
    record = RunRecord()
    for t, (lo, hi, d) in enumerate([(10, 10, 0.01), (19, 20, 0.5), (30, 30, 0.01), (39, 40, 0.4)]):
        record.add_reading({"time": float(t), "update_min": lo, "update_max": hi, "distance_to_average": [d, d],
                            "max_pairwise_distance": 2 * d, "epsilon_bound": 0.9 + t, "updates": [lo, hi]})
    fig = draw_dashboard(record, None)
    lines = {line.get_label(): line for ax in fig.axes for line in ax.lines}
    np.testing.assert_array_equal(lines["θ_i from different updates"].get_xdata(), [20, 40])
    np.testing.assert_array_equal(lines["ε bound (synchronous gossip)"].get_ydata(), [0.9, 1.9, 2.9, 3.9])


def info_of(cfg, n=2):
    return RunInfo(cfg.replace(num_learners=n, algo="gala"), "runs/x", n)


def test_redraws_at_a_bounded_rate_and_never_blocks_the_caller(tmp_path):
    dash = Dashboard(live=True, min_interval=0.2, budget=0.5)
    dash._display = lambda: None  # no front end here: the widgets exist, nothing is shown
    dash.on_start(info_of(tiny_config(tmp_path, total_timesteps=10_000)))
    draws = []
    original = dash._draw
    dash._draw = lambda: (draws.append(time.monotonic()), original())
    started = time.perf_counter()
    for update in range(2000):  # far faster than any redraw
        dash.on_update({"rank": update % 2, "update": update, "global_step": update * 10, "SPS": 100.0,
                        "episodic_return_mean": 1.0})
    feeding = time.perf_counter() - started
    time.sleep(1.2)
    dash.on_end(None)
    assert feeding < 0.5, f"2000 events took {feeding:.2f} s: the observer must only record them"
    gaps = np.diff(draws)
    assert len(draws) <= 8 and (gaps >= 0.19).all(), draws
    assert 'class="galakit-series" data-points=' in dash._image.value  # the live view: SVG charts


def test_stop_button_stops_a_started_run_and_a_blocking_run_says_to_interrupt(tmp_path):
    cfg = tiny_config(tmp_path)
    stopped = threading.Event()
    dash = Dashboard(live=True)
    dash._display = lambda: None
    dash.on_start(RunInfo(cfg, "runs/x", 1, stop=stopped.set))
    assert not dash._stop_button.disabled
    dash._stop_button.click()
    assert stopped.wait(5)
    blocking = Dashboard(live=True)
    blocking._display = lambda: None
    blocking.on_start(RunInfo(cfg, "runs/x", 1))
    assert blocking._stop_button.disabled
    assert "interrupt the kernel" in blocking._status.value
    dash.on_end(None), blocking.on_end(None)


@pytest.mark.processes
def test_a_started_run_stops_from_the_dashboard_and_its_learners_are_gone(tmp_path):
    cfg = tiny_config(tmp_path, algo="gala", num_learners=2, total_timesteps=10**7, log_interval=5)
    dash = Dashboard(live=True, min_interval=0.2)
    dash._display = lambda: None
    run = galakit.start(cfg, observers=[dash])
    try:
        deadline = time.monotonic() + 60
        while len(dash.record.rows.get(1, [])) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(dash.record.rows.get(1, [])) >= 3, "the dashboard got rows from both learners"
        pids = run.pids
        dash._stop_button.click()
        run._monitor.join(timeout=20)
        assert run.done and dash.state == "stopped before the end", dash.state
        assert all(p.exitcode == 0 for p in run._procs), [p.exitcode for p in run._procs]
        assert len(pids) == 2
    finally:
        run.stop()


@pytest.mark.processes
def test_attached_to_a_run_it_has_the_rows_from_before(tmp_path):
    cfg = tiny_config(tmp_path, algo="gala", num_learners=2, total_timesteps=10**7, log_interval=5)
    with galakit.start(cfg) as run:
        deadline = time.monotonic() + 60
        while len(run.metrics.progress) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        dash = Dashboard(live=False, log_every=3600)
        dash.show(run)
        before = sum(len(v) for v in dash.record.rows.values())
        assert before >= 4
        time.sleep(1.0)
        run.stop()
    rows = sum(len(v) for v in dash.record.rows.values())
    assert rows == len(run.metrics.progress) > before


def test_bad_values_name_the_field():
    with pytest.raises(ValueError, match="source: got int; accepted: a galakit Run, Metrics, or a run directory"):
        Dashboard(3)
    with pytest.raises(ValueError, match="window: got 0; accepted: an int >= 1"):
        Dashboard(window=0)
    with pytest.raises(ValueError, match=r"budget: got 2"):
        Dashboard(budget=2)
    with pytest.raises(ValueError, match="path"):
        Dashboard("no/such/run")


def test_the_live_svg_and_the_figure_draw_the_same_points(gala_run):
    record = RunRecord()
    record.add_metrics(gala_run)
    panels = dashboard_panels(record, 2, window=5, points=10**6)
    fig = draw_dashboard(record, None, window=5)
    for panel, ax in zip(panels, fig.axes, strict=True):
        svg = panel_svg(panel)
        counts = [int(c) for c in re.findall(r'class="galakit-series" data-points="(\d+)"', svg)]
        assert counts == [len(c.x) for c in panel.drawn()], panel.title
        drawn = [len(line.get_xdata()) for line in ax.lines if len(line.get_xdata())]
        assert drawn == counts, panel.title  # legends' empty handles aside, the same curves
    assert sum(counts) > 0


def test_an_svg_chart_has_log_ticks_and_says_when_it_is_empty():
    log = panel_svg(Panel("d", [Curve(np.array([0, 1, 2]), np.array([1e-3, 1e-1, 10.0]))], log_y=True))
    assert ">1e-03<" in log and ">10<" in log
    assert "no data yet" in panel_svg(Panel("empty"))
    assert "no data yet" in panel_svg(Panel("only zeros", [Curve(np.arange(3), np.zeros(3))], log_y=True))


@pytest.mark.processes
def test_under_nbconvert_it_prints_lines_and_shows_the_figure_at_the_end(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    cfg = tiny_config(tmp_path, total_timesteps=2 * 5 * 200, log_interval=20)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import galakit\nfrom galakit.views import Dashboard\n"
        f"galakit.train(galakit.{cfg!r}, observers=[Dashboard(log_every=0)]);")])
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()  # a kernel, no Jupyter server
    outputs = notebook.cells[0].outputs
    text = "".join(o.get("text", "") for o in outputs)
    assert "dashboard | step" in text
    assert any("image/png" in o.get("data", {}) for o in outputs), "the figure, at the end"
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
