"""What the live dashboard costs a run: a 2-learner GALA CartPole run's steps/s with a `Dashboard` attached, next to
the same run without one, measured in this run, interleaved (off, on, on, off, ...).

The dashboard runs as it does in JupyterLab (widgets, a redraw thread rendering the six panels to PNG), only
without a browser to send the images to. Each learner reports a row at every update and the ε-ball is read every
10 updates, so the dashboard gets far more events than a usual run sends. The learning rate is 0: a policy that
learns plays longer games as it goes, which changes the run's speed by more than the dashboard does. The rate is the
sum over learners of agent steps/s between a warm-up row and the last one (from each learner's progress rows); the
ratio printed is the median over passes of (with / without) within a pass, the two runs of a pass back to back.

Target: with / without ≥ 0.95.
Run: `python bench/dashboard_overhead.py` (about 2 minutes on 2 cores; --updates and --passes to change).
"""

from __future__ import annotations  # noqa: I001  (galakit before torch: its OpenMP setting applies here too)

import argparse
import resource
import tempfile
import time

import galakit
from galakit import Config
from galakit.views.dashboard import Dashboard


def steps_per_second(metrics, warmup: int) -> float:
    """Σ over learners of (steps between row ``warmup`` and the last) / (seconds between them)."""
    total = 0.0
    for rank in sorted({r["rank"] for r in metrics.progress}):
        rows = [r for r in metrics.progress if r["rank"] == rank]
        first, last = rows[warmup], rows[-1]
        total += (last["global_step"] - first["global_step"]) / (last["time"] - first["time"])
    return total


def one_run(updates: int, with_dashboard: bool, where: str) -> tuple[float, Dashboard | None]:
    cfg = Config(env_id="CartPole-v1", algo="gala", num_learners=2, num_envs=8, num_steps=5,
                 total_timesteps=updates * 8 * 5, lr=0.0, log_interval=1, diag_interval=10, progress=False,
                 tensorboard=False, checkpoint_interval=0, run_dir=where)
    dash = Dashboard(live=True) if with_dashboard else None
    if dash is not None:
        dash._display = lambda: None  # no browser here: the widgets are drawn, nothing is sent
    cpu, wall = parent_cpu(), time.perf_counter()
    metrics = galakit.train(cfg, observers=[dash] if dash else [])
    share = (parent_cpu() - cpu) / (time.perf_counter() - wall)
    return steps_per_second(metrics, warmup=max(10, updates // 10)), share, dash


def parent_cpu() -> float:
    """CPU seconds of this process (the supervisor, its observers, the dashboard), not of the learners."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=3000, help="updates per learner and run")
    parser.add_argument("--passes", type=int, default=5, help="pairs of runs (off/on, then on/off, ...)")
    args = parser.parse_args()
    rates: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.passes):
            for on in ((False, True) if i % 2 == 0 else (True, False)):
                rate, share, dash = one_run(args.updates, on, f"{tmp}/run{i}{int(on)}")
                rates[on].append(rate)
                extra = (f", {dash.record.version} events, last draw {dash.draw_seconds * 1000:.0f} ms"
                         if dash else "")
                print(f"pass {i} dashboard {'on ' if on else 'off'}: {rate:8.0f} steps/s  (this process: "
                      f"{share:.1%} of a core{extra})", flush=True)
    off, on = (sum(rates[k]) / len(rates[k]) for k in (False, True))
    ratios = sorted(a / b for a, b in zip(rates[True], rates[False], strict=True))
    print(f"\nmean steps/s without the dashboard {off:.0f}, with {on:.0f} (ratio of the means {on / off:.3f})")
    print(f"with / without, each pass: {' '.join(f'{r:.3f}' for r in ratios)}")
    print(f"with / without, median of the passes: {ratios[len(ratios) // 2]:.3f}x  (target ≥ 0.95)")


if __name__ == "__main__":
    main()
