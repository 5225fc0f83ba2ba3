"""The ``galakit`` command as a user meets it: a mistake is one line and exit code 2 (the traceback only with
``--debug``), ``galakit train --resume runs/<run>`` alone continues a run with its saved config, and the help
lists what each option accepts, its default once (the preset's with ``--preset``), and ends with examples that
parse."""

import dataclasses
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from galakit.cli import build_parser, config_from_args, main, preset_named
from galakit.config import ALGOS, PRESETS, Config
from galakit.gossip.topology import TOPOLOGIES
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


@pytest.mark.processes  # runs the galakit command in a subprocess
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


@pytest.mark.processes  # runs the galakit command in a subprocess
def test_debug_shows_the_traceback(tmp_path):
    out = galakit("train", "--lr", "nan", "--debug", cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback (most recent call last)" in out.stderr and "lr: got nan" in out.stderr


@pytest.mark.processes  # runs the galakit command in a subprocess
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


@pytest.mark.processes  # runs the galakit command in a subprocess
def test_flags_given_with_resume_override_the_saved_config(cli_run):
    def parse(*args):
        return config_from_args(build_parser().parse_args(["train", "--resume", str(cli_run), *args]))

    assert (parse().num_envs, parse().gae_lambda, parse().total_timesteps) == (2, 0.95, 200)
    cfg = parse("--total-timesteps", "400", "--gae-lambda", "none")  # "none" given is not "not given"
    assert (cfg.total_timesteps, cfg.gae_lambda, cfg.num_envs) == (400, None, 2)
    assert (cfg.resume, cfg.run_dir) == (str(cli_run), None)  # it continues in the checkpoint's directory


# -- the help


def help_of(*args: str, capsys) -> str:
    """What ``galakit <args> --help`` prints (argparse exits 0 after it), through ``main`` as the command does."""
    with pytest.raises(SystemExit) as stop:
        main([*args, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


def options_in(help_text: str) -> dict[str, str]:
    """Each option's entry in a help text, keyed by its first flag, its lines joined: {"--algo": "--algo {...} ..."}."""
    entries: dict[str, str] = {}
    flag = None
    for line in help_text.splitlines():
        if re.match(r"  -", line):
            flag = line.split()[0].rstrip(",")
            entries[flag] = line.strip()
        elif flag and line.startswith("   "):
            entries[flag] += " " + line.strip()
        else:
            flag = None
    return entries


def defaults_in(entry: str) -> int:
    """How often an option's help says "default" ("(default: x)", "default runs/<run_name>", not "defaults to")."""
    return len(re.findall(r"\bdefault\b", entry, re.IGNORECASE))


def field_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def test_train_help_lists_the_accepted_values_of_choice_options(capsys):
    options = options_in(help_of("train", capsys=capsys))
    assert options["--algo"].startswith("--algo {" + ",".join(ALGOS) + "}")
    assert options["--device"].startswith("--device {auto,cpu,cuda,cuda:N}")
    assert options["--topology"].startswith("--topology NAME_OR_FILE")
    assert f"one of {', '.join(TOPOLOGIES)} or a graph file (edge list or JSON adjacency)" in options["--topology"]
    for flag in ("--env-backend", "--start-method", "--gossip-transport", "--clip-rewards", "--preset"):
        assert options[flag].startswith(flag + " {"), options[flag]


def test_help_shows_each_default_once(capsys):
    train = options_in(help_of("train", capsys=capsys))
    evaluate = options_in(help_of("evaluate", capsys=capsys))
    for entry in [*train.values(), *evaluate.values()]:
        assert defaults_in(entry) <= 1, entry  # not by the help text and the formatter both
    for f in dataclasses.fields(Config):
        assert defaults_in(train[field_flag(f.name)]) == 1, train[field_flag(f.name)]
    assert "(default: 0.0007)" in train["--lr"] and "(default: 64 64)" in train["--hidden-sizes"]
    assert "(default: auto)" in train["--clip-rewards"] and "(default: none)" in train["--gae-lambda"]
    assert "(default: true)" in train["--tensorboard"] and "(default: 10)" in evaluate["--episodes"]


@pytest.mark.parametrize("args, name", [(["train", "--preset", "atari"], "atari"),
                                        (["train", "--preset=cartpole"], "cartpole")])
def test_help_after_a_preset_shows_the_preset_values(args, name, capsys):
    options = options_in(help_of(*args, capsys=capsys))
    for field, value in PRESETS[name].items():
        shown = f"(default: {value})"
        assert shown in options[field_flag(field)], (field, options[field_flag(field)])
    plain = options_in(help_of("train", capsys=capsys))
    assert "(default: CartPole-v1)" in plain["--env-id"] and "(default: 100000)" in plain["--total-timesteps"]


def example_commands(help_text: str) -> list[list[str]]:
    """The commands after ``examples:``, continuation lines joined, as argument lists after ``galakit``."""
    text = help_text.split("\nexamples:\n")[1].replace("\\\n", " ")
    commands = [shlex.split(line) for line in text.splitlines() if re.match(r"  (galakit|torchrun) ", line)]
    return [c[c.index("galakit.cli") + 1:] if c[0] == "torchrun" else c[1:] for c in commands]


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"]])
def test_help_ends_with_examples_that_parse(command, capsys):
    help_text = help_of(*command, capsys=capsys)
    assert help_text.rstrip().rsplit("\n\n", 1)[1].startswith("examples:")  # the last paragraph
    examples = example_commands(help_text)
    assert len(examples) >= (6 if command == ["train"] else 3)
    for args in examples:
        if "--help" in args:
            continue
        parsed = build_parser(preset_named(args)).parse_args(args)
        if parsed.command == "train" and "--resume" not in args:  # a resumed run's config needs the run
            config_from_args(parsed)


def test_train_examples_cover_cartpole_gala_atari_resume_and_torchrun(capsys):
    examples = [" ".join(args) for args in example_commands(help_of("train", capsys=capsys))]
    assert any("--preset cartpole" in e and "--algo" not in e for e in examples)
    assert any("--algo gala --num-learners 4" in e for e in examples)
    assert any("--preset atari" in e and "--help" not in e for e in examples)
    assert any("--resume" in e for e in examples) and any("--run-dir runs/pong-gala" in e for e in examples)


# -- --topology: a name or a graph file


@pytest.mark.processes  # runs the galakit command in a subprocess
def test_an_unknown_topology_is_one_line_naming_what_is_accepted(tmp_path):
    out = galakit("train", "--topology", "x", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr == (f"galakit: error: topology: got 'x'; accepted: one of {', '.join(TOPOLOGIES)} "
                          "or a graph file (edge list or JSON adjacency)\n")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("value, why", [("rnig", "(did you mean 'ring'?)"), ("graphs/missing.txt", "(no such file)")])
def test_a_misspelt_topology_or_missing_graph_file_says_why(value, why):
    with pytest.raises(ValueError, match=re.escape(f"topology: got {value!r} {why}; accepted: one of ring")):
        config_from_args(build_parser().parse_args(["train", "--topology", value]))


def parse_train(*args: str) -> Config:
    return config_from_args(build_parser().parse_args(["train", *map(str, args)]))


def test_a_topology_file_is_read_into_the_config(tmp_path):
    edges = tmp_path / "triangle.txt"
    edges.write_text("# a directed triangle: 0 → 1 → 2 → 0\n0 1\n1 2\n2 0\n")
    cfg = parse_train("--algo", "gala", "--topology", edges)
    assert cfg.num_learners == 3  # the graph's nodes, as --num-learners was not given
    W = cfg.topology.mixing_matrix()  # W[i, j]: weight i gives to j's message; uniform: 1 / (out-degree + 1)
    assert W.tolist() == [[0.5, 0.0, 0.5], [0.5, 0.5, 0.0], [0.0, 0.5, 0.5]]
    assert cfg.to_dict()["topology"]["name"] == "triangle"  # plain data, as a checkpoint stores it
    assert parse_train("--algo", "gala", "--topology", edges, "--num-learners", "3").topology == cfg.topology


def test_a_json_adjacency_file_is_read_into_the_config(tmp_path):
    matrix = tmp_path / "k3.json"
    matrix.write_text('{"adjacency": [[0, 1, 1], [1, 0, 1], [1, 1, 0]]}')
    cfg = parse_train("--algo", "gala", "--topology", matrix)
    assert cfg.num_learners == 3
    assert cfg.topology.mixing_matrix() == pytest.approx(np.full((3, 3), 1 / 3))  # 0/1 adjacency: uniform weights


def test_a_topology_file_with_another_number_of_learners_is_refused(tmp_path):
    edges = tmp_path / "triangle.txt"
    edges.write_text("0 1\n1 2\n2 0\n")
    with pytest.raises(ValueError, match=r"^topology: got a graph 'triangle' with 3 nodes \(num_learners is 4\)"):
        parse_train("--algo", "gala", "--topology", edges, "--num-learners", "4")


@pytest.mark.processes  # runs the galakit command in a subprocess
def test_an_unreadable_topology_file_is_one_line_under_topology(tmp_path):
    (tmp_path / "bad.txt").write_text("0 1\n1 x\n")
    out = galakit("train", "--topology", "bad.txt", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("galakit: error: topology: got 'bad.txt' (line 2 reads '1 x'); accepted: ")
    assert out.stderr.count("\n") == 1 and not (tmp_path / "runs").exists()


# -- galakit evaluate --video: one game saved to watch


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A barely trained CartPole policy (20 updates), trained in this process: games of 10 to 50 steps."""
    from support import tiny_config

    import galakit

    where = tmp_path_factory.mktemp("video")
    return galakit.train(tiny_config(where, total_timesteps=200, hidden_sizes=(8,))).checkpoint


def test_evaluate_video_saves_one_game_and_prints_its_path_and_score(tiny_checkpoint, tmp_path, capsys):
    from PIL import Image

    video = tmp_path / "videos" / "game.gif"
    assert main(["evaluate", str(tiny_checkpoint), "--episodes", "2", "--video", str(video)]) == 0
    printed = capsys.readouterr().out
    line = re.search(rf"^video: {re.escape(str(video))} \(CartPole-v1: raw score (\d+); (\d+) frames\)$", printed,
                     re.MULTILINE)
    assert line and line[1] == line[2], printed  # CartPole: +1 a step, one frame a step
    with Image.open(video) as gif:
        assert gif.size == (600, 400) and 0 < gif.n_frames <= int(line[2])  # identical neighbours merge
    assert [p.name for p in video.parent.iterdir()] == ["game.gif"]  # no temporary file left


def test_evaluate_video_with_another_extension_fails_before_playing(tmp_path, monkeypatch, capsys):
    import galakit.rl.evaluate

    def played(*args, **kwargs):
        raise AssertionError("a game was played before the file name was checked")

    monkeypatch.setattr(galakit.rl.evaluate, "evaluate", played)
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "runs/missing", "--video", "game.avi"]) == 2  # not even the checkpoint is read
    assert capsys.readouterr().err == ("galakit: error: --video: got 'game.avi'; "
                                       "accepted: a file name ending in .mp4 or .gif\n")
    assert list(tmp_path.iterdir()) == []
