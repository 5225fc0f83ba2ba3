"""The paper's comparisons, measured by galakit itself: a grid of games × algorithms × seeds, one run directory per
cell, resumable, and a table of what each cell reached (``galakit reproduce``, ``galakit.reproduce``).

A grid is written to ``out/``::

    out/grid.json                the cells asked for (the grid's name, games, algorithms, seeds, overrides)
    out/<game>__<algo>__s<seed>/ one run directory per cell (galakit's layout: load_run reads it)
        segments.json            each stretch of training: start, end, CPU seconds of the learners
        summary.json             written last, atomically: the cell is finished (its row of the table)
    out/results.csv, results.md  the table, rewritten after every cell

Killed at any point, the same command continues: a cell with a ``summary.json`` for at least the steps asked is
never run again, a cell with checkpoints resumes from them (``Config.resume``), a cell with neither starts over.
Asking for more steps than a finished cell ran (``total_timesteps``) continues it from its last checkpoint.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from galakit.config import Config
from galakit.io.checkpoint import atomic_write_bytes, list_checkpoints
from galakit.io.rundir import RunDir
from galakit.validation import check_choice, fail

PAPER_GAMES = ("BeamRider", "Breakout", "Pong", "Qbert", "Seaquest", "SpaceInvaders")
# Published A2C scores at 40M frames (raw game score), to read the table against.
ANCHORS = {
    "PPO paper, A2C (Schulman et al. 2017, Table 6)":
        {"BeamRider": 3031.7, "Breakout": 303.0, "Pong": 19.7, "Qbert": 10065.7, "Seaquest": 1714.3,
         "SpaceInvaders": 744.5},
    "rl-baselines3-zoo, A2C": {"BeamRider": 2890, "Breakout": 280, "Pong": 17.3, "Qbert": 3882, "Seaquest": 1722,
                               "SpaceInvaders": 627},
}
# Scores whose first crossing (by the mean of the last 100 games) the table reports, in frames.
THRESHOLDS = {"Pong": (-10, 0, 10, 15), "Breakout": (10, 50, 100, 200), "BeamRider": (500, 1000, 2000),
              "Qbert": (500, 2000, 5000), "Seaquest": (200, 500, 1000), "SpaceInvaders": (200, 400, 600),
              "CartPole": (100, 195)}


@dataclass(frozen=True)
class Grid:
    """Games × algorithms × seeds, and the settings of each cell: ``base`` (Config fields shared by all) updated
    by ``per_algo[algo]`` (the learner count, simulators per learner, learning rate of each algorithm)."""

    name: str
    games: tuple[str, ...]
    algos: tuple[str, ...]
    seeds: tuple[int, ...]
    base: dict[str, Any]
    per_algo: dict[str, dict[str, Any]]
    eval_episodes: int = 10
    about: str = ""


# GALA cells read the learners' distances (the ε ball) every 100 updates: O(n² D) per reading, a few ms here.
ATARI = dict(preset="atari", checkpoint_interval=2000, keep_checkpoints=2, progress=True, tensorboard=True)
GRIDS = {
    "paper": Grid(
        "paper", PAPER_GAMES, ("a2c", "allreduce", "a3c", "gala"), (1, 2, 3),
        {**ATARI, "total_timesteps": 10_000_000},
        {"a2c": dict(num_learners=1, num_envs=16),
         "allreduce": dict(num_learners=4, num_envs=16), "a3c": dict(num_learners=4, num_envs=16),
         "gala": dict(num_learners=4, num_envs=16, lr=1.4e-3, diag_interval=100)},
        about="the paper's setting: 4 learners × 16 simulators (A2C: one learner × 16), 5-step rollouts, RMSProp, "
              "40M frames (10M agent steps), GALA at the official README's lr 1.4e-3; days on a CPU, hours per "
              "cell on a GPU"),
    "cpu-small": Grid(
        "cpu-small", ("Pong", "Breakout"), ("a2c", "gala", "allreduce"), (1,),
        {**ATARI, "total_timesteps": 2_500_000},
        {"a2c": dict(num_learners=1, num_envs=16),
         "gala": dict(num_learners=2, num_envs=8, lr=1.4e-3, diag_interval=100),
         "allreduce": dict(num_learners=2, num_envs=8)},
        about="what a 2-core CPU can run: 16 simulators in all, as one A2C learner or 2 learners × 8; "
              "10M frames per cell (on the project's 2-core machine 35-52 min each, Pong or Breakout: "
              "0.8k-1.2k agent steps/s)"),
    "smoke": Grid(
        "smoke", ("CartPole",), ("a2c", "gala", "allreduce"), (1,),
        dict(preset="cartpole", total_timesteps=3_000, checkpoint_interval=10, progress=False, tensorboard=False,
             log_interval=5),
        {"a2c": dict(num_learners=1, num_envs=4), "gala": dict(num_learners=2, num_envs=2, diag_interval=10),
         "allreduce": dict(num_learners=2, num_envs=2)},
        eval_episodes=2, about="CartPole at a tiny budget: checks the machinery in seconds"),
}


@dataclass(frozen=True)
class Cell:
    """One run of the grid: a game, an algorithm, a seed, and its full ``Config``."""

    game: str
    algo: str
    seed: int
    config: Config = field(compare=False)

    @property
    def name(self) -> str:
        return f"{self.game}__{self.algo}__s{self.seed}"


def env_id_of(game: str) -> str:
    """``Pong`` → ``PongNoFrameskip-v4`` (the paper's ids: no sticky actions); ``CartPole`` → ``CartPole-v1``."""
    return "CartPole-v1" if game == "CartPole" else f"{game}NoFrameskip-v4"


def grid_cells(grid: Grid, out: str | Path, overrides: dict[str, Any] | None = None) -> list[Cell]:
    """Every cell of ``grid`` with its Config (``overrides``: Config fields for every cell), validated now, so a
    bad value fails before any run starts."""
    check_fields(overrides or {})
    cells = []
    for game in grid.games:
        for algo in grid.algos:
            for seed in grid.seeds:
                fields = {**grid.base, **grid.per_algo[algo], **(overrides or {})}
                preset = fields.pop("preset")
                name = f"{game}__{algo}__s{seed}"
                cfg = Config.preset(preset, env_id=env_id_of(game), algo=algo, seed=seed,
                                    run_dir=str(Path(out) / name), **fields)
                cells.append(Cell(game, algo, seed, cfg))
    return cells


def check_fields(overrides: dict[str, Any]) -> None:
    """Every override names a Config field (with the closest one suggested)."""
    import dataclasses
    import difflib

    fields = [f.name for f in dataclasses.fields(Config)]
    for name, value in overrides.items():
        if name not in fields:
            close = difflib.get_close_matches(name, fields, n=1)
            fail(name, value, "a field of galakit.Config" + (f" (did you mean {close[0]}?)" if close else ""),
                 "not a Config field")


def select(grid: Grid, games=None, algos=None, seeds=None) -> Grid:
    """The grid restricted to some games, algorithms or seeds (each checked against the grid's own)."""
    games = tuple(games or grid.games)
    algos = tuple(algos or grid.algos)
    for game in games:
        check_choice("games", game, (*PAPER_GAMES, "CartPole"))
    for algo in algos:
        check_choice("algos", algo, tuple(grid.per_algo))
    seeds = tuple(int(s) for s in (seeds or grid.seeds))
    return Grid(grid.name, games, algos, seeds, grid.base, grid.per_algo, grid.eval_episodes, grid.about)


def reproduce(grid: str | Grid = "cpu-small", out: str | Path = "runs/reproduce", *, games=None, algos=None,
              seeds=None, eval_episodes: int | None = None, **overrides: Any) -> list[dict]:
    """Run every cell of ``grid`` not yet finished into ``out/`` and return the table (one dict per cell).

    ``grid``: a name of ``GRIDS`` ("paper", "cpu-small", "smoke") or a ``Grid``; ``games``/``algos``/``seeds``
    pick part of it; ``overrides`` are Config fields for every cell (``total_timesteps=...``, ``lr=...``).
    """
    if isinstance(grid, str):
        check_choice("grid", grid, tuple(GRIDS))
        grid = GRIDS[grid]
    grid = select(grid, games, algos, seeds)
    cells = grid_cells(grid, out, overrides)  # every Config checked before the first run starts
    episodes = grid.eval_episodes if eval_episodes is None else eval_episodes
    Path(out).mkdir(parents=True, exist_ok=True)
    _write_json(Path(out) / "grid.json", {"grid": grid.name, "games": grid.games, "algos": grid.algos,
                                          "seeds": grid.seeds, "overrides": overrides, "about": grid.about})
    for i, cell in enumerate(cells):
        print(f"[{i + 1}/{len(cells)}] {cell.name}: {run_cell(cell, episodes)}", flush=True)
        write_table(out, collect(out))
    return collect(out)


def run_cell(cell: Cell, eval_episodes: int) -> str:
    """Train (or continue) one cell, score its final model, write its summary; what was done, in words."""
    folder = Path(cell.config.run_dir)
    check_same_settings(folder, cell.config)
    if finished(folder, cell.config):
        return "finished before, not run again"
    resumable = has_checkpoints(folder, cell.config.num_learners)
    if folder.exists() and not resumable:
        shutil.rmtree(folder)  # no checkpoint: nothing to continue from; this folder is the grid's own
    cfg = cell.config.replace(resume=str(folder)) if resumable else cell.config
    metrics = train_segment(cfg, folder)
    summary = summarize(cell, folder, eval_episodes, metrics.checkpoint)
    _write_json(folder / "summary.json", summary)
    return ("resumed and finished" if resumable else "finished") + \
        f": mean raw return {summary['final_return_100']:.1f}, {summary['frames_per_s']:.0f} frames/s"


# what may differ between a cell's earlier stretches and now: how long, and how it is shown and saved
MAY_CHANGE = ("total_timesteps", "run_dir", "run_name", "resume", "progress", "log_interval", "tensorboard",
              "checkpoint_interval", "keep_checkpoints")


def check_same_settings(folder: Path, cfg: Config) -> None:
    """A cell already in ``out`` must have been run with the settings asked now (else: another ``out``)."""
    saved = folder / "config.json"
    if not saved.is_file():
        return
    theirs, ours = json.loads(saved.read_text()), cfg.to_dict()
    for name, value in ours.items():
        if name not in MAY_CHANGE and name in theirs and theirs[name] != json.loads(json.dumps(value)):
            fail(name, value, f"{theirs[name]!r}, as cell {folder.name} was run in {folder.parent} (a grid continues "
                 "with its cells' settings; use another --out for other ones)")


def finished(folder: Path, cfg: Config) -> bool:
    path = folder / "summary.json"
    return path.is_file() and json.loads(path.read_text())["agent_steps_asked"] >= cfg.total_timesteps


def has_checkpoints(folder: Path, num_learners: int) -> bool:
    """Whether every learner of the cell has saved a checkpoint to continue from."""
    learners = RunDir(folder).learners()
    return len(learners) == num_learners and all(list_checkpoints(d.checkpoints) for d in learners)


def train_segment(cfg: Config, folder: Path):
    """``galakit.train(cfg)``, recording the stretch in ``segments.json``: start, end, and the CPU seconds used
    by this process and every learner process it started (sampled once a second)."""
    from galakit.runtime.launch import train

    segments = read_segments(folder)
    folder.mkdir(parents=True, exist_ok=True)
    segment = {"start": time.time(), "end": None, "cpu_s": None, "cores": len(os.sched_getaffinity(0))}
    _write_json(folder / "segments.json", [*segments, segment])
    meter = CpuMeter()
    with meter:
        metrics = train(cfg)
    segment.update(end=time.time(), cpu_s=meter.seconds, gpu_util=meter.gpu_util)
    _write_json(folder / "segments.json", [*segments, segment])
    return metrics


def read_segments(folder: Path) -> list[dict]:
    path = folder / "segments.json"
    return json.loads(path.read_text()) if path.is_file() else []


class CpuMeter:
    """CPU seconds of this process and all its descendants while it runs (psutil, sampled every ``every`` s: a
    learner's last fraction of a second before it exits is missed); GPU utilisation (%) when CUDA is present."""

    def __init__(self, every: float = 1.0):
        self.every, self.seen, self.gpu = every, {}, []
        self._stop = threading.Event()

    def __enter__(self) -> CpuMeter:
        import psutil

        self.root = psutil.Process()
        self._sample()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="galakit-cpu-meter")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def seconds(self) -> float:
        return float(sum(self.seen.values()) - self.first)

    @property
    def gpu_util(self) -> float | None:
        return float(np.mean(self.gpu)) if self.gpu else None

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def _sample(self) -> None:
        import psutil

        for proc in [self.root, *self.root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            self.seen[proc.pid] = times.user + times.system
        if not hasattr(self, "first"):
            self.first = sum(self.seen.values())
        self.gpu += _gpu_utilisation()


def _gpu_utilisation() -> list[float]:
    import torch

    if not torch.cuda.is_available():
        return []
    try:
        return [float(torch.cuda.utilization(d)) for d in range(torch.cuda.device_count())]
    except Exception:  # needs pynvml; without it the table says "-"
        return []


def summarize(cell: Cell, folder: Path, eval_episodes: int, checkpoint: str | None) -> dict:
    """One row of the table, from the run directory (``load_run``) and a fresh evaluation of its final model."""
    from galakit.io.runs import load_run
    from galakit.rl.envs import is_atari
    from galakit.rl.evaluate import evaluate

    metrics = load_run(folder)
    cfg = cell.config
    skip = 4 if is_atari(cfg.env_id) else 1
    steps = max((r["global_step"] for r in metrics.progress), default=0) * cfg.num_learners
    segments = read_segments(folder)
    wall = sum(segment_seconds(s, metrics) for s in segments)
    measured = [s for s in segments if s["end"] is not None]
    cpu = sum(s["cpu_s"] for s in measured) / max(1e-9, sum((s["end"] - s["start"]) * s["cores"] for s in measured))
    gpu = [s["gpu_util"] for s in measured if s.get("gpu_util") is not None]
    scores = evaluate(checkpoint, episodes=eval_episodes) if eval_episodes else np.array([])
    distances = [r["max_pairwise_distance"] for r in metrics.consensus]
    row = {"game": cell.game, "algo": cell.algo, "seed": cell.seed, "learners": cfg.num_learners,
           "envs_per_learner": cfg.num_envs, "agent_steps_asked": cfg.total_timesteps, "agent_steps": steps,
           "frames": steps * skip, "wall_s": round(wall, 1), "frames_per_s": steps * skip / max(wall, 1e-9),
           "frames_per_s_steady": steady_rate(metrics.progress) * skip,
           "cpu_util": round(cpu, 3), "gpu_util": float(np.mean(gpu)) if gpu else None,
           "final_return_100": metrics.mean_return(100), "games": len(metrics.episodes),
           "eval_return": float(np.mean(scores)) if len(scores) else None, "eval_games": len(scores),
           "consensus_max_distance_mean": float(np.mean(distances)) if distances else None,
           "consensus_max_distance_last": distances[-1] if distances else None,
           "segments": len(segments)}
    for threshold, frames in frames_to_reach(metrics.in_step_order().episodes, THRESHOLDS.get(cell.game, ()),
                                             cfg.num_learners, skip).items():
        row[f"frames_to_{threshold:g}"] = frames
    return row


def steady_rate(progress: list[dict]) -> float:
    """Agent steps/s of all learners together once running: the sum over learners of each one's median SPS
    (the wall-clock rate, ``frames_per_s``, also counts starting the processes and building the simulators)."""
    ranks = {r["rank"] for r in progress}
    return float(sum(np.median([r["SPS"] for r in progress if r["rank"] == rank]) for rank in ranks))


def segment_seconds(segment: dict, metrics) -> float:
    """A stretch's wall-clock: start to end, or, for one that was killed, start to its last progress row."""
    if segment["end"] is not None:
        return segment["end"] - segment["start"]
    times = [r["time"] for r in metrics.progress if r["time"] >= segment["start"]]
    return max(times) - segment["start"] if times else 0.0


def frames_to_reach(episodes, thresholds, num_learners: int, frame_skip: int, window: int = 100) -> dict:
    """For each threshold, the frames (over all learners) at which the mean raw return of the last ``window``
    games (all learners' games in step order) first reached it; None if never. A game's frame count is its
    learner's step × ``num_learners`` × ``frame_skip`` (learners advance at about the same pace)."""
    returns = np.array([e.ret for e in episodes], dtype=float)
    frames = np.array([e.global_step for e in episodes], dtype=np.int64) * num_learners * frame_skip
    if len(returns) < window:  # too few games for a full window: the mean of all of them, at the last
        return first_reach(frames[-1:], [returns.mean()] if len(returns) else [], thresholds)
    return first_reach(frames[window - 1:], np.convolve(returns, np.ones(window) / window, mode="valid"), thresholds)


def first_reach(frames, running_mean, thresholds) -> dict:
    """For each threshold, the first of ``frames`` where ``running_mean`` (one value per frame count) reached
    it, as an int; None if never. Shared by galakit's cells and the published curves they are read against."""
    frames, running_mean = np.asarray(frames), np.asarray(running_mean)
    found = {}
    for threshold in thresholds:
        reached = np.flatnonzero(running_mean >= threshold)
        found[threshold] = int(frames[reached[0]]) if len(reached) else None
    return found


def collect(out: str | Path) -> list[dict]:
    """Every finished cell's row, in the order of the folder names."""
    return [json.loads(p.read_text()) for p in sorted(Path(out).glob("*/summary.json"))]


def export_cells(out: str | Path, dest: str | Path, every: int = 10) -> list[str]:
    """Copy each finished cell of grid ``out`` to ``dest`` without what is large (checkpoints, TensorBoard
    events), keeping every ``every``-th row of the progress files (and the last): what ``load_grid`` and
    ``plot_grid`` read, small enough to commit. A cell already in ``dest`` is replaced; the table is rebuilt
    from every cell there. Returns the cells copied."""
    copied = []
    for summary in sorted(Path(out).glob("*/summary.json")):
        cell, target = summary.parent, Path(dest) / summary.parent.name
        shutil.rmtree(target, ignore_errors=True)
        for path in sorted(cell.rglob("*")):
            inside = path.relative_to(cell)
            if path.suffix not in (".csv", ".json") or {"checkpoints", "consensus"} & set(inside.parts[:-1]):
                continue
            lines = path.read_text().splitlines(keepends=True)
            if path.name == "progress.csv" and len(lines) > 2:
                lines = lines[:1] + lines[1:-1][::every] + lines[-1:]
            (target / inside).parent.mkdir(parents=True, exist_ok=True)
            (target / inside).write_text("".join(lines))
        copied.append(cell.name)
    write_table(dest, collect(dest))
    return copied


COLUMNS = ("game", "algo", "seed", "learners", "envs_per_learner", "frames", "wall_s", "frames_per_s",
           "frames_per_s_steady", "cpu_util",
           "gpu_util", "final_return_100", "eval_return", "consensus_max_distance_mean")


def write_table(out: str | Path, rows: list[dict]) -> None:
    """``results.csv`` (every key of every row) and ``results.md`` (the main columns and the thresholds)."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with open(Path(out) / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    # games have their own thresholds (Pong −10 … 15, Breakout 10 … 200): one column each, in score order
    thresholds = sorted((k for k in keys if k.startswith("frames_to_")), key=lambda k: float(k[len("frames_to_"):]))
    header = [*COLUMNS, *thresholds]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell_text(row.get(k)) for k in header) + " |" for row in rows]
    (Path(out) / "results.md").write_text("\n".join(lines) + "\n")


def _cell_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) and abs(value) >= 10_000 else str(value)


def _write_json(path: Path, value: Any) -> None:
    text = json.dumps(value, indent=1, default=str).encode()
    atomic_write_bytes(path, lambda f: f.write(text))


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["lr=1e-3", "sync_freq=None"]`` → Config fields (values read as JSON, else as text)."""
    found = {}
    for pair in pairs:
        if "=" not in pair:
            fail("set", pair, "FIELD=VALUE, e.g. lr=1e-3")
        key, text = pair.split("=", 1)
        try:
            found[key] = json.loads(text.replace("None", "null"))
        except json.JSONDecodeError:
            found[key] = text
    return found
