"""Several learner processes: gossip reaches consensus, AllReduce keeps learners identical, asynchrony,
clean shutdown and errors, torchrun, and learning CartPole with GALA, AllReduce and A3C."""

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from support import default_sigint, final_params, initial_params, torchrun_command
from support import tiny_config as cfg

import galakit
from galakit.config import Config
from galakit.io.checkpoint import list_checkpoints, load_checkpoint
from galakit.rl.models import initial_model
from galakit.runtime.launch import LearnerError

pytestmark = pytest.mark.processes  # every test here starts learner processes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def max_pairwise(params: torch.Tensor) -> float:
    return float(torch.cdist(params, params).max().detach())


def children_of(pid: int) -> list[int]:
    """Learner processes started by ``pid`` (spawned children; not multiprocessing's resource tracker)."""
    out = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "spawn_main" in line]


TRANSPORTS = ["shared_memory", "gloo"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("topology", ["ring", "one_peer_exponential"])
def test_gossip_drives_learners_with_different_initial_parameters_to_consensus(tmp_path, topology, transport):
    c = cfg(tmp_path, algo="gala", num_learners=4, topology=topology, lr=0.0, identical_init=False,
            total_timesteps=4 * 2 * 5 * 400, gossip_transport=transport)
    galakit.train(c)
    first = initial_params(c, 4)
    assert max_pairwise(first) > 1.0
    assert max_pairwise(final_params(c.run_dir, 4)) < 1e-5


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_synchronous_doubly_stochastic_gossip_preserves_the_average(tmp_path, transport):
    c = cfg(tmp_path, algo="gala", num_learners=4, topology="ring", sync_freq=0, lr=0.0, identical_init=False,
            total_timesteps=4 * 2 * 5 * 100, gossip_transport=transport)
    galakit.train(c)
    first = initial_params(c, 4)
    last = final_params(c.run_dir, 4)
    assert max_pairwise(last) < 1e-5
    assert torch.allclose(last.mean(0), first.mean(0), atol=1e-6)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_asynchronous_push_sum_reaches_the_average_without_losing_mass(tmp_path, transport):
    c = cfg(tmp_path, algo="gala", num_learners=4, topology="one_peer_exponential", push_sum=True, lr=0.0,
            identical_init=False, total_timesteps=4 * 2 * 5 * 300, gossip_transport=transport)
    galakit.train(c)
    first = initial_params(c, 4)
    last = final_params(c.run_dir, 4)
    assert max_pairwise(last) < 1e-4
    assert torch.allclose(last.mean(0), first.mean(0), atol=1e-4)


def test_same_seed_gives_every_learner_the_same_initial_parameters(tmp_path):
    c = cfg(tmp_path, algo="a2c", num_learners=3, lr=0.0, total_timesteps=3 * 2 * 5 * 3)
    galakit.train(c)
    params = final_params(c.run_dir, 3)
    assert max_pairwise(params) == 0.0
    assert torch.equal(params[0], torch.nn.utils.parameters_to_vector(initial_model(c, 0, (4,), 2).parameters()))


def test_allreduce_keeps_learners_identical_after_every_update(tmp_path):
    updates = 12
    c = cfg(tmp_path, algo="allreduce", num_learners=2, total_timesteps=2 * 2 * 5 * updates, checkpoint_interval=1,
            keep_checkpoints=100, lr=1e-2)
    galakit.train(c)
    per_learner = [list_checkpoints(f"{c.run_dir}/learner_{r}/checkpoints") for r in range(2)]
    assert len(per_learner[0]) == len(per_learner[1]) == updates
    for a, b in zip(*per_learner, strict=True):
        pa = torch.cat([p.flatten() for p in load_checkpoint(a)["model"].values()])
        pb = torch.cat([p.flatten() for p in load_checkpoint(b)["model"].values()])
        assert torch.allclose(pa, pb, atol=1e-6)
    first = torch.nn.utils.parameters_to_vector(initial_model(c, 0, (4,), 2).parameters())
    assert not torch.allclose(pa, first)  # they did learn


def _last_row(tmp_path, name, **kw) -> dict:
    """The last progress row of learner 1 (never slowed) in a 2-learner GALA run."""
    c = cfg(tmp_path / name, algo="gala", num_learners=2, total_timesteps=2 * 2 * 5 * 400, log_interval=400,
            torch_threads=1, **kw)
    return [r for r in galakit.train(c).progress if r["rank"] == 1][-1]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_slow_learner_slows_the_others_only_when_gossip_must_wait(tmp_path, transport):
    # Counted, not timed (this VM's speed drifts by tens of percent from one minute to the next): learner 1 never
    # waits for its 20-times-slower in-peer unless sync_freq bounds the skips (sync_freq=1: it waits after each skip).
    free_row = _last_row(tmp_path, "free", slow_learners=(0,), slowdown=20.0, gossip_transport=transport)
    bound_row = _last_row(tmp_path, "bound", slow_learners=(0,), slowdown=20.0, sync_freq=1,
                          gossip_transport=transport)
    # the free learner skipped mixing (its in-peer's message was not there) and never waited
    assert free_row["gossip_skipped_total"] > 0.5 * free_row["update"]
    assert free_row["gossip_waits_total"] == 0
    # the bound one waited for its slow in-peer after each skip
    assert bound_row["gossip_waits_total"] > 0.3 * bound_row["update"]


def test_a_learner_that_raises_stops_the_run_with_its_rank_and_traceback(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    c = cfg(tmp_path, env_id="faulty_env:Faulty-v0", algo="gala", num_learners=2, total_timesteps=10**6, seed=0)
    start = time.monotonic()
    with pytest.raises(LearnerError) as err:
        galakit.train(c)
    assert err.value.rank == 1
    assert "learner 1 failed" in str(err.value) and "simulator crashed on purpose" in str(err.value)
    assert "Traceback" in str(err.value)
    assert time.monotonic() - start < 60
    assert children_of(os.getpid()) == []


SCRIPT = """
import galakit
if __name__ == "__main__":
    galakit.train(galakit.Config(env_id="CartPole-v1", algo="gala", num_learners=2, num_envs=2,
                                 total_timesteps=10**8, run_dir={run_dir!r}, progress=False, tensorboard=False))
"""


def test_sigint_to_the_parent_stops_every_learner(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(SCRIPT.format(run_dir=str(tmp_path / "run"))))
    log = open(tmp_path / "stderr.txt", "w")
    parent = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stderr=log, preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 60
        while len(children_of(parent.pid)) < 2 or not (tmp_path / "run" / "learner_1" / "progress.csv").exists():
            assert time.monotonic() < deadline and parent.poll() is None, (tmp_path / "stderr.txt").read_text()
            time.sleep(0.2)
        learners = children_of(parent.pid)
        parent.send_signal(signal.SIGINT)
        stopped = time.monotonic()
        while any(_alive(pid) for pid in learners) and time.monotonic() - stopped < 10:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in learners)
        parent.wait(timeout=10)
        assert "KeyboardInterrupt" in (tmp_path / "stderr.txt").read_text()
    finally:
        parent.kill()  # its learners follow it (PR_SET_PDEATHSIG)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before open, or between open and read
        return False


def test_one_gala_learner_in_the_background_is_plain_a2c(tmp_path):
    run = galakit.start(cfg(tmp_path, algo="gala", num_learners=1, total_timesteps=2 * 5 * 20, diag_interval=5))
    metrics = run.wait()
    assert metrics.progress[-1]["global_step"] == 2 * 5 * 20
    assert metrics.consensus[-1]["max_pairwise_distance"] == 0 and metrics.consensus[-1]["epsilon_bound"] is None


def test_one_peer_exponential_bound_of_8_learners_covers_every_distance_it_measures(tmp_path):
    # ρ of one period (τ = 3 steps) is 0 here: a bound that ignored the period read 0.000 at every reading.
    c = cfg(tmp_path, algo="gala", num_learners=8, topology="one_peer_exponential", diag_interval=10,
            total_timesteps=8 * 2 * 5 * 60, hidden_sizes=(16,), start_method="forkserver")
    readings = galakit.train(c).consensus
    assert len(readings) >= 2  # a reading waits for all 8 to publish: on 2 busy cores the leader may finish first
    for r in readings:
        spread = sum(d**2 for d in r["distance_to_average"]) ** 0.5   # ‖E‖_F, what the bound bounds
        assert r["epsilon_bound"] > 0 and spread <= r["epsilon_bound"]
        assert max(r["distance_to_average"]) <= r["epsilon_bound"]
        assert r["max_pairwise_distance"] <= 2**0.5 * r["epsilon_bound"]
    widest = max(r["max_pairwise_distance"] for r in readings)
    print(f"bound {readings[-1]['epsilon_bound']:.3f}, widest pairwise distance {widest:.3f}")  # shown with -s


def test_background_run_can_be_watched_and_stopped(tmp_path):
    run = galakit.start(cfg(tmp_path, algo="gala", num_learners=2, total_timesteps=10**8, log_interval=5))
    deadline = time.monotonic() + 60
    while {r["rank"] for r in run.metrics.progress} != {0, 1}:  # live rows from both learners
        assert time.monotonic() < deadline and run.error is None
        time.sleep(0.1)
    latest = run.latest
    assert sorted(latest) == [0, 1] and all(latest[r]["rank"] == r and latest[r]["SPS"] > 0 for r in latest)
    metrics = run.stop()
    assert run.done and not run.error, [(p.exitcode, p.is_alive()) for p in run._procs]
    assert metrics.progress and all(r["update"] % 5 == 0 for r in metrics.progress)
    assert children_of(os.getpid()) == []


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_forkserver_start_method_and_diagnostics(tmp_path):
    c = cfg(tmp_path, algo="gala", num_learners=2, start_method="forkserver", diag_interval=5,
            total_timesteps=2 * 2 * 5 * 100, tensorboard=True)
    run = galakit.start(c)
    metrics = run.wait()
    assert metrics.consensus, "no consensus reading arrived"
    assert run.consensus == metrics.consensus
    last = metrics.consensus[-1]
    assert len(last["distance_to_average"]) == 2 and last["max_pairwise_distance"] >= 0
    logged = read_csv(Path(metrics.run_dir) / "consensus.csv")   # every reading, also on disk
    assert [int(r["update_max"]) for r in logged] == [r["update_max"] for r in metrics.consensus]
    assert float(logged[-1]["distance_to_average_1"]) == pytest.approx(last["distance_to_average"][1])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(f"{metrics.run_dir}/consensus").Reload()
    assert len(board.Scalars("consensus/max_pairwise_distance")) == len(logged)
    learner_tags = EventAccumulator(f"{metrics.run_dir}/learner_1").Reload().Tags()["scalars"]
    assert {"gossip/messages_sent", "gossip/mixed_total", "gossip/rejected_total", "gossip/staleness",
            "charts/step_norm"} <= set(learner_tags)
    assert os.path.exists(metrics.checkpoint) and "consensus" in metrics.checkpoint
    assert galakit.evaluate(metrics.checkpoint, episodes=2).shape == (2,)


def test_two_learners_through_torchrun(tmp_path):
    run_dir = tmp_path / "run"
    cmd = torchrun_command("-m", "galakit.cli", "train",
           "--algo", "gala", "--env-id", "CartPole-v1", "--num-envs", "2", "--total-timesteps", "2000",
           "--diag-interval", "4", "--run-dir", str(run_dir), "--no-progress", "--no-tensorboard")
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    for rank in range(2):
        assert "learner" in out.stdout and list_checkpoints(run_dir / f"learner_{rank}" / "checkpoints")
    assert list_checkpoints(run_dir / "consensus")
    # diagnostics without a launcher: learner 1 relays θ_1 to learner 0, where a thread logs the readings
    readings = read_csv(run_dir / "consensus.csv")
    updates = [int(r["update_max"]) for r in readings]
    assert len(readings) >= 2 and updates == sorted(updates) and updates[-1] == 100, out.stdout  # live + last
    assert int(readings[-1]["update_min"]) == 100                     # the last reading has both final vectors
    distances = [float(readings[-1][f"distance_to_average_{i}"]) for i in range(2)]
    assert distances[0] == pytest.approx(distances[1], rel=1e-5) and distances[0] > 0  # equally far from θ̄
    assert float(readings[-1]["max_pairwise_distance"]) == pytest.approx(2 * distances[0], rel=1e-5)
    assert "consensus at update 100: max distance to the average" in out.stdout


def test_torchrun_learners_do_not_outlive_a_killed_agent(tmp_path):
    cmd = torchrun_command("-m", "galakit.cli", "train",
           "--algo", "gala", "--env-id", "CartPole-v1", "--num-envs", "2", "--total-timesteps", str(10**8),
           "--log-interval", "10", "--run-dir", str(tmp_path / "run"), "--no-progress", "--no-tensorboard")
    agent = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    learners: list[int] = []
    try:
        assert "learner" in agent.stdout.readline()   # both learners are training
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(agent.pid)], capture_output=True, text=True).stdout
        learners += [int(pid) for pid in out.split()]
        assert len(learners) == 2
        agent.kill()                                   # SIGKILL: the agent cannot stop them itself
        agent.wait()
        deadline = time.monotonic() + 10
        while any(os.path.exists(f"/proc/{pid}") for pid in learners) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in learners if os.path.exists(f"/proc/{pid}")]
    finally:
        agent.kill()
        for pid in learners:  # if the test failed: do not leave them training
            if os.path.exists(f"/proc/{pid}"):
                os.kill(pid, signal.SIGKILL)


def test_a_torchrun_job_gets_a_directory_named_after_it_and_refuses_another_runs(tmp_path, monkeypatch):
    from galakit.runtime.torchrun import torchrun_config

    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job7")
    monkeypatch.chdir(tmp_path)
    c = cfg(tmp_path, run_dir=None)
    first = torchrun_config(c, world_size=2)        # every rank computes the same name, whatever its clock says
    assert first.run_dir == "runs/CartPole-v1__a2c__1__job7" and first.resume is None and first.num_learners == 2
    galakit.train(first.replace(num_learners=1, run_dir=f"{first.run_dir}/learner_0", total_timesteps=20))
    with pytest.raises(ValueError, match=r"run_dir: got 'runs/CartPole-v1__a2c__1__job7' \(it holds a run: .*--resume"):
        torchrun_config(c, world_size=2)            # the same job id again: refused before any learner writes
    assert torchrun_config(c.replace(resume=first.run_dir), world_size=2).resume == first.run_dir


@pytest.mark.slow
@pytest.mark.parametrize("algo, lr", [("gala", 1.4e-3), ("allreduce", 7e-4), ("a3c", 7e-4)])
def test_two_learners_solve_cartpole_within_the_single_learner_budget(tmp_path, algo, lr):
    """Each learner's mean raw return over 100 consecutive games reaches 195 within the total number of steps
    that single-learner A2C is given (the cartpole preset). GALA doubles the learning rate, as the official
    code's README does for its GALA runs."""
    budget = Config.preset("cartpole").total_timesteps
    c = Config.preset("cartpole", algo=algo, lr=lr, num_learners=2, num_envs=4, run_dir=str(tmp_path / algo),
                      progress=False, tensorboard=False, log_interval=50, total_timesteps=budget)
    metrics = galakit.train(c)
    solved = [metrics.solved_at(195, window=100, rank=r) for r in range(2)]
    assert all(step is not None for step in solved), (algo, [metrics.mean_return(100, rank=r) for r in range(2)])
    steps = {r["rank"]: r["global_step"] for r in metrics.progress}
    assert sum(steps.values()) <= budget


def test_a_gala_run_resumes_every_learner_from_its_run_directory(tmp_path):
    first = cfg(tmp_path, algo="gala", num_learners=2, total_timesteps=2 * 2 * 5 * 10)
    galakit.train(first)
    more = first.replace(total_timesteps=2 * 2 * 5 * 20, resume=first.run_dir, run_dir=None)  # continue in it
    metrics = galakit.train(more)
    for rank in range(2):
        updates = [r["update"] for r in metrics.progress if r["rank"] == rank]
        assert updates == [20], updates  # continued from update 10 to 20 (log_interval = 10)
        state = load_checkpoint(list_checkpoints(f"{first.run_dir}/learner_{rank}/checkpoints")[-1])
        assert state["update"] == 20


def test_a_resumed_gala_run_drops_the_readings_and_events_logged_after_its_checkpoints(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    c = cfg(tmp_path, algo="gala", num_learners=2, diag_interval=5, checkpoint_interval=10, tensorboard=True,
            log_interval=5, total_timesteps=2 * 2 * 5 * 20)
    galakit.train(c)
    run_dir = Path(c.run_dir)
    for rank in range(2):  # as if the run crashed after the checkpoints of update 10
        list_checkpoints(run_dir / f"learner_{rank}" / "checkpoints")[-1].unlink()
    assert max(int(r["update_max"]) for r in read_csv(run_dir / "consensus.csv")) == 20
    galakit.train(c.replace(resume=str(run_dir), run_dir=None))
    updates = [int(r["update_max"]) for r in read_csv(run_dir / "consensus.csv")]
    assert updates == sorted(set(updates)) and updates[-1] == 20, updates
    board = EventAccumulator(str(run_dir / "consensus")).Reload()  # TensorBoard hides what the crash logged
    steps = [e.step for e in board.Scalars("consensus/max_pairwise_distance")]
    assert steps == sorted(set(steps)) and steps[-1] == 20, steps
    learner = EventAccumulator(str(run_dir / "learner_0")).Reload()
    steps = [e.step for e in learner.Scalars("charts/SPS")]
    assert steps == sorted(set(steps)) and steps[-1] == 2 * 5 * 20, steps
