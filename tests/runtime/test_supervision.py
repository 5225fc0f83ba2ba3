"""Supervision: a dead learner is noticed and named, no learner outlives its parent, nothing listens beyond
loopback, allreduce learners stop together, one run per directory, and interrupted runs save."""

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
from support import default_sigint
from test_gala import ROOT, _alive, cfg, children_of, read_csv

import galakit
from galakit.io.checkpoint import list_checkpoints, load_checkpoint
from galakit.io.rundir import claim_run_dir
from galakit.runtime.launch import LearnerError, Run
from galakit.runtime.supervisor import RENDEZVOUS_PREFIX, new_rendezvous, remove_stale_rendezvous

pytestmark = pytest.mark.processes  # every test here starts learner processes

def wait_for_rows(run, ranks, timeout=90):
    deadline = time.monotonic() + timeout
    while {r["rank"] for r in run.metrics.progress} != set(ranks):
        assert time.monotonic() < deadline and run.error is None, run.error
        time.sleep(0.05)


KILL_CASES = {
    "gala": dict(algo="gala", gossip_transport="shared_memory"),  # sync_freq=None: nobody waits for the dead one
    "gala-gloo": dict(algo="gala", gossip_transport="gloo"),
    "a3c": dict(algo="a3c"),
    "allreduce": dict(algo="allreduce"),
}


def error_after_signal(c, rank: int, sig: int) -> tuple[LearnerError, float]:
    """Run 3 learners of ``c``; once all train, send ``sig`` to learner ``rank``: the error the run raised, and
    how many seconds after the signal."""
    run = galakit.start(c.replace(num_learners=3, total_timesteps=10**9, log_interval=1))
    try:
        wait_for_rows(run, [0, 1, 2])
        os.kill(run._procs[rank].pid, sig)
        sent = time.monotonic()
        with pytest.raises(LearnerError) as err:
            run.wait(timeout=60)
        return err.value, time.monotonic() - sent
    finally:
        run._halt(timeout=1)


@pytest.mark.parametrize("case", list(KILL_CASES))
def test_a_learner_killed_by_a_signal_is_named_within_two_seconds(tmp_path, case):
    error, elapsed = error_after_signal(cfg(tmp_path, **KILL_CASES[case]), 1, signal.SIGKILL)
    assert error.rank == 1 and error.exitcode == -signal.SIGKILL
    assert "learner 1 failed: killed by signal SIGKILL" in str(error)
    assert elapsed < 2, f"noticed after {elapsed:.2f} s"
    assert children_of(os.getpid()) == []


PARENT = """
import sys, time
import galakit
if __name__ == "__main__":
    galakit.start(galakit.Config(env_id="CartPole-v1", algo="gala", num_learners=4, num_envs=2,
                                 total_timesteps=10**9, run_dir=sys.argv[1], progress=False, tensorboard=False))
    print("started", flush=True)
    time.sleep(600)
"""


def descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        p, pp = map(int, line.split())
        children.setdefault(pp, []).append(p)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_no_learner_outlives_a_parent_killed_half_a_second_after_start(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(PARENT))
    before = set(rendezvous_folders())
    for attempt in range(10):
        parent = subprocess.Popen([sys.executable, str(script), str(tmp_path / f"run{attempt}")], cwd=ROOT,
                                  stdout=subprocess.PIPE, text=True)
        assert parent.stdout.readline().strip() == "started"
        time.sleep(0.5)
        learners = descendants(parent.pid)
        assert len(children_of(parent.pid)) == 4
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in learners) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in learners if _alive(pid)], f"attempt {attempt}: orphans left"
    # a killed parent cannot remove its rendezvous folder; the next run's start removes it
    assert len(set(rendezvous_folders()) - before) <= 1


def rendezvous_folders(root=None):
    root = root or tempfile.gettempdir()
    return [name for name in os.listdir(root) if name.startswith(RENDEZVOUS_PREFIX)]


def test_a_rendezvous_folder_goes_once_its_owner_has_exited(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = new_rendezvous(str(tmp_path))
    Path(stale, "owner").write_text(str(gone.pid))
    unowned = tmp_path / (RENDEZVOUS_PREFIX + "being-made")
    unowned.mkdir()
    ours = new_rendezvous(str(tmp_path))  # removes the stale one
    assert not os.path.exists(stale)
    assert os.path.isdir(ours) and unowned.is_dir()
    assert Path(ours, "owner").read_text() == str(os.getpid())
    assert remove_stale_rendezvous(str(tmp_path)) == []  # we are alive: ours stays


def test_a_run_started_from_a_thread_keeps_its_learners_after_the_thread_ends(tmp_path):
    runs = []
    starter = threading.Thread(target=lambda: runs.append(galakit.start(
        cfg(tmp_path, algo="gala", num_learners=2, total_timesteps=10**9, log_interval=1))))
    starter.start()
    starter.join()
    run = runs[0]
    try:
        wait_for_rows(run, [0, 1])
        time.sleep(1.0)
        assert run.error is None and not run.done
        assert all(p.exitcode is None for p in run._procs)
    finally:
        run.stop()


def listening_addresses(pids: list[int]) -> list[str]:
    """Local addresses of the TCP sockets in LISTEN state that the processes ``pids`` hold."""
    inodes = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir() if fd_dir.exists() else []:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.append(fields[1])
    return found


def is_loopback(address: str) -> bool:
    host = address.split(":")[0]
    if len(host) == 8:  # IPv4, little-endian hex: 0100007F is 127.0.0.1
        return host.endswith("7F")
    return host == "00000000000000000000000001000000"  # ::1


@pytest.mark.parametrize("algo, transport", [("gala", "shared_memory"), ("gala", "gloo"), ("allreduce", "auto")])
def test_a_spawned_run_listens_on_loopback_only(tmp_path, algo, transport):
    run = galakit.start(cfg(tmp_path, algo=algo, gossip_transport=transport, num_learners=4, total_timesteps=10**9,
                            log_interval=1))
    try:
        wait_for_rows(run, [0, 1, 2, 3])
        addresses = listening_addresses([os.getpid()] + [p.pid for p in run._procs])
    finally:
        run.stop()
    assert addresses, "expected gloo's listening sockets"
    assert all(is_loopback(a) for a in addresses), addresses


def test_stopping_allreduce_learners_leaves_them_at_the_same_update(tmp_path):
    for cycle in range(6):
        run = galakit.start(cfg(tmp_path / f"c{cycle}", algo="allreduce", num_learners=3, total_timesteps=10**9,
                                log_interval=1))
        wait_for_rows(run, [0, 1, 2])
        time.sleep(0.05 * cycle)
        metrics = run.stop()
        states = [load_checkpoint(list_checkpoints(f"{metrics.run_dir}/learner_{r}/checkpoints")[-1])
                  for r in range(3)]
        assert len({s["update"] for s in states}) == 1, [s["update"] for s in states]
        params = [torch.cat([p.flatten() for p in s["model"].values()]) for s in states]
        assert all(torch.equal(params[0], p) for p in params[1:])
        assert metrics.checkpoint and "consensus" in metrics.checkpoint and os.path.exists(metrics.checkpoint)
    assert children_of(os.getpid()) == []


def test_a_second_run_into_the_same_directory_fails_at_once(tmp_path):
    c = cfg(tmp_path, algo="gala", num_learners=2, total_timesteps=10**9)
    first = Run(c).start()
    try:
        time.sleep(1.0)
        started = time.monotonic()
        if not list(Path(c.run_dir).rglob("*.csv")):  # still starting, nothing written: only the lock can refuse
            with pytest.raises(ValueError, match="run_dir: .* is in use by a run that is still going"):
                Run(c)
        with pytest.raises(ValueError, match="run_dir: .* (is in use|holds a run)"):
            galakit.train(c.replace(num_learners=1))
        assert time.monotonic() - started < 1
        wait_for_rows(first, [0, 1])
    finally:
        first.stop()
    with pytest.raises(ValueError, match="holds a run"):  # once it has ended: its logs say so
        Run(c)


INTERRUPTED = """
import sys
import galakit
if __name__ == "__main__":
    cfg = galakit.Config(env_id="CartPole-v1", num_learners=int(sys.argv[2]), algo="gala", num_envs=2,
                         total_timesteps=10**9, run_dir=sys.argv[1], progress=False, tensorboard=False,
                         checkpoint_interval=0, log_interval=5)
    try:
        if sys.argv[3] == "train":
            galakit.train(cfg)
        else:
            galakit.start(cfg).wait()  # interrupting the wait stops a started run too
    except galakit.RunInterrupted as stop:
        print("interrupted", stop.metrics.run_dir, len(stop.metrics.progress), flush=True)
        raise
"""


@pytest.mark.parametrize("learners, sig, how", [(1, signal.SIGINT, "train"), (1, signal.SIGTERM, "train"),
                                               (2, signal.SIGINT, "train"), (2, signal.SIGINT, "start")])
def test_an_interrupted_run_saves_and_says_where(tmp_path, learners, sig, how):
    script, run_dir = tmp_path / "train.py", tmp_path / "run"
    script.write_text(textwrap.dedent(INTERRUPTED))
    folders = [run_dir] if learners == 1 else [run_dir / f"learner_{r}" for r in range(learners)]
    proc = subprocess.Popen([sys.executable, str(script), str(run_dir), str(learners), how], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 90
        while not all((f / "progress.csv").exists() and len(read_csv(f / "progress.csv")) >= 2 for f in folders):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode != 0 and "interrupted" in out and str(run_dir) in out, (out, err)
    assert f"the run is saved in {run_dir}" in err
    for folder in folders:
        saved = load_checkpoint(folder)  # checkpoint_interval=0: only the stop saved it
        assert saved["update"] >= int(read_csv(folder / "progress.csv")[-1]["update"])


def test_a_resumed_run_does_not_repeat_the_rows_logged_after_its_checkpoint(tmp_path):
    c = cfg(tmp_path, total_timesteps=2 * 5 * 40, log_interval=5, checkpoint_interval=20)
    galakit.train(c)
    run_dir = Path(c.run_dir)
    list_checkpoints(run_dir / "checkpoints")[-1].unlink()  # as if it crashed after update 20's checkpoint
    galakit.train(c.replace(resume=str(run_dir), run_dir=None))
    steps = [int(r["global_step"]) for r in read_csv(run_dir / "progress.csv")]
    assert steps == sorted(set(steps)) and steps[-1] == 2 * 5 * 40
    episode_steps = [int(r["global_step"]) for r in read_csv(run_dir / "episodes.csv")]
    assert episode_steps == sorted(episode_steps)


def test_a_run_directory_is_claimed_by_one_run_at_a_time(tmp_path):
    first = claim_run_dir(tmp_path / "run", new_run=True)
    with pytest.raises(ValueError, match="run_dir: .* is in use by a run that is still going .process"):
        claim_run_dir(tmp_path / "run", new_run=True)
    first.release()
    claim_run_dir(tmp_path / "run", new_run=True).release()  # free again once the first has ended


def test_sigterm_to_galakit_train_saves_every_learner(tmp_path):
    run_dir = tmp_path / "run"
    command = [os.path.join(os.path.dirname(sys.executable), "galakit"), "train", "--env-id", "CartPole-v1",
               "--algo", "gala", "--num-learners", "2", "--num-envs", "2", "--total-timesteps", str(10**9),
               "--run-dir", str(run_dir), "--no-progress", "--no-tensorboard", "--checkpoint-interval", "0"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not all((run_dir / f"learner_{r}" / "progress.csv").exists() for r in range(2)):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130 and f"the run is saved in {run_dir}" in err and "Traceback" not in err, err
    assert all(list_checkpoints(run_dir / f"learner_{r}" / "checkpoints") for r in range(2))


def test_killing_the_whole_process_group_leaves_no_semaphore_in_dev_shm(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(PARENT).replace("num_learners=4", "num_learners=2, diag_interval=5"))
    before = set(os.listdir("/dev/shm"))
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path / "run")], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True, start_new_session=True)  # as a Jupyter kernel
    try:
        assert parent.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 90
        while not all((tmp_path / "run" / f"learner_{r}" / "progress.csv").exists() for r in range(2)):
            assert time.monotonic() < deadline and parent.poll() is None
            time.sleep(0.1)
    finally:
        os.killpg(parent.pid, signal.SIGKILL)  # the parent, its learners and multiprocessing's resource tracker
        parent.wait()
    time.sleep(1)
    assert [name for name in set(os.listdir("/dev/shm")) - before if name.startswith("sem.")] == []


@pytest.mark.parametrize("coupling", [dict(algo="allreduce"), dict(algo="gala", sync_freq=1)])
def test_a_frozen_learner_that_the_others_wait_for_is_named(tmp_path, coupling):
    error, elapsed = error_after_signal(cfg(tmp_path, stall_timeout=3.0, **coupling), 2, signal.SIGSTOP)
    assert error.rank == 2 and "no progress for 3 s (stall_timeout)" in str(error)
    assert 2.5 <= elapsed < 3 + 5  # 3 s after the frozen one's last heartbeat, which came just before SIGSTOP
    assert children_of(os.getpid()) == []
