"""Bad input fails early with a message naming the field, the value and what is accepted; the CLI and the
install files agree with the code."""

import os
import pickle
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from galakit.cli import build_parser, config_from_args, main
from galakit.config import PRESETS, Config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("field, value, accepted", [
    ("num_envs", 0, "an int >= 1"),
    ("num_envs", -4, "an int >= 1"),
    ("num_envs", 2.5, "an int >= 1"),
    ("num_envs", "16", "an int >= 1"),
    ("num_steps", True, "an int >= 1"),
    ("total_timesteps", 0, "an int >= 1"),
    ("seed", -1, "an int >= 0"),
    ("lr", -1e-3, "a number in [0.0, 10.0]"),
    ("gamma", 1.5, "a number in [0.0, 1.0]"),
    ("gae_lambda", 2.0, "a number in [0.0, 1.0]"),
    ("max_grad_norm", 0.0, "a number in (0.0"),
    ("algo", "ppo", "'a2c'"),
    ("env_backend", "envpool", "'auto', 'ale_vector', 'sync', 'async'"),
    ("device", "gpu", "'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ("gossip_transport", "tcp", "'auto', 'shared_memory', 'gloo'"),
    ("clip_rewards", "yes", "True, False or None"),
    ("hidden_sizes", (64, 0), "a non-empty tuple of positive ints"),
    ("env_id", "", "a non-empty environment id string"),
])
def test_bad_config_values_name_the_field_and_what_is_accepted(field, value, accepted):
    with pytest.raises(ValueError) as err:
        Config(**{field: value})
    message = str(err.value)
    assert message.startswith(f"{field}: got {value!r}")
    assert accepted in message


def test_unknown_env_id_is_reported_with_close_matches(tmp_path):
    import galakit

    with pytest.raises(ValueError, match=r"CartPol-v1.*CartPole-v1"):
        galakit.train(Config(env_id="CartPol-v1", run_dir=str(tmp_path), progress=False))


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError, match=r"preset: unknown preset 'pong'; accepted: \['atari', 'cartpole'\]"):
        Config.preset("pong")


def test_presets_are_valid_and_configs_pickle():
    for name in PRESETS:
        cfg = Config.preset(name)
        assert pickle.loads(pickle.dumps(cfg)) == cfg
    atari = Config.preset("atari")
    assert (atari.num_envs, atari.num_steps, atari.lr, atari.gamma) == (16, 5, 7e-4, 0.99)
    assert atari.batch_size == 80


def test_cli_options_cover_every_config_field_and_parse_types():
    args = build_parser().parse_args(["train", "--preset", "atari", "--env-id", "BreakoutNoFrameskip-v4",
                                      "--num-envs", "8", "--lr", "1e-3", "--no-tensorboard", "--clip-rewards",
                                      "false", "--gae-lambda", "0.95", "--hidden-sizes", "32", "32"])
    cfg = config_from_args(args)
    assert (cfg.env_id, cfg.num_envs, cfg.lr, cfg.tensorboard) == ("BreakoutNoFrameskip-v4", 8, 1e-3, False)
    assert (cfg.clip_rewards, cfg.gae_lambda, cfg.hidden_sizes, cfg.num_steps) == (False, 0.95, (32, 32), 5)
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for field in Config.__dataclass_fields__:
        assert "--" + field.replace("_", "-") in help_text


def test_cli_reports_bad_values_without_a_traceback(capsys):
    assert main(["train", "--num-envs", "0", "--no-progress"]) == 2
    assert "num_envs: got 0" in capsys.readouterr().err


def test_cli_help_runs_as_a_command():
    out = subprocess.run([sys.executable, "-m", "galakit.cli", "train", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--total-timesteps" in out.stdout


def test_environment_yml_agrees_with_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert env["channels"] == ["conda-forge", "nodefaults"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    python = next(d for d in conda if d.startswith("python="))
    minimum = re.match(r">=\s*3\.(\d+)", project["requires-python"]).group(1)
    assert int(python.split("=")[1].split(".")[1]) >= int(minimum)
    assert set(conda) == {python, "pip"}, "conda packages beyond python and pip must also be in pyproject.toml"
    assert "-e .[dev]" in pip
    torch_pin = (ROOT / "constraints.txt").read_text().split()
    assert [p for p in pip if p.startswith("torch")] == [t for t in torch_pin if t.startswith("torch")]
    assert any(d.startswith("torch") for d in project["dependencies"])


@pytest.mark.parametrize("preset, expected", [(None, "3000"), ("0", "0")])
def test_importing_galakit_shortens_the_openmp_spin_unless_the_user_set_it(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    if preset is not None:
        env["GOMP_SPINCOUNT"] = preset
    code = "import os, galakit; print(os.environ['GOMP_SPINCOUNT'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected
