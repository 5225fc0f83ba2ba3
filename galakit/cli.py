"""The ``galakit`` command: ``galakit train``, ``galakit evaluate``, ``galakit demo``.

``galakit train`` takes one option per field of ``galakit.Config`` (``--env-id``, ``--num-envs``, …), each with
the field's help text, on top of an optional ``--preset``; ``galakit train --resume runs/<run>`` alone continues a
run with the config it was saved with. A bad value is one line on stderr and exit code 2, as argparse does;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import traceback
import typing
from typing import Any

import numpy as np

from galakit.config import PRESETS, Config


def _parse_optional_bool(text: str) -> bool | None:
    values = {"true": True, "false": False, "auto": None, "none": None}
    if text.lower() not in values:
        raise argparse.ArgumentTypeError(f"got {text!r}; accepted: true, false, auto")
    return values[text.lower()]


def _parse_optional_float(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def _parse_optional_int(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per field. An option left out is absent from the parsed namespace (``SUPPRESS``), so
    ``config_from_args`` tells "not given" from "given as none" and takes the default from where it belongs."""
    parser.argument_default = argparse.SUPPRESS
    hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        flag, kind, help_text = "--" + f.name.replace("_", "-"), hints[f.name], f.metadata["help"]
        help_text += f" (default: {f.default})"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)
        elif kind == bool | None:
            parser.add_argument(flag, type=_parse_optional_bool, metavar="{true,false,auto}", help=help_text)
        elif kind == float | None:
            parser.add_argument(flag, type=_parse_optional_float, metavar="FLOAT|none", help=help_text)
        elif kind == int | None:
            parser.add_argument(flag, type=_parse_optional_int, metavar="INT|none", help=help_text)
        elif kind == tuple[int, ...]:
            parser.add_argument(flag, type=int, nargs="+", metavar="N", help=help_text)
        else:
            base = int if kind is int else float if kind is float else str
            parser.add_argument(flag, type=base, help=help_text)


def config_from_args(args: argparse.Namespace) -> Config:
    """The options given on the command line, on top of (last wins): ``Config``'s defaults, the resumed run's
    saved config (``--resume``), the preset (``--preset``)."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if hasattr(args, f.name)}
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="galakit", description="Learn and run GALA-A2C.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=False,
                        help="On an error, show the traceback rather than one line.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="Train a learner.", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                           parents=[common])
    train.add_argument("--preset", choices=sorted(PRESETS), default=None, help="Start from a named preset.")
    _add_config_options(train)
    ev = sub.add_parser("evaluate", help="Score a checkpoint: raw returns of full games.", parents=[common])
    ev.add_argument("checkpoint", help="A ckpt_*.pt file or a run directory (its newest checkpoint).")
    ev.add_argument("--episodes", type=int, default=10, help="Games to play (default: 10).")
    ev.add_argument("--deterministic", action="store_true", help="Take the most likely action.")
    ev.add_argument("--device", default="cpu", help="Device for the policy (default: cpu).")
    demo = sub.add_parser("demo", help="GALA-A2C: 4 gossiping learners on CartPole; prints and plots the result.",
                          parents=[common])
    demo.add_argument("--run-dir", default="runs/demo",
                      help="Where the demo writes (default: runs/demo; runs/demo_2, … once that holds a run).")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; a user error (a bad value, a missing file) is one line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    command = {"train": run_train, "evaluate": run_evaluate, "demo": lambda a: run_demo(a.run_dir)}[args.command]
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
    from galakit.runtime.launch import torchrun_config, torchrun_environment, train, worker_main

    ranks = torchrun_environment()
    cfg = config_from_args(args)
    if ranks is not None:  # one learner of a torchrun job: the job is the launcher
        cfg = torchrun_config(cfg, world_size=ranks[1])
    preflight(cfg)
    if ranks is not None:
        worker_main(*ranks, cfg, init_method="env://")
        return 0
    signal.signal(signal.SIGTERM, _interrupt)  # a scheduler's SIGTERM stops the run like Ctrl-C: saved first
    metrics = train(cfg)
    print(f"{metrics.summary()}\nrun directory: {metrics.run_dir}\ncheckpoint: {metrics.checkpoint}")
    if metrics.consensus:
        print(describe(metrics.consensus[-1]))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """``galakit evaluate``: raw returns of full games played by a checkpoint's policy."""
    from galakit.rl.evaluate import evaluate

    scores = evaluate(args.checkpoint, episodes=args.episodes, deterministic=args.deterministic, device=args.device)
    print(f"{len(scores)} games: mean raw return {scores.mean():.2f} ± {scores.std():.2f} "
          f"(min {scores.min():.1f}, max {scores.max():.1f})")
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
