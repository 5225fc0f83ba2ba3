"""The ``galakit`` command: ``galakit train``, ``galakit evaluate``, ``galakit demo``.

``galakit train`` takes one option per field of ``galakit.Config`` (``--env-id``, ``--num-envs``, …), each with
the field's help text, grouped as in ``Config``, on top of an optional ``--preset`` (``galakit train --preset
atari --help`` shows the preset's values as the defaults); ``galakit train --resume runs/<run>`` alone continues a
run with the config it was saved with. ``--topology`` takes a name or a graph file. A bad value is one line on
stderr and exit code 2, as argparse does; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import re
import signal
import sys
import traceback
import typing
from typing import Any

import numpy as np

from galakit.config import ALGOS, ENV_BACKENDS, GOSSIP_POLICIES, GOSSIP_TRANSPORTS, PRESETS, START_METHODS, Config
from galakit.gossip.topology import TOPOLOGIES, Schedule, read_graph
from galakit.validation import InvalidValue, fail

# Values of the fields that take one of a few: ``--algo {a2c,gala,...}`` in the help. Config checks them, so a bad
# value fails in the one error format. Config's device check takes 'cuda:N' for any N (no tuple to import).
CHOICES: dict[str, tuple[str, ...]] = {"algo": ALGOS, "gossip_transport": GOSSIP_TRANSPORTS,
                                       "gossip_policy": GOSSIP_POLICIES,
                                       "start_method": START_METHODS, "env_backend": ENV_BACKENDS,
                                       "device": ("auto", "cpu", "cuda", "cuda:N")}
TOPOLOGY_ACCEPTED = f"one of {', '.join(TOPOLOGIES)} or a graph file (edge list or JSON adjacency)"
TOPOLOGY_HELP = (f" On the command line: {TOPOLOGY_ACCEPTED}. A graph file (galakit.gossip.topology.read_graph) "
                 "has a line 'j i' or 'j i weight' per edge (j sends to i), or is a .json n × n matrix; "
                 "the number of learners then defaults to its number of nodes.")

# The option groups of ``galakit train``, named by the field that opens each (Config's "# --" sections, in order).
GROUPS = {"env_id": "what to train on", "num_learners": "several learners (GALA and the baselines)",
          "lr": "A2C", "clip_rewards": "environment signal", "hidden_sizes": "model", "seed": "machine",
          "run_dir": "bookkeeping"}

TRAIN_EXAMPLES = """\
examples:
  galakit train --preset cartpole
      one A2C learner solves CartPole-v1 (150k agent steps)
  galakit train --preset cartpole --algo gala --num-learners 4 --lr 1.4e-3 --diag-interval 25
      GALA: 4 learners gossiping on a directed ring, with their distances to the average
  galakit train --preset cartpole --algo gala --num-learners 8 --topology exponential
      the same on another graph; --topology also takes a graph file (edge list or JSON adjacency)
  galakit train --preset atari --env-id BreakoutNoFrameskip-v4
      the paper's A2C on Atari (10M agent steps = 40M frames)
  galakit train --preset atari --help
      this help, with the preset's values as the defaults
  galakit train --resume runs/<run_name>
      continue a run from its newest checkpoint, with its saved settings
  torchrun --nnodes 2 --nproc_per_node 4 --rdzv_endpoint HOST:29500 -m galakit.cli train \\
      --preset atari --algo gala --lr 1.4e-3 --run-dir runs/pong-gala
      one learner per process, across machines
"""

EVALUATE_EXAMPLES = """\
examples:
  galakit evaluate runs/<run_name>
      the newest checkpoint of a run of one learner
  galakit evaluate runs/<run_name>/consensus
      a run of several learners: their average model
  galakit evaluate runs/<run_name>/checkpoints/ckpt_<step>.pt --episodes 30 --deterministic
      one checkpoint, 30 games, the most likely action each step
  galakit evaluate runs/<run_name> --video cartpole.gif
      the same scores, and one game saved as a video (.mp4 or .gif) to watch
"""

MAIN_EXAMPLES = """\
examples:
  galakit demo
      GALA-A2C: 4 learners gossiping on CartPole-v1, then their returns, distances and a plot
  galakit train --preset cartpole
      one A2C learner solves CartPole-v1
  galakit train --preset atari --env-id PongNoFrameskip-v4
      the paper's A2C on Pong
  galakit train --help
      every setting, grouped, with its default, and more examples
  galakit evaluate runs/<run_name> --episodes 10
      score a run's newest checkpoint
"""


def _parse_optional_bool(text: str) -> bool | None:
    values = {"true": True, "false": False, "auto": None, "none": None}
    if text.lower() not in values:
        raise argparse.ArgumentTypeError(f"got {text!r}; accepted: true, false, auto")
    return values[text.lower()]


def _parse_optional_float(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def _parse_optional_int(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def _formatter(prog: str) -> argparse.HelpFormatter:
    """argparse's formatter, less its own defaults (each option's help says its default once) and with the
    examples kept as written."""
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=34)


def _shown(value: Any, kind: Any) -> str:
    """A default as it would be typed on the command line: ``none``/``auto`` for None, ``64 64`` for a tuple."""
    if value is None:
        return "auto" if kind == bool | None else "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return " ".join(map(str, value)) or "none"
    return str(value)


def _help_text(f: dataclasses.Field, kind: Any, default: Any) -> str:
    """The field's help, then its default once. A help text that already says its default (``run_dir``'s
    "default runs/<run_name>") keeps it, unless a preset changed that default."""
    text = f.metadata["help"]
    if f.name == "topology":
        text += TOPOLOGY_HELP
    if not re.search(r"\bdefault\b", text, re.IGNORECASE) or default != f.default:
        text += f" (default: {_shown(default, kind)})"
    return text.replace("%", "%%")  # argparse %-formats help texts


def _add_config_option(group: argparse._ArgumentGroup, f: dataclasses.Field, kind: Any, default: Any) -> None:
    """One option for field ``f``. Left out, it is absent from the parsed namespace (``SUPPRESS``), so
    ``config_from_args`` tells "not given" from "given as none" and takes the default from where it belongs."""
    flag = "--" + f.name.replace("_", "-")
    options: dict[str, Any] = dict(default=argparse.SUPPRESS, help=_help_text(f, kind, default))
    if f.name in CHOICES:
        options.update(metavar="{" + ",".join(CHOICES[f.name]) + "}")
    if f.name == "topology":
        options.update(metavar="NAME_OR_FILE")
    if kind is bool:
        options.update(action=argparse.BooleanOptionalAction)
    elif kind == bool | None:
        options.update(type=_parse_optional_bool, metavar="{true,false,auto}")
    elif kind == float | None:
        options.update(type=_parse_optional_float, metavar="FLOAT|none")
    elif kind == int | None:
        options.update(type=_parse_optional_int, metavar="INT|none")
    elif kind == tuple[int, ...]:
        options.update(type=int, nargs="+", metavar="N")
    else:
        options.update(type=int if kind is int else float if kind is float else str)
    group.add_argument(flag, **options)


def _add_config_options(parser: argparse.ArgumentParser, preset: str | None = None) -> None:
    """One option per field of ``Config``, in its order and groups; the defaults shown are the preset's, if any."""
    hints = typing.get_type_hints(Config)
    defaults = {f.name: f.default for f in dataclasses.fields(Config)} | PRESETS.get(preset, {})
    group: Any = parser
    for f in dataclasses.fields(Config):
        if f.name in GROUPS:
            group = parser.add_argument_group(GROUPS[f.name])
        _add_config_option(group, f, hints[f.name], defaults[f.name])


def topology_from_arg(value: str) -> str | Schedule:
    """``--topology``: a name of ``TOPOLOGIES`` as it is, or the ``Schedule`` read from a graph file (a file
    that cannot be read is reported under ``topology``, the option the user gave)."""
    if value in TOPOLOGIES:
        return value
    if os.path.isfile(value):
        try:
            return read_graph(value)
        except InvalidValue as err:
            fail("topology", value, err.accepted, err.why)
    close = difflib.get_close_matches(value, TOPOLOGIES, n=1)
    why = (f"did you mean {close[0]!r}?" if close else
           "no such file" if os.sep in value or os.path.splitext(value)[1] else "")
    fail("topology", value, TOPOLOGY_ACCEPTED, why)


def config_from_args(args: argparse.Namespace) -> Config:
    """The options given on the command line, on top of (last wins): ``Config``'s defaults, the resumed run's
    saved config (``--resume``), the preset (``--preset``). A graph file given as ``--topology`` becomes its
    ``Schedule``, and the number of learners its number of nodes unless ``--num-learners`` says otherwise."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if hasattr(args, f.name)}
    if "topology" in given:
        given["topology"] = topology_from_arg(given["topology"])
        if isinstance(given["topology"], Schedule):  # a graph file says how many learners it connects
            given.setdefault("num_learners", given["topology"].n)
    saved = resumed_config(given["resume"]) if given.get("resume") is not None else {}
    preset = PRESETS[args.preset] if getattr(args, "preset", None) else {}
    return Config(**{**saved, **preset, **given})


def resumed_config(resume: str) -> dict[str, Any]:
    """The config a run was saved with (learner 0's, for a run of several learners), less where it ran: the
    resumed run continues in the checkpoint's own directory unless ``--run-dir`` says otherwise."""
    from galakit.preflight import resumed_state

    saved = resumed_state(resume)["config"]
    return {f.name: saved[f.name] for f in dataclasses.fields(Config)
            if f.name in saved and f.name not in ("run_dir", "resume")}


def preset_named(argv: list[str]) -> str | None:
    """The ``--preset`` on a command line (the last one, as argparse takes it), read before the parser is built so
    that the help can show that preset's values."""
    name = None
    for i, arg in enumerate(argv):
        if arg == "--preset" and i + 1 < len(argv):
            name = argv[i + 1]
        elif arg.startswith("--preset="):
            name = arg.partition("=")[2]
    return name if name in PRESETS else None


def build_parser(preset: str | None = None) -> argparse.ArgumentParser:
    """The ``galakit`` parser; ``galakit train --help`` shows ``preset``'s values as the defaults, if one is named."""
    parser = argparse.ArgumentParser(prog="galakit", description="Learn and run GALA-A2C.", epilog=MAIN_EXAMPLES,
                                     formatter_class=_formatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=False,
                        help="On an error, show the traceback rather than one line.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train_parser(sub, common, preset)
    ev = sub.add_parser("evaluate", help="Score a checkpoint: raw returns of full games.", parents=[common],
                        description="Score a checkpoint: raw returns of full games played by its policy.",
                        epilog=EVALUATE_EXAMPLES, formatter_class=_formatter)
    ev.add_argument("checkpoint", help="A ckpt_*.pt file or a run directory (its newest checkpoint).")
    ev.add_argument("--episodes", type=int, default=10, help="Games to play (default: 10).")
    ev.add_argument("--deterministic", action="store_true", help="Take the most likely action.")
    ev.add_argument("--device", default="cpu", help="Device for the policy (default: cpu).")
    ev.add_argument("--video", metavar="FILE.mp4|FILE.gif", default=None,
                    help="Also play one game and save it as the game draws it, as an .mp4 or a .gif "
                    "(galakit.views.playback; at most 3000 frames).")
    _add_reproduce_parser(sub, common)
    demo = sub.add_parser("demo", help="GALA-A2C: 4 gossiping learners on CartPole; prints and plots the result.",
                          parents=[common], formatter_class=_formatter)
    demo.add_argument("--run-dir", default="runs/demo",
                      help="Where the demo writes (default: runs/demo; runs/demo_2, … once that holds a run).")
    return parser


def _add_train_parser(sub: Any, common: argparse.ArgumentParser, preset: str | None) -> None:
    shown = f"\nThe defaults shown are those of preset {preset!r}." if preset else ""
    train = sub.add_parser("train", help="Train one learner, or several (GALA and the baselines).",
                           description="Train A2C learners: one option per setting of galakit.Config. Options "
                           "given win over the\npreset's values (--preset), which win over the resumed run's "
                           "saved settings (--resume)." + shown,
                           epilog=TRAIN_EXAMPLES, formatter_class=_formatter, parents=[common])
    train.add_argument("--preset", choices=sorted(PRESETS), default=None,
                       help="Start from a named preset (with --help: its values shown as the defaults).")
    _add_config_options(train, preset)


def _add_reproduce_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    from galakit.grids import GRIDS

    grids = "\n".join(f"  {name}: {grid.about}" for name, grid in GRIDS.items())
    rep = sub.add_parser("reproduce", help="The paper's comparisons: a resumable grid of games × algorithms × seeds.",
                         parents=[common], formatter_class=_formatter,
                         description="Run a grid of games × algorithms × seeds, one run directory per cell, and write "
                         "OUT/results.csv and\nOUT/results.md. Run it again to continue: finished cells are never "
                         "run again, stopped ones resume\nfrom their checkpoints (galakit.grids).\n\ngrids:\n"
                         + grids)
    rep.add_argument("--grid", choices=sorted(GRIDS), default="cpu-small", help="Which grid (default: cpu-small).")
    rep.add_argument("--out", default=None, help="Where the grid writes (default: runs/reproduce-<grid>).")
    rep.add_argument("--games", nargs="+", default=None, help="Only these games (e.g. Pong Breakout).")
    rep.add_argument("--algos", nargs="+", default=None, help="Only these algorithms (a2c allreduce a3c gala).")
    rep.add_argument("--seeds", nargs="+", type=int, default=None, help="Only these seeds.")
    rep.add_argument("--total-timesteps", type=int, default=None,
                     help="Agent steps per cell (1 step = 4 frames); more than a finished cell ran continues it.")
    rep.add_argument("--eval-episodes", type=int, default=None, help="Games to score each final model on.")
    rep.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE",
                     help="Any other galakit.Config field for every cell, e.g. --set lr=1e-3 sync_freq=None.")


def run_reproduce(args: argparse.Namespace) -> int:
    from galakit.grids import parse_overrides, reproduce

    overrides = parse_overrides(args.set)
    if args.total_timesteps is not None:
        overrides["total_timesteps"] = args.total_timesteps
    signal.signal(signal.SIGTERM, _interrupt)
    reproduce(args.grid, args.out or f"runs/reproduce-{args.grid}", games=args.games, algos=args.algos,
              seeds=args.seeds, eval_episodes=args.eval_episodes, **overrides)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one command; a user error (a bad value, a missing file) is one line on stderr and exit code 2."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(preset_named(argv)).parse_args(argv)
    command = {"train": run_train, "evaluate": run_evaluate, "reproduce": run_reproduce,
               "demo": lambda a: run_demo(a.run_dir)}[args.command]
    try:
        return command(args)
    except (ValueError, OSError) as err:  # what the user can fix: say what, not where in galakit
        if args.debug:
            traceback.print_exc()
        else:
            print(f"galakit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the run saved and said where (galakit.RunInterrupted)
        if args.debug:
            traceback.print_exc()
        return 130
    except RuntimeError as err:
        from galakit.runtime.launch import LearnerError

        if not isinstance(err, LearnerError) or args.debug:
            raise
        print(f"galakit: error: {err}", file=sys.stderr)  # the learner's own traceback is in the message
        return 1


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def run_train(args: argparse.Namespace) -> int:
    """``galakit train``: check the config here (``preflight``), then train, or be one learner of a torchrun job."""
    from galakit.preflight import preflight
    from galakit.runtime.diagnostics import describe
    from galakit.runtime.launch import train
    from galakit.runtime.torchrun import torchrun_config, torchrun_environment, torchrun_worker

    ranks = torchrun_environment()
    cfg = config_from_args(args)
    if ranks is not None:  # one learner of a torchrun job: the job is the launcher
        cfg = torchrun_config(cfg, world_size=ranks[1])
    preflight(cfg)
    if ranks is not None:
        torchrun_worker(*ranks, cfg)
        return 0
    signal.signal(signal.SIGTERM, _interrupt)  # a scheduler's SIGTERM stops the run like Ctrl-C: saved first
    metrics = train(cfg)
    print(f"{metrics.summary()}\nrun directory: {metrics.run_dir}\ncheckpoint: {metrics.checkpoint}")
    if metrics.consensus:
        print(describe(metrics.consensus[-1]))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """``galakit evaluate``: raw returns of full games played by a checkpoint's policy; with ``--video``, one
    more game saved as a video (its name checked before any game is played)."""
    from galakit.rl.evaluate import evaluate

    if args.video is not None:
        from galakit.views.playback import check_video_path

        check_video_path(args.video, "--video")
    scores = evaluate(args.checkpoint, episodes=args.episodes, deterministic=args.deterministic, device=args.device)
    print(f"{len(scores)} games: mean raw return {scores.mean():.2f} ± {scores.std():.2f} "
          f"(min {scores.min():.1f}, max {scores.max():.1f})")
    if args.video is not None:
        from galakit.views.playback import replay

        game = replay(args.checkpoint, deterministic=args.deterministic, device=args.device)
        print(f"video: {game.save(args.video)} ({game.caption()}; {len(game.frames)} frames)")
    return 0


def run_demo(run_dir: str) -> int:
    """GALA-A2C: 4 learners on a directed ring learn CartPole-v1; per-learner returns, consensus, a plot."""
    import matplotlib

    matplotlib.use("Agg")
    from galakit.io.checkpoint import new_run_dir
    from galakit.rl.evaluate import evaluate
    from galakit.runtime.diagnostics import describe
    from galakit.runtime.launch import train
    from galakit.views.plots import plot_training

    run_dir = str(new_run_dir(os.path.basename(run_dir), os.path.dirname(run_dir) or "."))  # then runs/demo_2, …

    cfg = Config.preset("cartpole", algo="gala", num_learners=4, num_envs=4, lr=1.4e-3, lr_decay=True,
                        topology="ring", diag_interval=25, run_dir=run_dir, seed=1)
    print(f"galakit demo: GALA-A2C, {cfg.num_learners} learners on a directed ring, each with {cfg.num_envs} "
          f"{cfg.env_id} simulators; {cfg.total_timesteps} steps in all")
    metrics = train(cfg)
    for rank in range(cfg.num_learners):
        print(f"  learner {rank}: mean raw return of its last 100 games {metrics.mean_return(100, rank=rank):6.1f}")
    if metrics.consensus:
        print(f"  {describe(metrics.consensus[-1])}")
    scores = evaluate(metrics.checkpoint, episodes=20)
    print(f"  the learners' average model ({metrics.checkpoint}): mean raw return {np.mean(scores):.1f} "
          f"over {len(scores)} games")
    figure_path = f"{run_dir}/demo.png"
    plot_training(metrics)[0].figure.savefig(figure_path, dpi=100, bbox_inches="tight")
    print(f"  plot: {figure_path}; logs: {run_dir}/learner_*/progress.csv (tensorboard --logdir {run_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
