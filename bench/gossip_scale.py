"""Gossip simulator at scale: one-peer exponential gossip, 4,096 learners × 1,000 steps on 1,000-dim float32 vectors.

Prints the time to build the schedule and to simulate, with the per-step diagnostics recorded (distance of every
learner to the average, pairwise-distance bound, the average). Target: simulation under 30 s on 2 CPU cores.
Run: `python bench/gossip_scale.py` (options: --help).
"""

from __future__ import annotations

import argparse
import time

import torch

from galakit.gossip.simulate import simulate_sync
from galakit.gossip.topology import one_peer_exponential


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096, help="number of learners")
    parser.add_argument("--d", type=int, default=1000, help="dimension of each learner's vector")
    parser.add_argument("--steps", type=int, default=1000, help="gossip steps")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    schedule = one_peer_exponential(args.n)
    built = time.perf_counter() - start
    x0 = torch.randn(args.n, args.d, generator=torch.Generator().manual_seed(0))  # float32

    start = time.perf_counter()
    trace = simulate_sync(schedule, x0, args.steps)
    simulated = time.perf_counter() - start

    error = trace.consensus_error
    print(f"one-peer exponential gossip, n = {args.n}, d = {args.d}, {args.steps} steps, "
          f"{args.threads} threads, float32")
    print(f"  build schedule (τ = {schedule.period}): {built:.2f} s")
    print(f"  simulate:                 {simulated:.2f} s ({1e3 * simulated / args.steps:.2f} ms/step)")
    print(f"  consensus error ‖X−1x̄ᵀ‖_F: {error[0]:.4g} at k = 0, {error[schedule.period]:.3g} at "
          f"k = τ, {error[-1]:.3g} at k = {args.steps}")


if __name__ == "__main__":
    main()
