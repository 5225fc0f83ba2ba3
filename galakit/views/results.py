"""Figures of a ``galakit reproduce`` grid, read from its cells' run directories (``load_run``): the raw score
against frames and against wall-clock for each game (the mean over seeds, and their spread), frames/s for each
algorithm, and the learners' distance to each other next to the ε bound; and a published run's curve to read
them against (``monitor_curve``: Stable-Baselines3's Monitor files).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from galakit.views.plots import draw_consensus_readings, smoothed_returns

ALGO_COLORS = {"a2c": "tab:blue", "gala": "tab:green", "allreduce": "tab:orange", "a3c": "tab:purple"}


def load_grid(out: str | Path) -> dict[tuple[str, str], list[dict]]:
    """The finished cells of a grid, by (game, algo): each a dict with its ``summary`` (the table's row), its
    ``metrics`` (``load_run``) and its ``segments`` (the stretches of training, for the wall-clock)."""
    from galakit.io.runs import load_run

    cells = defaultdict(list)
    for summary_path in sorted(Path(out).glob("*/summary.json")):
        folder = summary_path.parent
        summary = json.loads(summary_path.read_text())
        segments = json.loads((folder / "segments.json").read_text()) if (folder / "segments.json").is_file() else []
        cells[summary["game"], summary["algo"]].append(
            {"summary": summary, "metrics": load_run(folder).in_step_order(), "segments": segments})
    return dict(cells)


def score_curve(cell: dict, window: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames, training seconds, mean raw return of the last ``window`` games) at each game of one cell, all
    learners' games in step order. Frames: the game's learner step × learners × frame skip; seconds: from the
    learners' progress rows, with the time between a stopped stretch and its resumption left out."""
    summary, metrics = cell["summary"], cell["metrics"]
    games = metrics.episodes
    if len(games) < window:
        return np.array([]), np.array([]), np.array([])
    skip = summary["frames"] // max(1, summary["agent_steps"])
    steps = np.array([g.global_step for g in games], dtype=float)
    returns = np.convolve([g.ret for g in games], np.ones(window) / window, mode="valid")
    clock_steps, clock_seconds = training_clock(metrics.progress, cell["segments"])
    seconds = np.interp(steps, clock_steps, clock_seconds)
    frames = steps * summary["learners"] * skip
    return frames[window - 1:], seconds[window - 1:], returns


def monitor_curve(folder: str | Path, window: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames, seconds, mean raw return of the last ``window`` games) of a Stable-Baselines3 run, read from its
    ``*.monitor.csv`` files (one per simulator; a comment line, then ``r,l,t``: a game's return, its length and
    when it ended, in seconds from the start). All simulators' games in the order they ended; a game's frames
    are the lengths of every game ended so far (the games still going are not counted, so this lags by up to
    one game per simulator). On Atari the Monitor wraps the raw ``NoFrameskip`` game: ``l`` counts emulator
    frames and ``r`` is the whole game's raw score, as galakit's rows are."""
    files = sorted(Path(folder).glob("*.monitor.csv"))
    if not files:
        raise FileNotFoundError(f"no *.monitor.csv in {folder}")
    games = np.concatenate([np.loadtxt(f, delimiter=",", skiprows=2, ndmin=2) for f in files])
    games = games[np.argsort(games[:, 2], kind="stable")]
    frames, returns = smoothed_returns(np.cumsum(games[:, 1]), games[:, 0], window)  # empty before window games
    return frames, games[window - 1:, 2] if len(frames) else np.array([]), returns


def training_clock(progress: list[dict], segments: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(learner 0's step, seconds of training so far) at each of learner 0's rows: the row's time since the start
    of its stretch, plus how long the stretches before it trained (a stopped one: until its last row)."""
    rows = sorted((r for r in progress if r["rank"] == 0), key=lambda r: r["global_step"])
    starts = sorted(s["start"] for s in segments) or [rows[0]["time"] if rows else 0.0]
    stretch = np.searchsorted(starts, [r["time"] for r in rows], side="right") - 1  # the stretch of each row
    stretch = np.maximum(stretch, 0)
    lasts = [max((r["time"] for r, k in zip(rows, stretch, strict=True) if k == i), default=starts[i])
             for i in range(len(starts))]
    before = np.concatenate([[0.0], np.cumsum(np.subtract(lasts, starts))])
    seconds = [before[k] + r["time"] - starts[k] for r, k in zip(rows, stretch, strict=True)]
    return np.array([r["global_step"] for r in rows], dtype=float), np.array(seconds)


def mean_and_spread(curves: list[tuple[np.ndarray, np.ndarray]], points: int = 200):
    """The seeds' curves on one x grid (up to where the shortest ends): x, mean, min, max."""
    curves = [(x, y) for x, y in curves if len(x)]
    if not curves:
        return (np.array([]),) * 4
    grid = np.linspace(max(x[0] for x, _ in curves), min(x[-1] for x, _ in curves), points)
    ys = np.array([np.interp(grid, x, y) for x, y in curves])
    return grid, ys.mean(0), ys.min(0), ys.max(0)


def plot_grid(out: str | Path, *, window: int = 100, anchors: dict[str, float] | None = None,
              references: dict[str, dict[str, tuple]] | None = None) -> Figure:
    """One row per game: score against frames, score against training wall-clock, frames/s per algorithm, and
    (GALA cells) the largest pairwise distance with the ε bound. ``anchors``: published scores per game, drawn
    as dotted lines (e.g. ``galakit.grids.ANCHORS[...]``). ``references``: per game, published curves by label,
    each (frames, mean score) as ``monitor_curve`` gives them, drawn in grey against frames only (another
    machine's wall-clock says nothing here) and cut where the grid's own cells end."""
    cells = load_grid(out)
    games = sorted({game for game, _ in cells})
    fig, axes = plt.subplots(len(games) or 1, 4, figsize=(18, 3.6 * max(1, len(games))), squeeze=False)
    for row, game in zip(axes, games, strict=False):
        algos = sorted(algo for g, algo in cells if g == game)
        for algo in algos:
            curves = [score_curve(c, window) for c in cells[game, algo]]
            for ax, which in ((row[0], 0), (row[1], 1)):
                x, mean, low, high = mean_and_spread([(c[which], c[2]) for c in curves])
                if which == 1:
                    x = x / 60
                ax.plot(x, mean, color=ALGO_COLORS.get(algo), lw=1.5, label=f"{algo} ({len(curves)} seed(s))")
                ax.fill_between(x, low, high, color=ALGO_COLORS.get(algo), alpha=0.2, lw=0)
        draw_references(row[0], (references or {}).get(game, {}))
        for ax, label in ((row[0], "frames"), (row[1], "training wall-clock (minutes)")):
            if anchors and game in anchors:
                ax.axhline(anchors[game], color="0.4", ls=":", lw=1, label=f"anchor {anchors[game]:g}")
            ax.set(xlabel=label, ylabel=f"raw score (mean of {window} games)", title=game)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
        rates = [[c["summary"]["frames_per_s"] for c in cells[game, a]] for a in algos]
        row[2].bar(algos, [np.mean(r) for r in rates], color=[ALGO_COLORS.get(a) for a in algos],
                   yerr=[[np.mean(r) - min(r) for r in rates], [max(r) - np.mean(r) for r in rates]])
        row[2].set(ylabel="frames/s (wall-clock)", title=f"{game}: frame rate")
        gala = cells.get((game, "gala"), [])
        if gala and gala[0]["metrics"].consensus:
            draw_consensus_readings(row[3], gala[0]["metrics"].consensus, gala[0]["summary"]["learners"])
            row[3].set_title(f"{game}: GALA learners' distances, ε bound")
        else:
            row[3].axis("off")
    fig.tight_layout()
    return fig


def draw_references(ax, curves: dict[str, tuple]) -> None:
    """Published (frames, score) curves in shades of grey, up to the frames the axes already show."""
    end = ax.get_xlim()[1] if ax.lines else None
    for i, (label, (frames, scores)) in enumerate(curves.items()):
        frames, scores = np.asarray(frames), np.asarray(scores)
        keep = frames <= end if end is not None else slice(None)
        ax.plot(frames[keep], scores[keep], color=("0.35", "0.6", "0.8")[i % 3], lw=1.2, ls="--", label=label)
