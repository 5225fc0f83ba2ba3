"""load_run: the Metrics of a run rebuilt from its directory equal, value for value and type for type, what the
live Metrics held, for every kind of run (spawned learners, one learner, the CLI, torchrun), finished or not."""

import csv
import dataclasses
import math
import pickle
import shutil
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from support import torchrun_command  # noqa: E402

import galakit  # noqa: E402
from galakit.config import Config  # noqa: E402
from galakit.io.metrics import PROGRESS_FIELDS, Metrics, MetricsWriter, read_csv  # noqa: E402
from galakit.io.rundir import RunDir  # noqa: E402
from galakit.rl.a2c import Episode  # noqa: E402
from galakit.validation import InvalidValue  # noqa: E402
from galakit.views.plots import plot_training  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def tiny(run_dir: Path, **kw) -> Config:
    base = dict(env_id="CartPole-v1", num_envs=2, num_steps=5, total_timesteps=2 * 5 * 30, log_interval=5,
                run_dir=str(run_dir), progress=False, tensorboard=False, checkpoint_interval=0)
    return Config(**{**base, **kw})


def exact(value):
    """``value`` with its type made part of it, and NaN equal to NaN: 1 and 1.0, or 0.1 and 0.1000001, differ."""
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    if dataclasses.is_dataclass(value):  # an Episode: each field typed
        return (type(value).__name__, exact(dataclasses.astuple(value)))
    if isinstance(value, (list, tuple)):
        return [exact(v) for v in value]
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    return (type(value).__name__, value)


def assert_same_run(loaded: Metrics, live: Metrics) -> None:
    """Everything the live Metrics held, in load_run's order (global step, rank), and each learner in its own."""
    ordered = live.in_step_order()
    assert loaded.run_dir == live.run_dir and loaded.checkpoint == live.checkpoint
    assert loaded.config == live.config and isinstance(loaded.config, Config)
    assert exact(loaded.episodes) == exact(ordered.episodes)
    assert exact(loaded.progress) == exact(ordered.progress)
    assert [list(r) for r in loaded.progress] == [list(r) for r in ordered.progress]  # the same keys, in order
    assert exact(loaded.consensus) == exact(live.consensus)
    for rank in {e.rank for e in live.episodes}:  # the arrival order of one learner is its own order
        assert [e for e in loaded.episodes if e.rank == rank] == [e for e in live.episodes if e.rank == rank]
        assert exact([r for r in loaded.progress if r["rank"] == rank]) == exact(
            [r for r in live.progress if r["rank"] == rank])


@pytest.fixture(scope="module")
def gala_run(tmp_path_factory):
    """A spawned GALA run of 2 learners with diagnostics; load_run is also called once while it runs."""
    run_dir = tmp_path_factory.mktemp("gala") / "run"
    run = galakit.start(tiny(run_dir, algo="gala", num_learners=2, diag_interval=5, total_timesteps=2 * 2 * 5 * 60))
    try:
        while not all(read_csv(RunDir(run_dir).learner(r).progress)[1] for r in range(2)) and not run.done:
            time.sleep(0.05)
        during = galakit.load_run(run_dir)
    except BaseException:
        run.stop()  # no learner left training
        raise
    return run.wait(), during, run_dir


@pytest.mark.processes
def test_a_spawned_gala_run_loads_as_its_live_metrics_with_the_consensus_readings(gala_run):
    live, _, run_dir = gala_run
    loaded = galakit.load_run(run_dir)
    assert_same_run(loaded, live)
    assert {e.rank for e in loaded.episodes} == {0, 1} and len(loaded.progress) == 2 * 60 // 5
    assert Path(loaded.checkpoint).parent == RunDir(run_dir).consensus_dir  # the learners' average θ̄
    # a reading waits for both learners to publish: on 2 busy cores they may finish first, leaving only the final one
    assert len(loaded.consensus) >= 1 and all(len(r["updates"]) == 2 for r in loaded.consensus)
    assert loaded.consensus[-1]["updates"] == [60, 60]                    # the last reading: both final vectors
    assert {"gossip_mixed", "gossip_rejected_total", "staleness", "step_norm"} <= set(loaded.progress[0])
    assert set(loaded.progress[0]) <= set(PROGRESS_FIELDS)               # every key a GALA row has is documented


@pytest.mark.processes
def test_a_run_loaded_while_it_runs_holds_what_each_learner_had_written(gala_run):
    live, during, _ = gala_run
    assert during.progress and during.config == live.config  # before any checkpoint: from config.json
    assert RunDir(gala_run[2]).config.is_file()
    for rank in (0, 1):  # a prefix of each learner's records: nothing invented, nothing out of order
        rows = [r for r in during.progress if r["rank"] == rank]
        assert exact(rows) == exact([r for r in live.progress if r["rank"] == rank][:len(rows)])
        games = [e for e in during.episodes if e.rank == rank]
        assert games == [e for e in live.episodes if e.rank == rank][:len(games)]
    assert exact(during.consensus) == exact(live.consensus[:len(during.consensus)])


def test_a_single_learner_run_loads_as_its_live_metrics(tmp_path):
    live = galakit.train(tiny(tmp_path / "run", log_interval=1, checkpoint_interval=10, keep_checkpoints=2))
    loaded = galakit.load_run(tmp_path / "run")
    assert_same_run(loaded, live)
    assert RunDir(tmp_path / "run").config.is_file()
    assert loaded.checkpoint.endswith("checkpoints/ckpt_000000000300.pt")  # the newest of those kept
    assert math.isnan(loaded.progress[0]["episodic_return_mean"])         # no game over after one update
    assert "staleness" not in loaded.progress[0]                          # no gossip: no gossip columns
    RunDir(tmp_path / "run").config.unlink()                              # a run from before config.json
    assert galakit.load_run(tmp_path / "run").config == live.config        # its newest checkpoint's


def test_a_cli_run_loads_as_the_metrics_train_returned_inside_it_and_as_its_files_read_by_hand(
        tmp_path, monkeypatch, capsys):
    from galakit.cli import main
    from galakit.runtime import launch

    returned = []
    real_train = launch.train

    def train_and_keep(cfg, **kw):
        returned.append(real_train(cfg, **kw))
        return returned[-1]

    monkeypatch.setattr(launch, "train", train_and_keep)  # the CLI imports it when it runs
    run_dir = tmp_path / "run"
    sigterm = signal.getsignal(signal.SIGTERM)  # galakit train makes SIGTERM stop the run; give pytest's back
    try:
        code = main(["train", "--preset", "cartpole", "--num-envs", "2", "--total-timesteps", "300", "--lr", "1e-3",
                     "--log-interval", "2", "--run-dir", str(run_dir), "--no-progress", "--no-tensorboard"])
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    assert code == 0
    loaded = galakit.load_run(run_dir)
    assert_same_run(loaded, returned[0])
    assert loaded.config.lr == 1e-3 and loaded.config.num_envs == 2  # the command line's settings
    assert loaded.summary() in capsys.readouterr().out              # what the command printed
    with open(run_dir / "progress.csv", newline="") as f:           # the file, read without galakit
        reader = csv.DictReader(f)
        raw = list(reader)
    assert reader.fieldnames == list(loaded.progress[0])
    assert raw == [{k: "" if v is None else repr(v) for k, v in row.items()} for row in loaded.progress]
    with open(run_dir / "episodes.csv", newline="") as f:
        assert [(int(r["global_step"]), float(r["return"]), int(r["length"])) for r in csv.DictReader(f)] == [
            (e.global_step, e.ret, e.length) for e in loaded.episodes]


RECORDING_LEARNER = """\
    # One learner of a torchrun job, as `galakit train` runs it, keeping what it held for the test to compare.
    import os, pickle, sys
    import galakit.runtime.torchrun as torchrun
    from galakit.cli import main

    held = {"readings": []}
    train_learner, relay_board = torchrun.train_learner, torchrun.relay_board

    def recording_train_learner(cfg, ctx, observers):
        held["metrics"], held["consensus_checkpoint"] = train_learner(cfg, ctx, observers)
        return held["metrics"], held["consensus_checkpoint"]

    def recording_relay_board(*args):
        held["board"] = relay_board(*args)
        return held["board"]

    torchrun.train_learner, torchrun.relay_board = recording_train_learner, recording_relay_board
    code = main(sys.argv[2:])
    recorder = held.pop("board").recorder
    held["readings"] = recorder.readings if recorder is not None else []
    with open(os.path.join(sys.argv[1], f"held_{os.environ['RANK']}.pkl"), "wb") as f:
        pickle.dump(held, f)
    sys.exit(code)
"""


@pytest.mark.processes
def test_a_torchrun_run_loads_as_what_its_learners_held(tmp_path):
    script = tmp_path / "recording_learner.py"
    script.write_text(textwrap.dedent(RECORDING_LEARNER))
    run_dir = tmp_path / "run"
    cmd = torchrun_command(str(script), str(tmp_path),
           "train", "--algo", "gala", "--env-id", "CartPole-v1", "--num-envs", "2", "--total-timesteps", "600",
           "--diag-interval", "5", "--log-interval", "5", "--run-dir", str(run_dir), "--no-progress",
           "--no-tensorboard")
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    held = [pickle.loads((tmp_path / f"held_{rank}.pkl").read_bytes()) for rank in range(2)]
    assert held[0]["metrics"].config == held[1]["metrics"].config
    live = Metrics(episodes=held[0]["metrics"].episodes + held[1]["metrics"].episodes,
                   progress=held[0]["metrics"].progress + held[1]["metrics"].progress,
                   consensus=held[0]["readings"], checkpoint=held[0]["consensus_checkpoint"],
                   config=held[0]["metrics"].config, run_dir=str(run_dir))
    loaded = galakit.load_run(run_dir)
    assert_same_run(loaded, live)
    assert len(loaded.consensus) >= 1 and "consensus" in loaded.checkpoint and loaded.config.num_learners == 2


def cut_last_line(path: Path) -> None:
    """Leave the last line of ``path`` half written, as a run killed while writing it does."""
    text = path.read_bytes()
    start = text.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(text[:start + (len(text) - start) // 2])


@pytest.mark.processes
def test_a_last_line_cut_short_is_left_out(gala_run, tmp_path):
    live, _, run_dir = gala_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    cut_last_line(copy / "learner_1" / "progress.csv")
    cut_last_line(copy / "learner_0" / "episodes.csv")
    cut_last_line(copy / "consensus.csv")
    loaded = galakit.load_run(copy)
    whole = galakit.load_run(run_dir)
    last_row = max(i for i, r in enumerate(whole.progress) if r["rank"] == 1)
    last_game = max(i for i, e in enumerate(whole.episodes) if e.rank == 0)
    assert exact(loaded.progress) == exact(whole.progress[:last_row] + whole.progress[last_row + 1:])
    assert loaded.episodes == whole.episodes[:last_game] + whole.episodes[last_game + 1:]
    assert exact(loaded.consensus) == exact(whole.consensus[:-1])


def test_rows_read_back_with_their_own_keys_exact_floats_ints_and_none(tmp_path):
    rows = [{"rank": 0, "global_step": 10, "update": 1, "time": 1796190810.11496, "episodic_return_mean": math.nan,
             "learning_rate": 7e-4, "value_loss": 1 / 3, "staleness": None, "grad_norm": 5e-324, "SPS": 1.0,
             "a_key_of_my_own": 12},
            {"rank": 0, "global_step": 20, "update": 2, "time": 1796190811.5, "episodic_return_mean": 21.0,
             "learning_rate": 7e-4, "value_loss": -0.0, "staleness": 3, "grad_norm": 1e300, "SPS": 2.5,
             "a_key_of_my_own": -1}]
    writer = MetricsWriter(tmp_path, tensorboard=False)
    for row in rows:
        writer.progress(row)
    writer.episode(Episode(10, 9.5, 9))
    writer.close()
    loaded = galakit.load_run(tmp_path)
    assert exact(loaded.progress) == exact(rows) and list(loaded.progress[0]) == list(rows[0])
    assert loaded.episodes == [Episode(10, 9.5, 9, 0)] and loaded.checkpoint is None and loaded.config is None


@pytest.mark.parametrize("resumed_at", [None, 10**9])
def test_a_writer_continuing_a_file_cut_short_drops_the_cut_row_first(tmp_path, resumed_at):
    row = lambda step: {"rank": 0, "global_step": step, "update": step // 10, "SPS": step / 3}  # noqa: E731
    writer = MetricsWriter(tmp_path, tensorboard=False)
    for step in (10, 20, 30):
        writer.progress(row(step))
        writer.episode(Episode(step, float(step), step))
    writer.close()
    cut_last_line(tmp_path / "progress.csv")
    cut_last_line(tmp_path / "episodes.csv")
    writer = MetricsWriter(tmp_path, tensorboard=False, resumed_at=resumed_at)  # a run continuing these files
    writer.progress(row(40))
    writer.episode(Episode(40, 40.0, 40))
    writer.close()
    loaded = galakit.load_run(tmp_path)
    assert exact(loaded.progress) == exact([row(10), row(20), row(40)])
    assert [e.global_step for e in loaded.episodes] == [10, 20, 40]


@pytest.mark.processes
def test_plot_training_draws_a_loaded_run_as_it_draws_the_live_one(gala_run):
    live, _, run_dir = gala_run

    def drawn(metrics):
        axes = plot_training(metrics, window=5)
        return [[line.get_xydata().tolist() for line in ax.get_lines()] for ax in axes]

    try:
        loaded_lines, live_lines = drawn(galakit.load_run(run_dir)), drawn(live)
    finally:
        plt.close("all")
    assert loaded_lines == live_lines and len(loaded_lines[0]) == 2 and len(loaded_lines[1]) >= 2


@pytest.mark.parametrize("what", ["missing", "file", "empty", "parent of runs"])
def test_a_path_that_is_not_a_run_directory_is_refused_in_the_one_format(tmp_path, what):
    path = tmp_path / "x"
    if what == "file":
        path.write_text("not a run")
    elif what == "empty":
        path.mkdir()
    elif what == "parent of runs":  # runs/, holding runs: load one of them
        (path / "a_run").mkdir(parents=True)
        (path / "a_run" / "progress.csv").write_text("rank,global_step\n")
    why = {"missing": "no such directory", "file": "a file"}.get(what, "no run has written there")
    with pytest.raises(InvalidValue, match=rf"^path: got '{path}' \({why}\); accepted: a run directory") as err:
        galakit.load_run(path)
    assert err.value.field == "path"


def test_the_config_file_gives_back_the_config_a_custom_graph_and_tuples_included(tmp_path):
    from galakit.gossip.topology import build_topology
    from galakit.io.runs import load_config, save_config

    cfg = Config(algo="gala", num_learners=4, topology=build_topology("exponential", 4), hidden_sizes=(32, 16),
                 slow_learners=(1,), lr=1 / 3, run_dir=str(tmp_path))
    assert save_config(cfg, tmp_path / "learner_2", rank=2, world_size=4) is None  # learner 0 writes it
    assert save_config(cfg, tmp_path / "learner_0", rank=0, world_size=4) == RunDir(tmp_path).config
    assert load_config(tmp_path) == cfg
