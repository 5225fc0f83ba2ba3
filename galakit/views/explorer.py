"""An interactive gossip-graph explorer for Jupyter: choose who talks to whom and how, then step through the
simulated gossip and watch the messages, the learners' values, the consensus error and the mixing matrix W_k.

    from galakit.views.explorer import explore
    explore()                      # one-peer exponential gossip on 8 learners
    explore(my_graph)              # your own Schedule or networkx graph (its node count fixes n)

What the numbers mean
---------------------
One gossip step maps the learners' values X_k to X_{k+1} = W_k X_k. ρ = ‖W_{τ−1}⋯W_0 − J‖₂ (J = the exact
average) is how much one period of τ steps shrinks the distance to the average, at least, for doubly stochastic
W: the consensus error falls like ρ^{k/τ} (the dashed orange line). The spectral gap 1 − ρ reads the other way:
0 means the learners barely mix (a ring of 64: ρ = cos(π/64) ≈ 0.9988), 1 means exact averaging in one period.

What to try
-----------
* n = 8, one_peer_exponential: exact consensus in 3 steps (ρ = 0 over the period τ = 3), one message per learner
  per step. Then n = 6: no longer exact, because 6 is not a power of two.
* ring, n = 8 then 64: ρ = cos(π/n) creeps to 1, and 30 steps do little; peers = 2 or 3 helps, at a price in
  messages. complete: ρ = 0, one step, n − 1 messages per learner.
* star: synchronous gossip agrees on a weighted average (watch x̄ drift in the readout); push-sum keeps it.
  metropolis weights make W doubly stochastic and keep the average too.
* asynchronous on a ring: raise the max delay, then the drop probability: fewer messages are mixed at each step
  (fewer red arrows) and the curve stalls; sync_freq = 0 makes learners wait for every message, a larger one lets
  them skip mixing and carry on (``explorer.trace.blocked`` and ``.skipped`` say who did what).

How it works
------------
`Settings` (the controls but the step k) → `build_schedule` and `simulate` give the schedule and the whole
`Trace` at once; `frame_at` picks out what is drawn at step k (a `Frame`) and `draw` turns it into three panels.
`GossipExplorer` holds the widgets and caches: a schedule per (topology, n, peers, weights, seed), a trace per
schedule key + mode parameters, the PNG of every step already shown. Moving the step slider (or pressing Play,
linked in the browser) only draws; changing a control simulates only what it changed. The figure is drawn by Agg
into a PNG shown in a ``widgets.Image``: no ipympl, no pyplot state, nothing fetched from the network.

Timings, n = 64, median of 3 on 2 CPU cores, ``time.perf_counter`` around setting a widget's value: a control
change that rebuilds everything (the seed: schedule, 30 simulated steps, the picture) takes 0.3–0.7 s (ring,
one_peer_exponential, exponential, complete; sync, async or push-sum); a step change 0.2–0.4 s the first time a
step is shown (drawing is all of it), about 1 ms when it comes back (its PNG is cached). Past `ARROWS_MAX` links a
period the graph is drawn with lines: networkx takes ~2 ms per arrow, 10 s for the 4032 of a complete graph.
"""

from __future__ import annotations

import contextlib
import html
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import networkx as nx
import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from galakit.gossip.simulate import Trace, random_delays, simulate_async, simulate_push_sum, simulate_sync
from galakit.gossip.topology import (
    TAKE_PEERS,
    TOPOLOGIES,
    Schedule,
    build_topology,
    from_networkx,
    rho,
    shown,
    spectral_gap,
)
from galakit.validation import check_choice, check_float, check_int, fail
from galakit.views.plots import ACTIVE_COLOR, IDLE_COLOR, draw_mixing_matrix, draw_topology, plot_consensus

GIVEN = "given"  # the topology value that stands for the graph passed to explore()
WEIGHTS = ("uniform", "metropolis")
MODES = (("synchronous", "sync"), ("asynchronous", "async"), ("push-sum", "push_sum"))  # (label, mode)
ASYNC_FIELDS = ("max_delay", "drop_prob", "sync_freq")  # the controls that only asynchronous gossip reads
MAX_N, MAX_PEERS, MAX_DELAY, MAX_SYNC_FREQ, MAX_STEPS, MAX_SEED = 64, 8, 10, 10, 200, 2**31 - 1
ARROWS_MAX = 150  # links per period drawn as arrows; beyond, plain lines (each arrow costs networkx ~2 ms)
FIGSIZE, DPI = (14, 4.4), 72
PLAY_INTERVAL_MS = 600


# --------------------------------------------------------------------------------------------------------------
# Data: settings → (schedule, trace) → the frame of step k
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What the controls say, the step k aside: everything the schedule and the trace depend on.

    The asynchronous fields (``max_delay``: each message is delayed by 0..max_delay steps, ``drop_prob``: or
    dropped with this probability, ``sync_freq``: skips allowed in a row before a learner waits) only count when
    ``mode == "async"``; ``peers`` only for the rings. Each field is checked here, in the one error format.
    """

    topology: str = "one_peer_exponential"
    n: int = 8
    peers: int = 1
    weights: str = "uniform"
    mode: str = "sync"
    max_delay: int = 2
    drop_prob: float = 0.0
    sync_freq: int = 2
    seed: int = 0
    steps: int = 30

    def __post_init__(self) -> None:
        check_choice("topology", self.topology, (*TOPOLOGIES, GIVEN))
        check_int("n", self.n, 1, MAX_N)
        check_int("peers", self.peers, 1, MAX_PEERS)
        check_choice("weights", self.weights, WEIGHTS)
        check_choice("mode", self.mode, tuple(mode for _, mode in MODES))
        check_int("max_delay", self.max_delay, 0, MAX_DELAY)
        check_float("drop_prob", self.drop_prob, 0.0, 1.0)
        check_int("sync_freq", self.sync_freq, 0, MAX_SYNC_FREQ)
        check_int("seed", self.seed, 0, MAX_SEED)
        check_int("steps", self.steps, 1, MAX_STEPS)

    @property
    def schedule_key(self) -> tuple:
        """What the schedule depends on: (topology, n, peers, weights, seed)."""
        peers = self.peers if self.topology in TAKE_PEERS else 1  # the other builders take no peers
        return self.topology, self.n, peers, self.weights, self.seed

    @property
    def trace_key(self) -> tuple:
        """What the trace depends on: the schedule key, the mode, the steps and, for async, its parameters."""
        asynchronous = (self.max_delay, self.drop_prob, self.sync_freq) if self.mode == "async" else ()
        return *self.schedule_key, self.mode, self.steps, *asynchronous


@dataclass(frozen=True)
class Frame:
    """What the explorer draws at step k: the state X_k and the messages that turn it into X_{k+1}."""

    step: int
    active_edges: np.ndarray  # (E, 2) rows (sender, receiver): the messages mixed during step k
    values: np.ndarray  # (n,) each learner's value x_i at step k
    mixing_matrix: np.ndarray  # (n, n) W_k, as the schedule gives it
    consensus_error: np.ndarray  # (steps + 1,) ‖X_k − 1x̄ᵀ‖_F for every k
    average: float  # x̄ at step k (it drifts when W is not doubly stochastic, or under asynchrony)
    rho: float  # ‖W_{τ−1}⋯W_0 − J‖₂: the contraction of one period
    spectral_gap: float  # 1 − ρ
    value_range: tuple[float, float]  # (vmin, vmax) of the node colours, the same at every step


def build_schedule(settings: Settings, given: Schedule | nx.Graph | None = None) -> Schedule:
    """The schedule the settings name: a builder of `TOPOLOGIES`, or ``given`` (a networkx graph gets the
    settings' weights; a Schedule keeps its own)."""
    if settings.topology != GIVEN:
        _, n, peers, weights, seed = settings.schedule_key
        return build_topology(settings.topology, n, peers=peers, seed=seed, weights=weights)
    if given is None:
        fail("topology", GIVEN, ", ".join(repr(t) for t in TOPOLOGIES), "no graph was passed to explore()")
    if isinstance(given, Schedule):
        return given
    return from_networkx(given, weights=settings.weights, name=given.name or "custom")


def initial_values(n: int, seed: int) -> np.ndarray:
    """X_0: one random scalar per learner (d = 1), drawn from ``seed``: shape (n, 1)."""
    return np.random.default_rng(seed).standard_normal((n, 1))


def simulate(schedule: Schedule, settings: Settings) -> Trace:
    """The whole trace of ``settings.steps`` gossip steps from `initial_values`, values and messages kept."""
    x0, keep = initial_values(schedule.n, settings.seed), {"store_values": True, "store_edges": True}
    if settings.mode == "sync":
        return simulate_sync(schedule, x0, settings.steps, **keep)
    if settings.mode == "push_sum":
        return simulate_push_sum(schedule, x0, settings.steps, **keep)
    delays = random_delays(settings.max_delay, settings.drop_prob, seed=settings.seed)
    return simulate_async(schedule, x0, settings.steps, sync_freq=settings.sync_freq, delay=delays, **keep)


def frame_at(schedule: Schedule, trace: Trace, step: int) -> Frame:
    """What is drawn at step k (0 ≤ k ≤ steps; after the last step no message is sent)."""
    check_int("step", step, 0, trace.steps)
    edges = trace.active_edges[step] if step < trace.steps else np.empty((0, 2), np.int32)
    period = schedule.period_product()
    return Frame(step=step, active_edges=edges, values=trace.values[step, :, 0],
                 mixing_matrix=schedule.mixing_matrix(step), consensus_error=trace.consensus_error,
                 average=float(trace.mean[step, 0]), rho=rho(period), spectral_gap=spectral_gap(period),
                 value_range=(float(trace.values.min()), float(trace.values.max())))


# --------------------------------------------------------------------------------------------------------------
# Drawing: a frame → three panels → PNG bytes
# --------------------------------------------------------------------------------------------------------------


def draw(fig: Figure, schedule: Schedule, trace: Trace, frame: Frame) -> None:
    """Step k into ``fig``: the graph (messages of step k in red), the consensus error with the predicted rate
    and a dotted line at k, and the heatmap of W_k."""
    graph_ax, error_ax, matrix_ax = fig.subplots(1, 3, gridspec_kw={"width_ratios": (1.1, 1.3, 1)})
    draw_graph(graph_ax, schedule, frame)
    plot_consensus(trace, ax=error_ax, rho=frame.rho, window=schedule.period)
    error_ax.axvline(frame.step, color="0.3", lw=1, ls=":", gid="current-step")
    draw_mixing_matrix(schedule, frame.step, ax=matrix_ax)
    graph_ax.set_title(graph_ax.get_title(), fontsize=9, wrap=True)  # long topology names fit their panel
    fig.subplots_adjust(left=0.01, right=0.97, bottom=0.12, top=0.9, wspace=0.25)


def draw_graph(ax: Axes, schedule: Schedule, frame: Frame) -> Axes:
    """The learners on their fixed circle, coloured by value, the messages of step k in red: `draw_topology`,
    or, past `ARROWS_MAX` links a period, the same picture with plain lines (thousands of arrows take seconds)."""
    vmin, vmax = frame.value_range
    links = {tuple(e) for k in range(schedule.period) for e in schedule.edges(k).tolist()}
    if len(links) <= ARROWS_MAX:
        return draw_topology(schedule, frame.step, ax=ax, values=frame.values, active_edges=frame.active_edges,
                             vmin=vmin, vmax=vmax)
    pos = nx.circular_layout(range(schedule.n))
    xy = np.array([pos[i] for i in range(schedule.n)])
    active = {tuple(e) for e in frame.active_edges.tolist()}
    for edges, color, width in ((links - active, IDLE_COLOR, 0.5), (active, ACTIVE_COLOR, 1.2)):
        segments = xy[np.array(sorted(edges), dtype=int).reshape(-1, 2)]
        ax.add_collection(LineCollection(segments, colors=color, linewidths=width,
                                         gid="active-edge" if color == ACTIVE_COLOR else None))
    nodes = nx.draw_networkx_nodes(nx.empty_graph(schedule.n), pos, ax=ax, node_color=frame.values,
                                   cmap="viridis", vmin=vmin, vmax=vmax, node_size=120)
    ax.figure.colorbar(nodes, ax=ax, shrink=0.7)
    ax.set_title(f"{schedule.name}, step {frame.step}: {len(active)} of {len(links)} links (no arrowheads)")
    ax.set_aspect("equal")
    ax.axis("off")
    return ax


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (Agg, no pyplot)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------------------------
# Widgets
# --------------------------------------------------------------------------------------------------------------


class GossipExplorer:
    """The explorer: its controls, a step slider linked to a Play button, the picture of step k and a readout.

    Attributes:
        widget: the root ``VBox`` (DOM class ``galakit-explorer``); the explorer displays as it in Jupyter.
        controls: the widget of each `Settings` field, by name (set ``controls["n"].value = 16`` to change n).
        step, play, image, readout: the step slider (``galakit-explorer-step``), its Play button, the picture
            (``galakit-explorer-view``) and the HTML line with k, ρ and the spectral gap
            (``galakit-explorer-readout``), which shows the error instead when a setting cannot be simulated.
        schedule, trace: those of the last setting that could be simulated.
    """

    def __init__(self, given: Schedule | nx.Graph | None = None, settings: Settings | None = None) -> None:
        self._given = _checked_given(given)
        settings = settings or Settings(**({"topology": GIVEN, "n": _node_count(given)} if given is not None else {}))
        self._schedules: dict[tuple, Schedule] = {}
        self._traces: dict[tuple, Trace] = {}
        self._pngs: dict[int, bytes] = {}  # the pictures of the current trace, by step
        self._quiet = False
        self.schedule, self.trace = self.compute(settings)  # a bad setting raises here, not in a callback
        self.controls = _controls(settings, self._topology_options())
        self.step = widgets.IntSlider(value=0, min=0, max=settings.steps, description="step k",
                                      continuous_update=False).add_class("galakit-explorer-step")
        self.play = widgets.Play(value=0, min=0, max=settings.steps, interval=PLAY_INTERVAL_MS)
        self._link = widgets.jslink((self.play, "value"), (self.step, "value"))  # Play runs in the browser
        self.image = widgets.Image(format="png").add_class("galakit-explorer-view")
        self.readout = widgets.HTML().add_class("galakit-explorer-readout")
        self.widget = _layout(self.controls, self.play, self.step, self.readout, self.image)
        self._sync_controls()
        for control in self.controls.values():
            control.observe(self._on_control, names="value")
        self.step.observe(self._on_step, names="value")
        self._redraw()

    @property
    def settings(self) -> Settings:
        """The setting the controls show now."""
        return Settings(**{name: control.value for name, control in self.controls.items()})

    def compute(self, settings: Settings) -> tuple[Schedule, Trace]:
        """The schedule and the trace of ``settings``, each built once (cached by `Settings.schedule_key` and
        `Settings.trace_key`)."""
        if settings.schedule_key not in self._schedules:
            self._schedules[settings.schedule_key] = build_schedule(settings, self._given)
        schedule = self._schedules[settings.schedule_key]
        if settings.trace_key not in self._traces:
            self._traces[settings.trace_key] = simulate(schedule, settings)
        return schedule, self._traces[settings.trace_key]

    def frame(self, step: int | None = None) -> Frame:
        """What is drawn at ``step`` (default: the step slider's k)."""
        return frame_at(self.schedule, self.trace, self.step.value if step is None else step)

    def png(self, step: int | None = None) -> bytes:
        """The picture of ``step`` (default: k) as PNG bytes."""
        fig = Figure(figsize=FIGSIZE, dpi=DPI)
        draw(fig, self.schedule, self.trace, self.frame(step))
        return png_bytes(fig)

    def save_png(self, path: str | Path) -> Path:
        """Write the picture of the current step to ``path`` (a static copy for a report)."""
        path = Path(path)
        path.write_bytes(self._pngs.get(self.step.value) or self.png())
        return path

    def to_html(self, path: str | Path | None = None, interval: int = PLAY_INTERVAL_MS) -> str:
        """A kernel-free animation of every step (``FuncAnimation.to_jshtml``: frames embedded as PNG, no ffmpeg);
        written to ``path`` when given. One picture per step: n = 64 over 30 steps takes 10–15 s."""
        fig = Figure(figsize=FIGSIZE, dpi=DPI)

        def show(k: int) -> None:
            fig.clear()
            draw(fig, self.schedule, self.trace, self.frame(k))

        page = FuncAnimation(fig, show, frames=range(self.trace.steps + 1), interval=interval).to_jshtml(
            default_mode="loop")
        if path is not None:
            Path(path).write_text(page)
        return page

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        return self.widget._repr_mimebundle_(**kwargs)

    def _on_control(self, change: dict | None = None) -> None:
        if self._quiet:
            return
        self._sync_controls()
        try:
            schedule, trace = self.compute(self.settings)
        except ValueError as err:  # e.g. a ring of 1, or async on a time-varying graph: say why, keep the picture
            self.readout.value = f"<span style='color: #b00'>{html.escape(str(err))}</span>"
            return
        if trace is not self.trace:
            self._pngs.clear()
        self.schedule, self.trace = schedule, trace
        with self._quietly():
            self.step.max = self.play.max = trace.steps  # clamps k too
        self._redraw()

    def _on_step(self, change: dict | None = None) -> None:
        if not self._quiet:
            self._redraw()

    def _redraw(self) -> None:
        frame = self.frame()
        if frame.step not in self._pngs:
            self._pngs[frame.step] = self.png(frame.step)
        self.image.value = self._pngs[frame.step]
        self.readout.value = _readout(self.schedule, frame)

    def _sync_controls(self) -> None:
        """Grey out what the current setting does not read; a given graph fixes n."""
        c, given = self.controls, self.controls["topology"].value == GIVEN
        with self._quietly():
            if given:
                c["n"].value = _node_count(self._given)
            c["n"].disabled = given
            c["peers"].disabled = c["topology"].value not in TAKE_PEERS
            c["weights"].disabled = given and isinstance(self._given, Schedule)
            for name in ASYNC_FIELDS:
                c[name].disabled = c["mode"].value != "async"

    @contextlib.contextmanager
    def _quietly(self) -> Iterator[None]:
        """Change widgets without their callbacks recomputing."""
        quiet, self._quiet = self._quiet, True
        try:
            yield
        finally:
            self._quiet = quiet

    def _topology_options(self) -> list[tuple[str, str]]:
        builders = [(name, name) for name in TOPOLOGIES]
        if self._given is None:
            return builders
        name = self._given.name if isinstance(self._given, Schedule) else (self._given.name or "custom")
        return [(f"{name} (yours)", GIVEN), *builders]


def explore(graph_or_schedule: Schedule | nx.Graph | None = None, *, topology: str | None = None,
            n: int | None = None, peers: int = 1, weights: str = "uniform", mode: str = "sync", max_delay: int = 2,
            drop_prob: float = 0.0, sync_freq: int = 2, seed: int = 0, steps: int = 30) -> GossipExplorer:
    """Open the gossip explorer (see the module docstring for what to try); in Jupyter, it displays itself.

    Args:
        graph_or_schedule: your own `Schedule` or networkx graph on the nodes 0..n−1 (n ≤ 64): it is selected,
            and n is fixed to its node count. A networkx graph gets the chosen weights; to keep its own, pass
            ``from_networkx(graph, weights="given")``.
        topology: a name of `TOPOLOGIES` (default: yours if given, else "one_peer_exponential").
        n: learners, 1..64 (default 8). peers: for "ring" and "undirected_ring", 1..8.
        weights: "uniform" or "metropolis" (`galakit.gossip.topology.assign_weights`).
        mode: "sync", "async" (with ``max_delay``, ``drop_prob``, ``sync_freq``: `simulate_async`) or "push_sum".
        seed: draws X_0, the random topologies and the delays. steps: gossip steps simulated (1..200).
    Returns the `GossipExplorer`; its ``save_png`` and ``to_html`` give static copies. ``explore("ring")`` is
    ``explore(topology="ring")``.
    """
    if isinstance(graph_or_schedule, str) and topology is None:
        graph_or_schedule, topology = None, graph_or_schedule
    given = _checked_given(graph_or_schedule)
    if given is not None and n is not None and n != _node_count(given):
        fail("n", n, f"{_node_count(given)} (or None) with the graph you passed", "n is that graph's node count")
    topology = topology or (GIVEN if given is not None else "one_peer_exponential")
    n = n if n is not None else (_node_count(given) if given is not None and topology == GIVEN else 8)
    settings = Settings(topology=topology, n=n, peers=peers, weights=weights, mode=mode, max_delay=max_delay,
                        drop_prob=drop_prob, sync_freq=sync_freq, seed=seed, steps=steps)
    return GossipExplorer(given, settings)


def _checked_given(given: Any) -> Schedule | nx.Graph | None:
    """``given`` if it is a Schedule or a networkx graph the explorer can draw (n ≤ 64), else the error."""
    if given is not None and not isinstance(given, (Schedule, nx.Graph)):
        fail("graph_or_schedule", given, "a Schedule, a networkx graph on the nodes 0..n−1, or None")
    if given is not None and _node_count(given) > MAX_N:
        fail("graph_or_schedule", shown(given), f"a graph on at most {MAX_N} nodes", "the explorer draws them all")
    if isinstance(given, nx.Graph):
        from_networkx(given)  # checks the nodes and the connectivity, in galakit's words
    return given


def _node_count(given: Schedule | nx.Graph) -> int:
    return given.n if isinstance(given, Schedule) else given.number_of_nodes()


def _controls(s: Settings, topologies: list[tuple[str, str]]) -> dict[str, widgets.ValueWidget]:
    """One widget per `Settings` field, with the ranges `Settings` accepts."""
    wide = {"description_width": "initial"}
    return {
        "topology": widgets.Dropdown(options=topologies, value=s.topology, description="topology"),
        "n": widgets.IntSlider(value=s.n, min=1, max=MAX_N, description="n", continuous_update=False),
        "peers": widgets.IntSlider(value=s.peers, min=1, max=MAX_PEERS, description="peers",
                                   continuous_update=False),
        "weights": widgets.Dropdown(options=WEIGHTS, value=s.weights, description="weights"),
        "mode": widgets.ToggleButtons(options=MODES, value=s.mode),
        "max_delay": widgets.IntSlider(value=s.max_delay, min=0, max=MAX_DELAY, description="max delay",
                                       continuous_update=False, style=wide),
        "drop_prob": widgets.FloatSlider(value=s.drop_prob, min=0.0, max=1.0, step=0.05, description="drop prob.",
                                         continuous_update=False, style=wide),
        "sync_freq": widgets.IntSlider(value=s.sync_freq, min=0, max=MAX_SYNC_FREQ, description="sync_freq",
                                       continuous_update=False, style=wide),
        "seed": widgets.BoundedIntText(value=s.seed, min=0, max=MAX_SEED, description="seed"),
        "steps": widgets.IntSlider(value=s.steps, min=1, max=MAX_STEPS, description="steps",
                                   continuous_update=False),
    }


def _layout(controls: dict[str, widgets.Widget], play: widgets.Play, step: widgets.IntSlider,
            readout: widgets.HTML, image: widgets.Image) -> widgets.VBox:
    c = controls
    rows = [widgets.HBox([c["topology"], c["n"], c["peers"], c["weights"]]),
            widgets.HBox([c["mode"], c["seed"], c["steps"]]),
            widgets.HBox([c["max_delay"], c["drop_prob"], c["sync_freq"]]),
            widgets.HBox([play, step]), readout, image]
    return widgets.VBox(rows).add_class("galakit-explorer")


def _readout(schedule: Schedule, frame: Frame) -> str:
    over = f"one period of τ = {schedule.period} steps" if schedule.period > 1 else "one step"
    return (f"<b>step k = {frame.step}</b> · ρ = {frame.rho:.4g} ({over}) · spectral gap 1 − ρ = "
            f"{frame.spectral_gap:.4g} · consensus error {frame.consensus_error[frame.step]:.3g} · "
            f"x̄ = {frame.average:.4g} · {len(frame.active_edges)} messages mixed at step k")
