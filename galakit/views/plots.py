"""Matplotlib views of gossip: a topology at step k, a mixing matrix, and consensus error against the predicted
rate and the ε-ball bound. Views only: they draw what `topology`, `gossip` and `consensus` computed.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
from matplotlib.axes import Axes

from galakit.gossip.consensus import epsilon_bound
from galakit.gossip.simulate import Trace
from galakit.gossip.topology import Schedule
from galakit.views.charts import Curve, Panel, draw_panel

ACTIVE_COLOR = "tab:red"
IDLE_COLOR = "0.85"


def draw_topology(schedule: Schedule, step: int = 0, *, ax: Axes | None = None, values: np.ndarray | None = None,
                  active_edges: np.ndarray | None = None, vmin: float | None = None, vmax: float | None = None,
                  cmap: str = "viridis", node_size: float = 300) -> Axes:
    """Draw the learners on a fixed circle, every link of the period in grey and the messages of step k in red.

    Args:
        schedule: the topology.
        step: the gossip step k whose messages are highlighted (``schedule.edges(k)``).
        values: optional (n,) colour per learner, e.g. ``trace.values[k, :, 0]`` or a distance to the average;
            fix ``vmin``/``vmax`` to keep colours comparable across steps.
        active_edges: (E, 2) rows (sender, receiver) to highlight instead, e.g. ``trace.active_edges[k]``.
    Arrows point from sender to receiver. Highlighted arrows carry the gid ``"active-edge"``.
    """
    ax = ax if ax is not None else plt.subplots(figsize=(4, 4))[1]
    n = schedule.n
    pos = nx.circular_layout(range(n))  # fixed: learner i always sits at the same place
    every = {tuple(e) for k in range(schedule.period) for e in schedule.edges(k).tolist()}
    active = {tuple(e) for e in (schedule.edges(step) if active_edges is None else np.asarray(active_edges)).tolist()}
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    style = dict(ax=ax, arrows=True, arrowstyle="-|>", connectionstyle="arc3,rad=0.08", node_size=node_size)
    nx.draw_networkx_edges(graph, pos, edgelist=sorted(every - active), edge_color=IDLE_COLOR, width=0.8, **style)
    for patch in nx.draw_networkx_edges(graph, pos, edgelist=sorted(active), edge_color=ACTIVE_COLOR, width=2.0,
                                        arrowsize=12, **style) or []:
        patch.set_gid("active-edge")
    if values is None:
        nx.draw_networkx_nodes(graph, pos, ax=ax, node_color="tab:blue", node_size=node_size)
    else:
        nodes = nx.draw_networkx_nodes(graph, pos, ax=ax, node_color=np.asarray(values, dtype=float), cmap=cmap,
                                       vmin=vmin, vmax=vmax, node_size=node_size)
        ax.figure.colorbar(nodes, ax=ax, shrink=0.7)
    if n <= 32:
        nx.draw_networkx_labels(graph, pos, ax=ax, font_size=8, font_color="white")
    ax.set_title(f"{schedule.name}, step {step} (graph {step % schedule.period + 1} of {schedule.period})")
    ax.set_aspect("equal")
    ax.axis("off")
    return ax


def draw_mixing_matrix(W: np.ndarray | Schedule, step: int = 0, *, ax: Axes | None = None,
                       annotate: bool | None = None) -> Axes:
    """Heatmap of W (or of ``schedule.mixing_matrix(step)``): row i = the weights learner i gives, column j = the
    shares of sender j. Entries are written in the cells when n ≤ 10 (or ``annotate=True``)."""
    ax = ax if ax is not None else plt.subplots(figsize=(4, 3.5))[1]
    matrix = W.mixing_matrix(step) if isinstance(W, Schedule) else np.asarray(W, dtype=float)
    n = matrix.shape[0]
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(float(matrix.max()), 1e-12))
    ax.figure.colorbar(image, ax=ax, shrink=0.8)
    if annotate if annotate is not None else n <= 10:
        for i, j in zip(*np.nonzero(matrix), strict=True):
            ax.text(j, i, f"{matrix[i, j]:.2g}", ha="center", va="center", fontsize=7,
                    color="white" if matrix[i, j] > 0.6 * matrix.max() else "black")
    ax.xaxis.get_major_locator().set_params(integer=True)  # learners are whole numbers, also for small n
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("j (sender)")
    ax.set_ylabel("i (receiver)")
    title = f"W_{step}" if isinstance(W, Schedule) else "W"
    ax.set_title(f"{title}[i, j]: weight learner i gives to j")
    return ax


def plot_consensus(trace: Trace, *, ax: Axes | None = None, rho: float | None = None, window: int = 1,
                   alpha: float = 0.0, grad_bound: float = 0.0, pairwise: bool = False) -> Axes:
    """Consensus error ‖X_k − 1x̄ᵀ‖_F against k (log scale), with the predicted rate and the ε-ball bound.

    Args:
        trace: a simulation (`galakit.gossip.simulate`).
        rho, window: ρ and the number of steps it covers (``schedule.rho()``, ``schedule.period``); draws the
            bound ``epsilon_bound(ρ, α, G, n, ‖E_0‖, k, τ)``: the predicted rate ρ^{k/τ} ‖E_0‖ when there are
            no local updates, plus the dashed ε-ball radius sup_k when α G > 0.
        alpha, grad_bound: the local step size α and the bound G used in the simulation.
        pairwise: also draw the largest pairwise distance.
    Exact zeros (e.g. one-peer exponential gossip on 2^m learners) are drawn at 1e-16 × the largest error.
    """
    ax = ax if ax is not None else plt.subplots(figsize=(5, 3.5))[1]
    error = trace.consensus_error
    n, k = trace.distance_to_average.shape[1], np.arange(trace.steps + 1)
    floor = 1e-16 * (float(error.max()) or 1.0)
    ax.plot(k, np.maximum(error, floor), color="tab:blue", label="‖X_k − 1x̄ᵀ‖_F (simulated)")
    if pairwise:
        ax.plot(k, np.maximum(trace.max_pairwise, floor), color="tab:green", lw=1,
                label="max pairwise distance" + ("" if trace.pairwise_exact else " (upper bound)"))
    if rho is not None:
        bound = [epsilon_bound(rho, alpha, grad_bound, n, e0=float(error[0]), k=int(t), window=window) for t in k]
        noisy = alpha * grad_bound > 0
        ax.plot(k, np.maximum(bound, floor), color="tab:orange", ls="--",
                label=f"bound (ρ = {rho:.3g})" if noisy else f"predicted ρ^(k/{window})·‖E_0‖ (ρ = {rho:.3g})")
        if noisy:
            radius = epsilon_bound(rho, alpha, grad_bound, n, e0=float(error[0]), window=window)
            ax.axhline(radius, color="tab:red", ls=":", label=f"ε-ball bound sup_k = {radius:.3g}")
    ax.set_yscale("log")
    ax.set_xlabel("gossip step k")
    ax.set_ylabel("consensus error")
    ax.set_title(f"{trace.schedule} ({trace.mode}), n = {n}")
    ax.legend(fontsize=7)
    return ax


def plot_training(metrics, *, window: int = 20, axes: tuple[Axes, Axes] | None = None) -> tuple[Axes, Axes]:
    """A training run (`galakit.Metrics`): each learner's raw return (mean of ``window`` games) against its steps,
    and, when the run measured them, the learners' distances to their average next to the ε bound."""
    if axes is None:
        axes = tuple(plt.subplots(1, 2, figsize=(10, 3.5))[1])
    ret_ax, cons_ax = axes
    ranks = sorted({e.rank for e in metrics.episodes})
    for rank in ranks:
        games = [e for e in metrics.episodes if e.rank == rank]
        steps, mean = smoothed_returns([e.global_step for e in games], [e.ret for e in games], window)
        if len(steps):
            ret_ax.plot(steps, mean, lw=1, color=learner_color(rank, len(ranks)), label=f"learner {rank}")
    ret_ax.set_xlabel("steps of each learner")
    ret_ax.set_ylabel(f"raw return (mean of {window} games)")
    if ret_ax.get_legend_handles_labels()[0]:  # fewer than `window` games: nothing drawn yet, no legend
        ret_ax.legend(fontsize=7)
    else:
        empty = "no finished game yet" if window == 1 else f"fewer than {window} games per learner so far"
        ret_ax.text(0.5, 0.5, empty, ha="center", va="center",
                    transform=ret_ax.transAxes, color="grey")
    draw_consensus_readings(cons_ax, metrics.consensus, len(ranks))
    return ret_ax, cons_ax


def smoothed_returns(steps, returns, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(global step of the last game of each window, mean raw return of ``window`` consecutive games); empty
    before ``window`` games."""
    returns = np.asarray(returns, dtype=float)
    if len(returns) < window:
        return np.zeros(0), np.zeros(0)
    return np.asarray(steps[window - 1:], dtype=float), np.convolve(returns, np.ones(window) / window, "valid")


def learner_color(rank: int, n: int):
    """Learner ``rank``'s colour in every figure: tab10 up to 10 learners, a continuous map beyond."""
    return plt.get_cmap("tab10")(rank % 10) if n <= 10 else plt.get_cmap("turbo")(rank / max(n - 1, 1))


def draw_consensus_readings(ax: Axes, readings: list[dict], n: int) -> Axes:
    """The ε-ball readings of a run on ``ax`` (`consensus_panel`)."""
    return draw_panel(ax, consensus_panel(readings, n))


def consensus_panel(readings: list[dict], n: int) -> Panel:
    """The ε-ball readings of a run: each learner's ‖θ_i − θ̄‖ (one colour per learner), max_ij ‖θ_i − θ_j‖ and the
    ε bound, against the update of the newest θ_i (log scale).

    A reading whose θ_i come from different updates (``update_min < update_max``: the board held one learner's
    newer parameters) compares models one or more updates apart, not a drift of the learners: it is marked with a
    hollow grey circle. (An allreduce run, whose learners are equal after every update, shows only such readings
    above zero.)
    """
    panel = Panel("distance to the average, ε bound", xlabel="update", ylabel="parameter distance", log_y=True,
                  empty="no ε-ball readings (diag_interval = 0, or one learner)")
    if not readings:
        return panel
    updates = np.array([r["update_max"] for r in readings], dtype=float)
    distances = np.array([r["distance_to_average"] for r in readings], dtype=float)  # (readings, n)
    skewed = np.array([r["update_min"] < r["update_max"] for r in readings])
    for i in range(distances.shape[1]):
        panel.curves.append(Curve(updates, distances[:, i], learner_color(i, max(n, distances.shape[1])),
                                  label="‖θ_i − θ̄‖ (one line per learner)" if i == 0 else None))
    panel.curves.append(Curve(updates, [r["max_pairwise_distance"] for r in readings], "0.3", "-.",
                              "max_ij ‖θ_i − θ_j‖", width=0.8))
    if skewed.any():
        panel.curves.append(Curve(updates[skewed], distances[skewed].max(axis=1), "0.5", "o",
                                  "θ_i from different updates"))
    bounds = [r["epsilon_bound"] for r in readings]
    if all(b is not None and b > 0 for b in bounds):
        panel.curves.append(Curve(updates, bounds, "tab:red", "--", "ε bound (synchronous gossip)"))
    return panel
