"""Bad input fails early with a message naming the field, the value and what is accepted; the CLI and the
install files agree with the code."""

import dataclasses
import io
import multiprocessing.process
import os
import pickle
import re
import subprocess
import sys
import tomllib
import typing
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import torch
import yaml

import galakit
from galakit import config as config_module
from galakit.cli import build_parser, config_from_args, main
from galakit.config import PRESETS, Config, largest_derived_seed
from galakit.gossip.topology import Schedule, build_topology
from galakit.preflight import preflight

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


FLOAT_FIELDS = [name for name, hint in typing.get_type_hints(Config).items() if hint in (float, float | None)]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")


def tiny(run_dir: Path, **kw) -> Config:
    return Config.preset("cartpole", run_dir=str(run_dir), progress=False, tensorboard=False, num_envs=2,
                         hidden_sizes=(8,), total_timesteps=2 * 5 * 4, **kw)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Runs to resume (one learner; two learners, spawned), a file, an empty directory."""
    root = tmp_path_factory.mktemp("runs")
    galakit.train(tiny(root / "one"))
    galakit.train(tiny(root / "two", num_learners=2))
    (root / "a_file").write_text("not a directory")
    (root / "empty").mkdir()
    return {"one": root / "one", "two": root / "two", "file": root / "a_file", "empty": root / "empty"}


def resuming(name: str, **changes):
    """The config that continues run ``name`` as it was, with ``changes``."""
    return lambda runs: {**tiny(runs[name], num_learners=2 if name == "two" else 1).to_dict(),
                         "run_dir": None, "resume": str(runs[name]), **changes}


BAD_CONFIGS = [
    *[pytest.param(name, {name: value}, id=f"{name}={value}") for name in FLOAT_FIELDS
      for value in (float("nan"), float("inf"), -float("inf"))],
    pytest.param("seed", dict(seed=2**32), id="seed=2**32"),
    pytest.param("seed", dict(seed=2**32 - 8), id="seed+simulator>=2**32"),
    pytest.param("seed", dict(seed=2**32 - 7919, num_learners=2), id="seed+7919*learner>=2**32"),
    pytest.param("num_envs", dict(num_envs=10**7), id="num_envs=10**7"),
    pytest.param("num_learners", dict(num_learners=64), id="num_learners=64"),
    pytest.param("peers", dict(algo="gala", num_learners=4, topology="complete", peers=2), id="peers-off-ring"),
    pytest.param("topology", dict(algo="gala", num_learners=3, topology=nx.cycle_graph(4)), id="graph-of-4-for-3"),
    # -- preflight: the outside world
    pytest.param("env_id", dict(env_id="CartPol-v1"), id="unknown-env"),
    pytest.param("env_id", dict(env_id="Pendulum-v1"), id="continuous-actions"),
    pytest.param("device", dict(device="cuda"), id="cuda-absent", marks=NO_CUDA),
    pytest.param("run_dir", lambda runs: dict(run_dir=str(runs["file"])), id="run_dir-is-a-file"),
    pytest.param("run_dir", lambda runs: dict(run_dir=str(runs["file"] / "sub")), id="run_dir-under-a-file"),
    pytest.param("run_dir", lambda runs: dict(run_dir=str(runs["one"])), id="run_dir-holds-a-run"),
    pytest.param("resume", lambda runs: dict(resume=str(runs["empty"] / "missing")), id="resume-missing"),
    pytest.param("resume", lambda runs: dict(resume=str(runs["empty"])), id="resume-no-checkpoint"),
    pytest.param("env_id", resuming("one", env_id="Acrobot-v1"), id="resume-other-env"),
    pytest.param("hidden_sizes", resuming("one", hidden_sizes=(16,)), id="resume-other-hidden-sizes"),
    pytest.param("num_envs", resuming("two", num_envs=4), id="resume-other-num-envs"),
    pytest.param("num_learners", resuming("two", num_learners=3), id="resume-2-learners-with-3"),
    pytest.param("num_learners", resuming("two", num_learners=1), id="resume-2-learners-with-1"),
    pytest.param("num_learners", resuming("one", num_learners=2), id="resume-1-learner-with-2"),
]


@pytest.mark.processes
@pytest.mark.parametrize("field, fields", BAD_CONFIGS)
def test_bad_configs_are_refused_before_anything_starts(field, fields, runs, tmp_path, monkeypatch):
    """Every bad value → ``ValueError`` starting with the field's name, from ``Config`` or ``preflight``, with
    nothing written to disk and no process started."""
    started = []

    def refuse(*args, **kw):
        started.append(args)
        raise AssertionError("a process was started")

    for owner, name in ((multiprocessing.process.BaseProcess, "start"), (subprocess.Popen, "__init__"),
                        (os, "fork"), (os, "posix_spawn")):
        monkeypatch.setattr(owner, name, refuse)
    real = config_module.max_local_learners()
    monkeypatch.setattr(config_module, "max_local_learners", lambda: min(real, 16))  # a 2-core machine's limit
    monkeypatch.chdir(tmp_path)
    fields = fields(runs) if callable(fields) else fields
    before = sorted(p for root in (tmp_path, runs["one"].parent) for p in root.rglob("*"))
    with pytest.raises(ValueError) as err:
        preflight(Config(**fields))
    assert str(err.value).startswith(f"{field}: got "), err.value
    assert sorted(p for root in (tmp_path, runs["one"].parent) for p in root.rglob("*")) == before
    assert not started



def test_seeds_are_accepted_up_to_numpys_limit():
    cfg = Config(seed=2**32 - 16, num_envs=16)  # simulator 15 gets 2**32 - 1
    np.random.seed(largest_derived_seed(cfg))
    with pytest.raises(ValueError):
        np.random.seed(largest_derived_seed(cfg) + 1)  # what the check protects against


def test_the_learner_limit_counts_only_this_machines_learners(monkeypatch):
    """Under torchrun, num_learners is the world size over all machines; LOCAL_WORLD_SIZE are started here."""
    limit = config_module.max_local_learners()
    assert limit == max(1, min(config_module.memory_mb() // config_module.LEARNER_MEMORY_MB,
                               config_module.LEARNERS_PER_CORE * os.cpu_count()))
    with pytest.raises(ValueError, match=f"num_learners: got {limit + 1}; accepted: at most {limit} learners"):
        Config(num_learners=limit + 1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert Config(num_learners=limit + 1).num_learners == limit + 1


def test_peers_apply_on_rings():
    assert Config(algo="gala", num_learners=4, topology="undirected_ring", peers=2).peers == 2


def test_unknown_env_id_is_reported_with_close_matches(tmp_path):
    import galakit

    with pytest.raises(ValueError, match=r"CartPol-v1.*CartPole-v1"):
        galakit.train(Config(env_id="CartPol-v1", run_dir=str(tmp_path), progress=False))


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError, match=r"^preset: got 'pong'; accepted: 'atari', 'cartpole'$"):
        Config.preset("pong")


def test_a_config_is_frozen_and_replace_makes_validated_copies():
    cfg = Config(lr=1e-3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = -5
    assert cfg.lr == 1e-3 and cfg.replace(lr=0.0).lr == 0.0
    with pytest.raises(ValueError, match=r"^lr: got -5; accepted: a number in \[0.0, 10.0\]$"):
        cfg.replace(lr=-5)
    assert Config(hidden_sizes=[8, 8], slow_learners=[0], num_learners=2).hidden_sizes == (8, 8)  # lists → tuples
    assert hash(Config(hidden_sizes=[8])) == hash(Config(hidden_sizes=(8,)))


def test_a_graph_topology_is_kept_as_its_schedule_and_rebuilt_from_a_checkpoint():
    """A graph becomes the Schedule of its weights; to_dict() is plain data that survives torch.load(weights_only)
    and gives back an equal config, as load_policy and --resume rebuild it."""
    graph = nx.DiGraph([(0, 1), (1, 2), (2, 0), (0, 2)])  # no weights: uniform, each sender splits 1/(out + 1)
    cfg = Config(algo="gala", num_learners=3, topology=graph)
    assert isinstance(cfg.topology, Schedule)
    assert np.allclose(cfg.topology.mixing_matrix(), [[1 / 3, 0, 1 / 2], [1 / 3, 1 / 2, 0], [1 / 3, 1 / 2, 1 / 2]])
    buffer = io.BytesIO()
    torch.save(cfg.to_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert saved["topology"]["steps"][0][:2] == [[0, 0, pytest.approx(1 / 3)], [0, 1, pytest.approx(1 / 3)]]
    rebuilt = Config(**saved)
    assert rebuilt == cfg and hash(rebuilt) == hash(cfg)
    assert pickle.loads(pickle.dumps(cfg)) == cfg  # what a spawned learner gets
    assert cfg != cfg.replace(topology=build_topology("ring", 3))  # equality looks at the edges and weights
    assert Config(**Config().to_dict()) == Config()


def test_a_weighted_graph_keeps_its_weights_and_a_schedule_is_used_as_it_is():
    graph = nx.DiGraph()
    graph.add_weighted_edges_from([(0, 0, 0.75), (1, 1, 0.5), (0, 1, 0.5), (1, 0, 0.25)])  # row-stochastic W
    assert np.array_equal(Config(num_learners=2, topology=graph).topology.mixing_matrix(), [[0.75, 0.25],
                                                                                            [0.5, 0.5]])
    schedule = build_topology("one_peer_exponential", 4)
    assert Config(algo="gala", num_learners=4, topology=schedule).topology is schedule


def test_a_graph_must_have_one_node_per_learner():
    cycle = nx.DiGraph([(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)])
    with pytest.raises(ValueError, match=r"^topology: got a graph with 5 nodes \(num_learners is 4\); accepted: "
                                         r"a graph on the nodes 0..3, or a name in 'ring', "):
        Config(algo="gala", num_learners=4, topology=cycle)
    cfg = Config(algo="gala", num_learners=5, topology=cycle)
    with pytest.raises(ValueError, match=r"^topology: got a graph with 5 nodes \(num_learners is 6\)"):
        cfg.replace(num_learners=6)
    with pytest.raises(ValueError, match=r"^topology: got a graph with 5 nodes \(num_learners is 1\)"):
        cfg.replace(num_learners=1, algo="a2c")  # one learner: a graph of 5 is a mistake, not ignored


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


@pytest.mark.processes
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


@pytest.mark.processes
@pytest.mark.parametrize("preset, expected", [(None, "3000"), ("0", "0")])
def test_importing_galakit_shortens_the_openmp_spin_unless_the_user_set_it(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    if preset is not None:
        env["GOMP_SPINCOUNT"] = preset
    code = "import os, galakit; print(os.environ['GOMP_SPINCOUNT'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


@pytest.mark.processes
@pytest.mark.parametrize("code, preset, warns", [
    ("import torch, galakit", None, True),   # too late: libgomp read the variable when torch loaded
    ("import galakit, torch", None, False),
    ("import torch, galakit", "3000", False),  # the user set it before Python started
])
def test_importing_galakit_after_torch_says_that_the_spin_is_not_shortened(code, preset, warns):
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    if preset is not None:
        env["GOMP_SPINCOUNT"] = preset
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    assert ("galakit was imported after torch" in out.stderr) == warns, out.stderr


def test_the_gossip_policies_a_config_accepts_are_the_rules_own():
    from galakit.config import GOSSIP_POLICIES
    from galakit.gossip.rule import ASYNC_POLICIES

    assert GOSSIP_POLICIES == tuple(str(p) for p in ASYNC_POLICIES)
    from galakit.gossip.rule import WritePolicy

    cfg = Config(algo="gala", num_learners=2, gossip_policy=WritePolicy.SKIP)
    assert type(cfg.to_dict()["gossip_policy"]) is str and cfg.gossip_policy == "skip"
    with pytest.raises(ValueError, match=r"^gossip_policy: got 'newest'; accepted: 'latest', 'skip'"):
        Config(gossip_policy="newest")
