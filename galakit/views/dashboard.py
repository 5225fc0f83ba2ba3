"""The live training dashboard: an observer that draws a run while it goes, in JupyterLab, and a figure anywhere.

    dash = Dashboard()                                # shows itself in the cell when the run starts
    run = galakit.start(cfg, observers=[dash])        # the cell is free: the Stop button stops the run
    Dashboard(run)                                    # or attach one to a run that is going
    Dashboard("runs/<run_name>")                      # or open a finished run (through galakit.load_run)

Six panels, one colour per learner: raw returns (mean of ``window`` games), steps/s, value loss and entropy,
gossip counters (messages mixed, mixes skipped, waits), staleness (the age of the messages mixed, in their
senders' updates), and each learner's distance ‖θ_i − θ̄‖ to the learners' average next to the run's ε bound
(``galakit.runtime.diagnostics``).

It never makes a learner wait: events are appended to a record under a lock, and a thread of its own redraws the
view when something new came, at most once every ``min_interval`` seconds and so that drawing takes at most
``budget`` of one core (a draw of 20 ms at 2 % waits 1 s before the next). The learners train on the same cores, so
the live view is SVG, written in ~10-20 ms and drawn by the browser; matplotlib (~0.3 s here) draws the same panels
(``dashboard_panels``) for ``figure()``, ``save_png`` and the end of a run without a widget front end (a script,
the CLI, nbconvert), which also gets a line every ``log_every`` seconds.
"""

from __future__ import annotations

import html
import io
import os
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from galakit.io.metrics import Metrics
from galakit.io.observers import Observer, RunInfo
from galakit.validation import check_float, check_int
from galakit.views.charts import Curve, Panel, draw_panel, panel_svg
from galakit.views.plots import consensus_panel, learner_color, smoothed_returns

STEPS = "steps of each learner"
GOSSIP_COUNTERS = {"gossip_mixed_total": "-", "gossip_skipped_total": "--", "gossip_waits_total": ":"}
MAX_POINTS = 1000  # rows per line in a figure (1000 pixels wide at most)
SVG_POINTS = 300  # rows per line in the live view (charts 320 pixels wide)
LOSSES = {"value_loss": "-", "entropy": ":"}  # the policy loss changes sign: not on a log scale


class RunRecord:
    """What a dashboard has seen of a run, safe to fill from the supervisor's thread while another draws it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.episodes: dict[int, list[tuple[int, float]]] = defaultdict(list)  # rank → [(global step, return)]
        self.rows: dict[int, list[dict[str, Any]]] = defaultdict(list)          # rank → progress rows
        self.readings: list[dict[str, Any]] = []                                # ε-ball readings, oldest first
        self.version = 0  # bumped by every new event: the drawing thread redraws when it changed

    def add_episode(self, episode) -> None:
        self._add(self.episodes[episode.rank], (episode.global_step, episode.ret))

    def add_row(self, row: dict[str, Any]) -> None:
        self._add(self.rows[row.get("rank", 0)], dict(row))

    def add_reading(self, reading: dict[str, Any]) -> None:
        self._add(self.readings, dict(reading))

    def add_metrics(self, metrics: Metrics) -> None:
        for episode in metrics.episodes:
            self.add_episode(episode)
        for row in metrics.progress:
            self.add_row(row)
        for reading in metrics.consensus:
            self.add_reading(reading)

    def _add(self, into: list, item: Any) -> None:
        with self.lock:
            into.append(item)
            self.version += 1

    def snapshot(self) -> RunRecord:
        """A copy to draw from while events keep coming."""
        copy = RunRecord()
        with self.lock:
            copy.episodes = {r: list(v) for r, v in self.episodes.items()}
            copy.rows = {r: list(v) for r, v in self.rows.items()}
            copy.readings = list(self.readings)
            copy.version = self.version
        return copy

    @property
    def ranks(self) -> list[int]:
        return sorted(set(self.episodes) | set(self.rows))

    def series(self, rank: int, key: str, points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
        """(global steps, values) of ``key`` in learner ``rank``'s progress rows that have it: every row, or every
        k-th (and the last) when there are more than ``points``, so that a long run draws as fast as a short one."""
        rows = [r for r in self.rows.get(rank, []) if r.get(key) is not None]
        if len(rows) > points:
            rows = rows[::-(-len(rows) // points)] + rows[-1:]
        return (np.array([r["global_step"] for r in rows], dtype=float),
                np.array([r[key] for r in rows], dtype=float))

    def newest_step(self) -> int:
        """The run's steps so far: the sum of each learner's newest global step."""
        return sum(rows[-1]["global_step"] for rows in self.rows.values() if rows)


def dashboard_panels(record: RunRecord, n: int, window: int = 20, points: int = MAX_POINTS) -> list[Panel]:
    """The six panels of ``record`` (n learners), one colour per learner: what both views draw; each progress
    curve keeps at most ``points`` rows (``RunRecord.series``)."""
    returns = Panel(f"raw return (mean of {window} games)", xlabel=STEPS, empty=f"fewer than {window} games yet")
    sps = Panel("steps/s of each learner", xlabel=STEPS)
    losses = Panel("value loss, entropy (log scale)", xlabel=STEPS, log_y=True,
                   legend=[(key.replace("_", " "), style, "0.3") for key, style in LOSSES.items()])
    gossip = Panel("gossip counters", xlabel=STEPS, empty="no gossip in this run",
                   legend=[(key.replace("gossip_", "").replace("_total", ""), style, "0.3")
                           for key, style in GOSSIP_COUNTERS.items()])
    staleness = Panel("staleness (updates)", xlabel=STEPS, empty="no gossip in this run")
    for rank in record.ranks:
        color = learner_color(rank, n)
        games = record.episodes.get(rank, [])
        steps, mean = smoothed_returns([s for s, _ in games], [r for _, r in games], window)
        returns.curves.append(Curve(steps, mean, color, label=f"learner {rank}", width=1.2))
        sps.curves.append(Curve(*record.series(rank, "SPS", points), color))
        losses.curves += [Curve(*record.series(rank, key, points), color, style) for key, style in LOSSES.items()]
        gossip.curves += [Curve(*record.series(rank, key, points), color, style)
                          for key, style in GOSSIP_COUNTERS.items()]
        staleness.curves.append(Curve(*record.series(rank, "staleness", points), color))
    return [returns, sps, losses, gossip, staleness, consensus_panel(record.readings, n)]


def draw_dashboard(record: RunRecord, info: RunInfo | None, fig: Figure | None = None, window: int = 20) -> Figure:
    """The six panels of ``record`` with matplotlib, on ``fig`` (cleared first; a new 12 × 6 in figure if None)."""
    fig = fig if fig is not None else Figure(figsize=(12, 6), dpi=72)
    fig.clear()
    for ax, panel in zip(fig.subplots(2, 3).ravel(), dashboard_panels(record, _learners(record, info), window),
                         strict=True):
        draw_panel(ax, panel)
    fig.suptitle(_title(record, info), fontsize=10)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.08, top=0.88, wspace=0.22, hspace=0.45)  # tight_layout: 1 s
    return fig


def dashboard_html(record: RunRecord, info: RunInfo | None, window: int = 20) -> str:
    """The six panels of ``record`` as SVG charts in a 3-column grid (the live view: ~10 ms, the browser draws)."""
    panels = dashboard_panels(record, _learners(record, info), window, points=SVG_POINTS)
    charts = "".join(panel_svg(p) for p in panels)
    return (f'<div style="font-size:12px;margin:2px 0">{html.escape(_title(record, info))}</div>'
            f'<div style="display:grid;grid-template-columns:repeat(3,320px);gap:4px">{charts}</div>')


def render_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


class Dashboard(Observer):
    """A live view of a run (module docstring). ``source``: a ``Run`` to attach to, a finished run's ``Metrics``
    or directory to show, or None (pass the dashboard to ``train``/``start``).

    Args:
        window: games averaged in the return curves.
        min_interval: seconds between two redraws, at least.
        budget: the largest share of one core that drawing may take (it waits longer after a slow draw).
        live: widgets (True) or lines and a figure at the end (False); default: widgets when a Jupyter server's
            kernel runs this (JupyterLab, Notebook), not under a script, the CLI or nbconvert.
        log_every: seconds between two lines when not live.
    """

    def __init__(self, source: Any = None, *, window: int = 20, min_interval: float = 1.0, budget: float = 0.02,
                 live: bool | None = None, log_every: float = 10.0):
        self.window = check_int("window", window, 1)
        self.min_interval = check_float("min_interval", min_interval, 0.0, 3600.0, low_open=True)
        self.budget = check_float("budget", budget, 0.0, 1.0, low_open=True)
        self.log_every = check_float("log_every", log_every, 0.0, 86400.0)
        self.live = widget_front_end() if live is None else live
        self.record, self.info, self.metrics = RunRecord(), None, None
        self.state = "waiting for a run"
        self.draw_seconds = 0.0  # how long the last draw took
        self._widget = self._stop_button = self._status = self._image = None
        self._displayed_in: int | None = None  # the cell (execution count) that displayed it, if one did
        self._stop_run = None
        self._draw_lock = threading.Lock()
        self._wake, self._ended = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self._last_line = 0.0
        if source is not None:
            self.show(source)

    # -- sources
    def show(self, source: Any) -> Dashboard:
        """Attach to a ``Run`` that is going, or draw a finished run (its ``Metrics`` or its directory)."""
        from galakit.runtime.supervisor import Run

        if isinstance(source, Run):
            self._stop_run = None if source.blocking else source.stop
            source.attach(self, history=True)  # what came before, then every later event
            return self
        if isinstance(source, str | Path):
            from galakit.io.runs import load_run

            source = load_run(source)
        if not isinstance(source, Metrics):
            raise ValueError(f"source: got {type(source).__name__}; accepted: a galakit Run, Metrics, or a run "
                             "directory")
        if source.config is not None:
            self.info = RunInfo(source.config, source.run_dir or "", source.config.num_learners)
        self.record.add_metrics(source)
        self.metrics, self.state = source, _ending(self.record, self.info)
        if self.live and self._widget is not None:  # shown already: redraw it with the run
            self._draw()
        return self

    # -- the observer
    def on_start(self, info: RunInfo) -> None:
        if self.metrics is not None:  # a dashboard given to a second run shows that run only
            self.record = RunRecord()
        self.info, self.state, self.metrics = info, "running", None
        self._stop_run = info.stop or self._stop_run
        self._ended.clear()
        if self.live:
            self._build()
            self._draw_status()
            if self._displayed_in is None:
                self._display()
            self._thread = threading.Thread(target=self._redraw_loop, name="galakit-dashboard", daemon=True)
            self._thread.start()

    def on_episode(self, episode) -> None:
        self.record.add_episode(episode)

    def on_update(self, row: dict[str, Any]) -> None:
        self.record.add_row(row)
        if not self.live and time.monotonic() - self._last_line >= self.log_every:
            self._last_line = time.monotonic()
            print(self.line(), file=sys.stdout, flush=True)

    def on_consensus(self, reading: dict[str, Any]) -> None:
        self.record.add_reading(reading)

    def on_end(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.state = _ending(self.record, self.info)
        self._ended.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        if self.live:
            self._draw()
            if self._stop_button is not None:
                self._stop_button.disabled = True
        elif self.info is not None:
            self._show_static()

    # -- views
    def figure(self) -> Figure:
        """The six panels as they are now (a matplotlib Figure: ``fig.savefig`` it, or show it in a cell)."""
        return draw_dashboard(self.record.snapshot(), self.info, Figure(figsize=(12, 6), dpi=100), self.window)

    def save_png(self, path: str | Path) -> Path:
        """Write the figure as it is now to ``path`` (a PNG for docs and slides)."""
        path = Path(path)
        self.figure().savefig(path, format="png")
        return path

    def _png(self):
        """The figure as an IPython image: shown by any front end, kept by nbconvert (a bare matplotlib Figure
        has no PNG form until pyplot's inline backend is loaded)."""
        from IPython.display import Image

        return Image(render_png(self.figure()), format="png")

    def line(self) -> str:
        """``dashboard | step 12800/100000 | return 21.0 23.5 | SPS 800 790 | max ‖θ_i − θ̄‖ 0.012 (ε 0.5)``."""
        rec = self.record.snapshot()
        total = f"/{self.info.total_steps}" if self.info is not None else ""
        parts = [f"dashboard | step {rec.newest_step()}{total}"]
        latest = [rec.rows[r][-1] for r in rec.ranks if rec.rows.get(r)]
        if latest:
            parts.append("return " + " ".join(f"{r['episodic_return_mean']:.1f}" for r in latest))
            parts.append("SPS " + " ".join(f"{r['SPS']:.0f}" for r in latest))
        if rec.readings:
            newest = rec.readings[-1]
            bound = f" (ε {newest['epsilon_bound']:.3g})" if newest.get("epsilon_bound") else ""
            parts.append(f"max ‖θ_i − θ̄‖ {max(newest['distance_to_average']):.3g}{bound}")
        return " | ".join(parts)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if not self.live:
            display(self._png())
        elif self._displayed_in != _cell():  # `Dashboard(run)` as a cell's last line: shown once, not twice
            self._build()
            self._draw()
            self._display()

    def _display(self) -> None:
        from IPython.display import display

        self._displayed_in = _cell()
        display(self._widget)

    def _build(self) -> None:
        if self._widget is not None:
            return
        import ipywidgets as widgets

        self._status = widgets.HTML().add_class("galakit-dashboard-status")
        self._stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger",
                                           tooltip="Stop the run: every learner finishes its update and saves")
        self._stop_button.add_class("galakit-dashboard-stop")
        self._stop_button.on_click(lambda _: threading.Thread(target=self._stop, daemon=True).start())
        self._image = widgets.HTML().add_class("galakit-dashboard-view")  # SVG charts, drawn by the browser
        self._widget = widgets.VBox([widgets.HBox([self._stop_button, self._status]), self._image])
        self._widget.add_class("galakit-dashboard")

    def _stop(self) -> None:
        if self._stop_run is None:
            return
        self.state = "stopping: each learner finishes its update and saves"
        self._draw_status()
        try:
            self._stop_run()
        except Exception as err:  # a learner that failed: say so in the view, the run is over anyway
            self.state = f"failed: {str(err).splitlines()[0]}"
        self._draw_status()

    def _redraw_loop(self) -> None:
        drawn = -1
        while not self._ended.is_set():
            if self.record.version != drawn:
                drawn = self.record.version
                self._draw()
            wait = max(self.min_interval, self.draw_seconds / self.budget)
            self._wake.wait(wait)

    def _draw(self) -> None:
        with self._draw_lock:  # the drawing thread, the end of the run and a display: one at a time
            started = time.perf_counter()
            try:
                view = dashboard_html(self.record.snapshot(), self.info, self.window)
                if self._image is not None:
                    self._image.value = view
            except Exception as err:  # a drawing error must not reach the run; it shows in the status line
                self.state = f"drawing failed: {err!r}"
            self.draw_seconds = time.perf_counter() - started
        self._draw_status()

    def _draw_status(self) -> None:
        if self._status is None:
            return
        if self.info is not None and self._stop_run is None and self.state == "running":
            how = "the cell runs it: interrupt the kernel (■) to stop it (clicks do not reach a busy kernel)"
        else:
            how = ""
        self._stop_button.disabled = self._stop_run is None or self.state != "running"
        total = f" of {self.info.total_steps:,}" if self.info is not None else ""
        self._status.value = (f"<b>{self.state}</b> · step {self.record.newest_step():,}{total}"
                              f"{' · ' + how if how else ''}")

    def _show_static(self) -> None:
        print(self.line(), file=sys.stdout, flush=True)
        if _in_ipython():
            from IPython.display import display

            display(self._png())
        elif self.info.run_dir:
            path = self.save_png(Path(self.info.run_dir) / "dashboard.png")
            print(f"dashboard: {path}", file=sys.stdout, flush=True)


def _learners(record: RunRecord, info: RunInfo | None) -> int:
    return info.num_learners if info is not None else max(record.ranks, default=0) + 1


def widget_front_end() -> bool:
    """True in a kernel that a Jupyter server started (JupyterLab, Notebook 7): it sets ``JPY_SESSION_NAME``.
    A script, the CLI and nbconvert (a kernel with no server, no one to draw widgets) get False."""
    return _in_ipython() and "JPY_SESSION_NAME" in os.environ


def _cell() -> int | None:
    """The execution count of the cell running now (None outside IPython)."""
    shell = sys.modules.get("IPython")
    ip = shell.get_ipython() if shell is not None and hasattr(shell, "get_ipython") else None
    return getattr(ip, "execution_count", None)


def _in_ipython() -> bool:
    shell = sys.modules.get("IPython")
    ip = shell.get_ipython() if shell is not None and hasattr(shell, "get_ipython") else None
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _title(record: RunRecord, info: RunInfo | None) -> str:
    if info is None:
        return "no run yet"
    cfg = info.config
    graph = f", {cfg.topology if isinstance(cfg.topology, str) else 'custom graph'}" if cfg.algo == "gala" else ""
    return (f"{cfg.algo}{graph}, {info.num_learners} learner(s), {cfg.env_id}: step {record.newest_step():,} of "
            f"{info.total_steps:,} · {info.run_dir}")


def _ending(record: RunRecord, info: RunInfo | None) -> str:
    if info is None:
        return "ended"
    done = record.newest_step() >= info.total_steps
    return "finished" if done else "stopped before the end"
