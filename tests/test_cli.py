"""The ``galakit`` command as a user meets it: a mistake is one line and exit code 2 (the traceback only with
``--debug``), and ``galakit train --resume runs/<run>`` alone continues a run with its saved config."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from galakit.cli import build_parser, config_from_args
from galakit.io.checkpoint import list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--num-envs", "2", "--hidden-sizes", "8", "--gae-lambda", "0.95", "--total-timesteps", "200",
        "--checkpoint-interval", "5", "--keep-checkpoints", "10", "--no-progress", "--no-tensorboard"]


def galakit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "galakit.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> Path:
    """A CLI run of 20 updates (10 transitions each) with a checkpoint every 5, none of its options the default."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    out = galakit("train", "--env-id", "CartPole-v1", *TINY, "--run-dir", run_dir, cwd=run_dir.parent)
    assert out.returncode == 0, out.stderr
    return run_dir


@pytest.mark.parametrize("args, field", [
    (["train", "--lr", "nan"], "lr"),
    (["train", "--env-id", "Pendulum-v1"], "env_id"),
    (["train", "--resume", "runs/missing"], "resume"),
    (["train", "--run-dir", "{run}"], "run_dir"),  # already holds a run: was an error from train()
    (["evaluate", "runs/missing"], "resume/checkpoint"),
])
def test_user_errors_are_one_line_and_exit_code_2(args, field, cli_run, tmp_path):
    out = galakit(*[a.format(run=cli_run) for a in args], cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.splitlines() == [out.stderr.strip()], out.stderr  # one line
    assert out.stderr.startswith(f"galakit: error: {field}: ")
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists()


def test_debug_shows_the_traceback(tmp_path):
    out = galakit("train", "--lr", "nan", "--debug", cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback (most recent call last)" in out.stderr and "lr: got nan" in out.stderr


def test_resume_alone_continues_a_cli_run_with_its_saved_config(cli_run, tmp_path):
    run = shutil.copytree(cli_run, tmp_path / "run")
    first, *later = list_checkpoints(run / "checkpoints")
    for path in later:  # as if the run had stopped after its first checkpoint
        path.unlink()
    assert load_checkpoint(first)["update"] == 5
    out = galakit("train", "--resume", run, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    state = load_checkpoint(run)
    assert state["update"] == 20
    saved = state["config"]
    assert (saved["env_id"], saved["num_envs"], tuple(saved["hidden_sizes"])) == ("CartPole-v1", 2, (8,))
    assert f"run directory: {run}" in out.stdout


def test_flags_given_with_resume_override_the_saved_config(cli_run):
    def parse(*args):
        return config_from_args(build_parser().parse_args(["train", "--resume", str(cli_run), *args]))

    assert (parse().num_envs, parse().gae_lambda, parse().total_timesteps) == (2, 0.95, 200)
    cfg = parse("--total-timesteps", "400", "--gae-lambda", "none")  # "none" given is not "not given"
    assert (cfg.total_timesteps, cfg.gae_lambda, cfg.num_envs) == (400, None, 2)
    assert (cfg.resume, cfg.run_dir) == (str(cli_run), None)  # it continues in the checkpoint's directory
