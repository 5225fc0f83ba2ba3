"""Throughput of the ways to run several A2C learners, on Pong, all measured in one run on this machine.

Each configuration trains for a fixed number of updates; the rate is the sum over learners of agent steps/s
between a warm-up update and the last one (frames/s = 4 × steps/s), next to the machine's CPU utilisation
(from /proc/stat) over the same window. Printed ratios and their targets:

  gala / a2c-independent (gossip off), 2 learners × 8 envs     : ≥ 0.95 (gossip overhead ≤ 5 %)
  gala with gossip over gloo sockets / gossip off               : (the transport torchrun runs use)
  gala with diagnostics every 10 updates / without              : ~ 1 (diagnostics do not make learners wait)
  gala (2 single-thread learners) / one A2C learner, 16 envs    : ≥ 1.3 (the paper's hardware-utilisation claim)
  gala / allreduce, equal learners                              : ≥ 1.0
  gala / allreduce, learner 0's simulators slowed 2× on purpose : ≥ 1.3

Where there is a GPU the learners run on it (device "auto"), GPU utilisation is printed next to the CPU's, and
the default configurations add the paper's setting: 4 GALA learners × 16 envs sharing that GPU.

Run: `python bench/gala_throughput.py` (about 4 minutes on 2 cores; --updates, --passes, --configs to change).
"""

from __future__ import annotations  # noqa: I001  (galakit before torch: its OpenMP setting applies here too)

import argparse
import os
import shutil
import subprocess
import tempfile
import threading
import time

import galakit
import torch
from galakit import Config

ENV = "PongNoFrameskip-v4"


def cpu_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class GpuUtilisation:
    """Mean utilisation of GPU 0 over a window, sampled with ``nvidia-smi`` every 0.2 s in a thread (the
    number the driver reports: the share of time a kernel was running). ``None`` on machines without one."""

    def __init__(self):
        self.available = torch.cuda.is_available() and shutil.which("nvidia-smi") is not None
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> None:
        if self.available:
            self._thread.start()

    def stop(self) -> float | None:
        if not self.available:
            return None
        self._stop.set()
        self._thread.join()
        return sum(self.samples) / len(self.samples) / 100 if self.samples else None

    def _sample(self) -> None:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
        while not self._stop.wait(0.2):
            out = subprocess.run(query, capture_output=True, text=True).stdout.split()
            self.samples += [float(v) for v in out if v.replace(".", "", 1).isdigit()][:1]


def measure(name: str, updates: int, warmup: int, **kw) -> tuple[float, float]:
    """(agent steps/s summed over learners, CPU utilisation) of one configuration; GPU utilisation is printed
    where there is a GPU (the learners then run on it: device "auto")."""
    cfg = Config.preset("atari", env_id=ENV, run_dir=tempfile.mkdtemp(prefix="galakit-bench-"), progress=False,
                        tensorboard=False, log_interval=1, checkpoint_interval=0, **kw)
    cfg = cfg.replace(total_timesteps=(updates + warmup) * cfg.batch_size * cfg.num_learners)
    stamps: dict[int, list[tuple[int, float]]] = {}
    cpu: dict[str, tuple[int, int]] = {}
    gpu = GpuUtilisation()

    def record(row):
        stamps.setdefault(row["rank"], []).append((row["global_step"], time.perf_counter()))
        if row["update"] == warmup and "start" not in cpu:
            cpu["start"] = cpu_busy()
            gpu.start()

    galakit.train(cfg, callback=record)
    shutil.rmtree(cfg.run_dir)
    busy0, total0 = cpu.get("start", (0, 0))
    busy1, total1 = cpu_busy()
    gpu_utilisation = gpu.stop()
    rate = 0.0
    for rows in stamps.values():
        (s0, t0), (s1, t1) = rows[warmup - 1], rows[-1]
        rate += (s1 - s0) / (t1 - t0)
    utilisation = (busy1 - busy0) / max(1, total1 - total0)
    gpu_text = "" if gpu_utilisation is None else f"  GPU {100 * gpu_utilisation:5.1f} %"
    print(f"  {name:34s} {rate:7.0f} steps/s  {4 * rate:7.0f} frames/s  CPU {100 * utilisation:5.1f} %{gpu_text}",
          flush=True)
    return rate, utilisation


TWO = dict(num_learners=2, num_envs=8, torch_threads=1, env_threads=1)
STRAGGLER = dict(TWO, slow_learners=(0,), slowdown=2.0)
CONFIGS = {
    "a2c-independent": ("a2c-independent (gossip off)", dict(algo="a2c", **TWO)),
    "gala": ("gala (ring, non-blocking)", dict(algo="gala", **TWO)),
    "gala-gloo": ("gala, gossip over gloo sockets", dict(algo="gala", gossip_transport="gloo", **TWO)),
    "gala-diag": ("gala, diagnostics every 10 updates", dict(algo="gala", diag_interval=10, **TWO)),
    "allreduce": ("allreduce", dict(algo="allreduce", **TWO)),
    "a3c": ("a3c (Hogwild)", dict(algo="a3c", **TWO)),
    "a2c-single": ("a2c, 1 learner × 16 envs, all cores", dict(algo="a2c", num_envs=16)),
    "gala-straggler": ("gala, learner 0 slowed 2x", dict(algo="gala", **STRAGGLER)),
    "allreduce-straggler": ("allreduce, learner 0 slowed 2x", dict(algo="allreduce", **STRAGGLER)),
    # the paper's setting: several learners share one GPU (measured by default only where there is one)
    "gala-4x16": ("gala, 4 learners × 16 envs", dict(algo="gala", num_learners=4, num_envs=16)),
}
DEFAULT_CONFIGS = [key for key in CONFIGS if key != "gala-4x16" or torch.cuda.is_available()]
RATIOS = [  # (label, numerator, denominator, target)
    ("gala / gossip off (overhead)", "gala", "a2c-independent", ">= 0.95"),
    ("gala over gloo / gossip off", "gala-gloo", "a2c-independent", ""),
    ("gala with / without diagnostics", "gala-diag", "gala", "~ 1"),
    ("gala 2x1-thread / one A2C learner", "gala", "a2c-single", ">= 1.3"),
    ("gala / allreduce", "gala", "allreduce", ">= 1.0"),
    ("gala / allreduce with a straggler", "gala-straggler", "allreduce-straggler", ">= 1.3"),
    ("a3c / allreduce", "a3c", "allreduce", ""),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=150, help="Timed updates per learner and measurement.")
    parser.add_argument("--warmup", type=int, default=20, help="Untimed updates first.")
    parser.add_argument("--configs", default=",".join(DEFAULT_CONFIGS),
                        help="Comma-separated subset of: " + ", ".join(CONFIGS))
    parser.add_argument("--passes", type=int, default=2, help="Measurements per configuration (averaged).")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, torch {torch.__version__}, {ENV}; 2 learners × 8 envs unless said otherwise")
    # This VM's speed drifts by tens of percent over minutes: measure every configuration in each pass, the order
    # reversed from one pass to the next, and compare the means.
    keys = args.configs.split(",")
    measured: dict[str, list[float]] = {key: [] for key in keys}
    for i in range(args.passes):
        print(f"pass {i + 1} of {args.passes}")
        for key in keys if i % 2 == 0 else reversed(keys):
            label, kw = CONFIGS[key]
            measured[key].append(measure(label, args.updates, args.warmup, **kw)[0])
    rates = {key: sum(values) / len(values) for key, values in measured.items()}
    print("means over the passes")
    for key in keys:
        print(f"  {CONFIGS[key][0]:34s} {rates[key]:7.0f} steps/s  {4 * rates[key]:7.0f} frames/s")
    for label, a, b, target in RATIOS:
        if a in rates and b in rates:
            print(f"{label:36s}: {rates[a] / rates[b]:.2f}x  (target {target})" if target else
                  f"{label:36s}: {rates[a] / rates[b]:.2f}x")


if __name__ == "__main__":
    main()
