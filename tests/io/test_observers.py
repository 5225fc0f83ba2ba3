"""Observers: one seam for everything that watches a run (progress, logs, a user's own), in process and across
processes."""

import csv
import io
import random
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from support import tiny_config

import galakit
from galakit.config import Config
from galakit.io.checkpoint import load_checkpoint
from galakit.io.observers import Observer, Progress, RunInfo

pytestmark = pytest.mark.processes


class Recorder(Observer):
    """Keeps every event, in the order it came."""

    def __init__(self):
        self.events = []

    def on_start(self, info):
        self.events.append(("start", info))

    def on_episode(self, episode):
        self.events.append(("episode", episode))

    def on_update(self, row):
        self.events.append(("row", row))

    def on_consensus(self, reading):
        self.events.append(("consensus", reading))

    def on_end(self, metrics):
        self.events.append(("end", metrics))

    def of(self, kind):
        return [payload for k, payload in self.events if k == kind]


def tiny(tmp_path, **kw) -> Config:
    return tiny_config(tmp_path, **{**dict(total_timesteps=2 * 2 * 5 * 60, log_interval=5), **kw})


def episodes_on_disk(learner_dir: Path) -> list[tuple[int, float, int]]:
    with open(learner_dir / "episodes.csv", newline="") as f:
        return [(int(r["global_step"]), float(r["return"]), int(r["length"])) for r in csv.DictReader(f)]


def test_an_observer_gets_every_row_episode_and_reading_of_a_two_learner_run_in_order_per_learner(tmp_path):
    spy = Recorder()
    metrics = galakit.train(tiny(tmp_path, algo="gala", num_learners=2, diag_interval=5), observers=[spy])
    kinds = [k for k, _ in spy.events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("start") == kinds.count("end") == 1
    info = spy.of("start")[0]
    assert isinstance(info, RunInfo) and info.num_learners == 2 and info.run_dir == metrics.run_dir
    assert spy.of("end")[0] is metrics
    assert spy.of("row") == metrics.progress and len(metrics.progress) == 2 * 60 // 5  # one row per 5 updates each
    assert spy.of("consensus") == metrics.consensus and len(metrics.consensus) >= 1
    for rank in (0, 1):
        rows = [r for r in spy.of("row") if r["rank"] == rank]
        assert [r["update"] for r in rows] == list(range(5, 61, 5))  # every row, in the learner's order
        games = [e for e in spy.of("episode") if e.rank == rank]
        learner_dir = Path(metrics.run_dir) / f"learner_{rank}"
        # every game the learner finished, in its order: its own CSV and its last checkpoint say the same
        assert [(e.global_step, e.ret, e.length) for e in games] == episodes_on_disk(learner_dir)
        saved = load_checkpoint(learner_dir)["episodes"]
        assert [(e.global_step, e.ret, e.length) for e in games] == [tuple(e) for e in saved]
        assert len(games) > 10
        # a game reaches the observers before the row that counts it
        for row in rows:
            before = [e for k, e in spy.events[:spy.events.index(("row", row))] if k == "episode" and e.rank == rank]
            assert len(before) == row["episodes"]
    assert sorted(spy.of("episode"), key=id) == sorted(metrics.episodes, key=id)


def test_an_observer_of_a_learner_in_this_process_gets_the_same_events(tmp_path):
    spy = Recorder()
    metrics = galakit.train(tiny(tmp_path, total_timesteps=2 * 5 * 40), observers=[spy])
    assert [k for k, _ in spy.events][0] == "start" and spy.events[-1] == ("end", metrics)
    assert spy.of("row") == metrics.progress and [r["update"] for r in metrics.progress] == list(range(5, 41, 5))
    assert spy.of("episode") == metrics.episodes
    assert [(e.global_step, e.ret, e.length) for e in spy.of("episode")] == episodes_on_disk(Path(metrics.run_dir))


class Failing(Observer):
    def on_update(self, row):
        raise RuntimeError("the dashboard broke")


@pytest.mark.parametrize("num_learners", [1, 2])
def test_an_observer_that_fails_stops_the_run_with_its_error(tmp_path, num_learners):
    with pytest.raises(RuntimeError, match="the dashboard broke"):
        galakit.train(tiny(tmp_path, algo="gala", num_learners=num_learners, total_timesteps=10**7),
                      observers=[Failing()])


def test_observers_must_be_observers(tmp_path):
    with pytest.raises(ValueError, match=r"^observers: got .*; accepted: galakit.Observer instances"):
        galakit.train(tiny(tmp_path), observers=[print])


def test_without_a_terminal_progress_is_a_readable_line_not_a_bar(tmp_path):
    out = io.StringIO()
    galakit.train(tiny(tmp_path, algo="gala", num_learners=2, diag_interval=5, total_timesteps=2 * 2 * 5 * 20),
                  observers=[Progress(stream=out)])
    lines = out.getvalue().splitlines()
    # one per log_interval of the run (short runs), and one more at the end if a consensus reading came after it
    assert len(lines) in (20 // 5, 20 // 5 + 1) and len(set(lines)) == len(lines)
    # steps summed over the learners' newest rows, of the run's total (2 learners × 20 updates × 10 steps)
    assert re.match(r"^step \d+/400 \| SPS \d+ \| return [\d.]+ \| policy_loss .* \| value_loss ", lines[0])
    assert lines[-1].startswith("step 400/400") and "| consensus " in lines[-1]
    assert "\r" not in out.getvalue()


def test_train_in_this_process_gives_the_caller_its_threads_and_random_generators_back(tmp_path):
    torch.set_num_threads(1)
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    expected = (random.random(), np.random.random(), torch.rand(1).item())
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    galakit.train(tiny(tmp_path, total_timesteps=2 * 5 * 10, torch_threads=2))
    assert torch.get_num_threads() == 1
    assert (random.random(), np.random.random(), torch.rand(1).item()) == expected


def test_start_returns_a_handle_and_train_has_no_background_flag(tmp_path):
    run = galakit.start(tiny(tmp_path, total_timesteps=2 * 5 * 20))
    assert isinstance(run, galakit.Run)
    metrics = run.wait()
    assert metrics.progress[-1]["global_step"] == 2 * 5 * 20
    with pytest.raises(ValueError, match="background"):
        galakit.train(tiny(tmp_path / "b"), background=True)


def test_an_observer_attached_to_a_running_run_gets_what_comes_after(tmp_path):
    run = galakit.start(tiny(tmp_path, algo="gala", num_learners=2, total_timesteps=2 * 2 * 5 * 200))
    while not run.metrics.progress:
        assert run.error is None
        time.sleep(0.05)
    spy = Recorder()
    run.attach(spy)
    metrics = run.wait()
    assert spy.events[0][0] == "start" and spy.events[-1] == ("end", metrics)
    rows = spy.of("row")
    assert rows and rows == metrics.progress[len(metrics.progress) - len(rows):]  # every row after it came


def test_a_long_run_prints_about_forty_lines_and_always_the_last_step():
    cfg = Config(num_learners=1, total_timesteps=16 * 5 * 10_000, log_interval=10)  # 1000 rows
    out = io.StringIO()
    progress = Progress(stream=out)
    progress.on_start(RunInfo(cfg, "runs/x", 1))
    for update in range(10, 9_991, 10):  # a run stopped one row before its end
        progress.on_update({"rank": 0, "global_step": update * 80, "SPS": 1000.0, "episodic_return_mean": 1.0})
    progress.on_end(None)
    lines = out.getvalue().splitlines()
    assert 35 <= len(lines) <= 45 and lines[-1].startswith("step 799200/800000 | SPS 1000 | return 1.00")
    assert len(set(lines)) == len(lines)
