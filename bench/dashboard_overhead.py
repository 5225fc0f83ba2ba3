"""What the live dashboard costs a run: a 2-learner GALA CartPole run's steps/s with a `Dashboard` attached, next to
the same run without one, measured in this run, interleaved (off, on, on, off, ...).

The dashboard runs as it does in JupyterLab (widgets, a redraw thread rendering the six panels to PNG), only
without a browser to send the images to. Each learner reports a row at every update and the ε-ball is read every
10 updates, so the dashboard gets far more events than a usual run sends. The rate is the sum over learners of
agent steps/s between a warm-up row and the last one (from each learner's progress rows).

Target: with / without ≥ 0.95.
Run: `python bench/dashboard_overhead.py` (about 2 minutes on 2 cores; --updates and --passes to change).
"""

from __future__ import annotations  # noqa: I001  (galakit before torch: its OpenMP setting applies here too)

import argparse
import tempfile

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
                 total_timesteps=updates * 8 * 5, log_interval=1, diag_interval=10, progress=False,
                 tensorboard=False, checkpoint_interval=0, run_dir=where)
    dash = Dashboard(live=True) if with_dashboard else None
    if dash is not None:
        dash._display = lambda: None  # no browser here: the widgets are drawn, nothing is sent
    metrics = galakit.train(cfg, observers=[dash] if dash else [])
    return steps_per_second(metrics, warmup=max(10, updates // 10)), dash


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=3000, help="updates per learner and run")
    parser.add_argument("--passes", type=int, default=3, help="pairs of runs (off/on, then on/off, ...)")
    args = parser.parse_args()
    rates: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.passes):
            for on in ((False, True) if i % 2 == 0 else (True, False)):
                rate, dash = one_run(args.updates, on, f"{tmp}/run{i}{int(on)}")
                rates[on].append(rate)
                extra = (f"  ({dash.record.version} events, last draw {dash.draw_seconds * 1000:.0f} ms)"
                         if dash else "")
                print(f"pass {i} dashboard {'on ' if on else 'off'}: {rate:8.0f} steps/s{extra}", flush=True)
    off, on = (sum(rates[k]) / len(rates[k]) for k in (False, True))
    print(f"\nmean steps/s without the dashboard {off:.0f}, with {on:.0f}")
    print(f"with / without: {on / off:.3f}x  (target ≥ 0.95)")


if __name__ == "__main__":
    main()
