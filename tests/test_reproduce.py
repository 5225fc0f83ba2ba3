"""``galakit reproduce``: a grid of runs that a kill cannot spoil: finished cells are never run again, a stopped
one continues from its checkpoints, and the table is rebuilt from the cells' own files."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import galakit
from galakit.grids import GRIDS, export_cells, frames_to_reach, grid_cells, write_table
from galakit.rl.a2c import Episode
from galakit.views.results import load_grid, monitor_curve, plot_grid, score_curve

CELLS = ("CartPole__a2c__s1", "CartPole__gala__s1", "CartPole__allreduce__s1")


def reproduce_command(out: Path) -> list[str]:
    return [sys.executable, "-m", "galakit.cli", "reproduce", "--grid", "smoke", "--out", str(out)]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout:.0f}s for {what}"
        time.sleep(0.2)


@pytest.mark.processes
def test_a_killed_grid_continues_where_it_stopped_and_never_reruns_a_finished_cell(tmp_path):
    out = tmp_path / "grid"
    grid = subprocess.Popen(reproduce_command(out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        first = out / CELLS[0] / "summary.json"
        second = [out / CELLS[1] / f"learner_{rank}" / "checkpoints" for rank in (0, 1)]
        wait_for(lambda: all(d.is_dir() and any(d.glob("ckpt_*.pt")) for d in second), 240,
                 "a checkpoint of each learner of the second cell")
        os.killpg(grid.pid, signal.SIGKILL)  # the grid and its learners, mid-cell, no chance to save or clean up
    finally:
        grid.wait()
    assert first.is_file() and not (out / CELLS[1] / "summary.json").exists()
    written = first.stat().st_mtime_ns
    again = subprocess.run(reproduce_command(out), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    lines = [line for line in again.stdout.splitlines() if line.startswith("[")]
    assert lines[0] == f"[1/3] {CELLS[0]}: finished before, not run again"
    assert lines[1].startswith(f"[2/3] {CELLS[1]}: resumed and finished")
    assert lines[2].startswith(f"[3/3] {CELLS[2]}: finished")
    assert first.stat().st_mtime_ns == written
    rows = [json.loads((out / c / "summary.json").read_text()) for c in CELLS]
    assert [r["agent_steps"] for r in rows] == [3000, 3000, 3000]
    assert rows[1]["segments"] == 2 and rows[1]["consensus_max_distance_last"] is not None
    assert all(r["eval_games"] == 2 and r["wall_s"] > 0 and 0 < r["cpu_util"] <= 1.05 for r in rows)
    table = (out / "results.md").read_text().splitlines()
    assert len(table) == 2 + 3 and all(f"| CartPole | {algo} |" in "\n".join(table) for algo in GRIDS["smoke"].algos)
    # the figures read the cells back: each game's score against frames and training seconds, never backwards
    cells = load_grid(out)
    assert sorted(cells) == sorted(("CartPole", algo) for algo in GRIDS["smoke"].algos)
    frames, seconds, returns = score_curve(cells["CartPole", "gala"][0], window=5)
    assert len(frames) == len(seconds) == len(returns) > 0 and frames[-1] <= 3000
    assert (np.diff(frames) >= 0).all() and (np.diff(seconds) >= 0).all() and seconds[-1] <= rows[1]["wall_s"]
    published = {"CartPole": {"published": (np.array([0, 1500, 9000]), np.array([10.0, 50.0, 200.0]))}}
    fig = plot_grid(out, window=5, references=published)
    assert len(fig.axes) == 4
    drawn = [line for line in fig.axes[0].lines if line.get_label() == "published"]
    assert len(drawn) == 1 and list(drawn[0].get_xdata()) == [0, 1500]  # cut where the grid's cells end
    # a copy without checkpoints reads back the same
    export_cells(out, tmp_path / "kept", every=3)
    assert not list((tmp_path / "kept").rglob("*.pt")) and (tmp_path / "kept" / "results.md").is_file()
    kept = load_grid(tmp_path / "kept")
    assert [c["summary"] for c in kept["CartPole", "gala"]] == [c["summary"] for c in cells["CartPole", "gala"]]
    assert np.array_equal(score_curve(kept["CartPole", "gala"][0], window=5)[0], frames)
    # asking for more steps continues a finished cell from its last checkpoint
    more = subprocess.run([*reproduce_command(out), "--algos", "a2c", "--total-timesteps", "4000"],
                          capture_output=True, text=True, timeout=300)
    assert f"{CELLS[0]}: resumed and finished" in more.stdout, more.stdout + more.stderr
    assert json.loads(first.read_text())["agent_steps"] == 4000
    # other settings for a cell already there are refused, before anything runs
    other = subprocess.run([*reproduce_command(out), "--algos", "a2c", "--set", "lr=0.01"], capture_output=True,
                           text=True, timeout=120)
    assert other.returncode == 2 and "lr: got 0.01; accepted: 0.0007, as cell CartPole__a2c__s1" in other.stderr


def test_frames_to_reach_a_score_use_the_running_mean_over_all_learners():
    games = [Episode(global_step=100 * i, ret=float(i), length=1) for i in range(1, 11)]
    found = frames_to_reach(games, (2.0, 5.5, 99), num_learners=2, frame_skip=4, window=4)
    # means of the last 4 games: 2.5 at the 4th game (step 400), 5.5 at the 7th (step 700)
    assert found == {2.0: 400 * 2 * 4, 5.5: 700 * 2 * 4, 99: None}


def test_the_table_has_one_column_per_threshold_in_score_order(tmp_path):
    pong = {"cell": "Pong__a2c__s1", "frames_to_-10": 1, "frames_to_0": 2, "frames_to_10": 3, "frames_to_15": 4}
    breakout = {"cell": "Breakout__a2c__s1", "frames_to_10": 5, "frames_to_50": 6, "frames_to_100": 7}
    write_table(tmp_path, [breakout, pong])  # the order the grid lists its cells
    header = (tmp_path / "results.md").read_text().splitlines()[0]
    columns = [c.strip() for c in header.strip("|").split("|") if c.strip().startswith("frames_to_")]
    assert columns == ["frames_to_-10", "frames_to_0", "frames_to_10", "frames_to_15", "frames_to_50",
                       "frames_to_100"]


def test_a_published_runs_monitor_files_give_its_curve_in_the_order_games_ended(tmp_path):
    # two simulators' Monitor files (SB3: a JSON comment line, then r,l,t); games end interleaved in time
    (tmp_path / "0.monitor.csv").write_text('#{"t_start": 0}\nr,l,t\n1.0,100,1.0\n3.0,300,3.0\n')
    (tmp_path / "1.monitor.csv").write_text('#{"t_start": 0}\nr,l,t\n2.0,200,2.0\n4.0,400,4.0\n')
    frames, seconds, means = monitor_curve(tmp_path, window=2)
    assert list(frames) == [300, 600, 1000]  # every game's frames, in the order the games ended
    assert list(seconds) == [2.0, 3.0, 4.0] and list(means) == [1.5, 2.5, 3.5]
    with pytest.raises(FileNotFoundError, match="monitor.csv"):
        monitor_curve(tmp_path / "nothing")


def test_every_cell_of_the_paper_grid_is_a_valid_config_of_the_papers_setting(tmp_path):
    cells = grid_cells(GRIDS["paper"], tmp_path)
    assert len(cells) == 6 * 4 * 3
    gala = [c.config for c in cells if c.algo == "gala"]
    assert all(c.num_learners == 4 and c.num_envs == 16 and c.num_steps == 5 and c.total_timesteps == 10_000_000
               and c.env_id.endswith("NoFrameskip-v4") and c.diag_interval > 0 for c in gala)
    assert all(c.config.diag_interval > 0 for c in grid_cells(GRIDS["cpu-small"], tmp_path) if c.algo == "gala")
    assert len({c.config.run_dir for c in cells}) == len(cells)
    assert not any(tmp_path.iterdir())  # building the grid starts nothing and writes nothing


@pytest.mark.parametrize(("args", "message"), [
    (["--games", "Pongg"], "games: got 'Pongg'; accepted: 'BeamRider'"),
    (["--algos", "ppo"], "algos: got 'ppo'; accepted: "),
    (["--set", "lr=-1"], "lr: got -1; accepted: "),
    (["--set", "lr"], "set: got 'lr'; accepted: FIELD=VALUE"),
    (["--set", "learning_rate=0.1"], "learning_rate"),
])
def test_bad_values_are_refused_before_anything_runs_or_is_written(tmp_path, capsys, args, message):
    from galakit.cli import main

    assert main(["reproduce", "--grid", "smoke", "--out", str(tmp_path / "grid"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "grid").exists()


def test_reproduce_is_public():
    assert galakit.reproduce.__module__ == "galakit.grids" and "cpu-small" in galakit.GRIDS
