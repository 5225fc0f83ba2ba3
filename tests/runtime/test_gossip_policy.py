"""The GALA learners and the simulator follow one gossip rule (galakit.gossip.rule): the same write policy, the
same mixing weights (rows normalised, on ``star`` too), the same mix/skip decisions.

* Step for step, asynchronous: four `Gossip` learners in this process, driven on the simulator's clock (each
  step, every learner whose update finishes writes, then each of them mixes or skips), hold exactly the
  simulator's parameters after every step, under both write policies and unequal speeds.
* Step for step, synchronous: a 4-learner GALA run (lr = 0, sync_freq = 0) holds, after every update k, the
  parameters of `simulate_sync` / `simulate_async(sync_freq=0)` from the same X_0, on the ring and on ``star``.
* In distribution, asynchronous: in a 4-learner run with a straggler, what the learners mix matches the simulator
  with the same speeds (the timing of processes on a loaded machine cannot be replayed step for step).
"""

import multiprocessing
import time

import numpy as np
import pytest
import torch
from support import initial_params, tiny_config

import galakit
from galakit.config import Config
from galakit.gossip.simulate import simulate_async, simulate_sync
from galakit.gossip.topology import build_topology
from galakit.io.checkpoint import list_checkpoints, load_checkpoint
from galakit.runtime.coupling import Gossip, shared_slots

HUGE = 100_000_000  # the simulator's "never block"; the learners' is sync_freq=None
N = 4


def flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()


# ------------------------------------------------------------------------ asynchronous, step for step, one process


def drive_learners(schedule, policy: str, update_every: list[int], steps: int):
    """n `Gossip` learners over shared memory, on the simulator's clock: at step k the learners whose update
    finishes (every ``update_every[i]`` steps) write their message, then each of them mixes or skips, in the order
    `simulate_async` uses. Returns X_0 (n, D), the parameters after each step (steps, n, D), and per step and
    learner whether it mixed and the age of what it mixed (−1: did not mix)."""
    n = schedule.n
    torch.manual_seed(0)
    models = [torch.nn.Linear(3, 2) for _ in range(n)]
    x0 = torch.stack([flat(m) for m in models])
    slots = shared_slots(schedule, x0.shape[1], multiprocessing.get_context("spawn"))
    learners = [Gossip(schedule, r, models[r], sync_freq=None, slots=slots, policy=policy) for r in range(n)]
    updates, values = [-1] * n, []
    mixed, age = np.zeros((steps, n), bool), np.full((steps, n), -1)
    for k in range(steps):
        due = [r for r in range(n) if (k + 1) % update_every[r] == 0]
        for r in due:
            updates[r] += 1
            learners[r].write_message(models[r], updates[r])
        for r in due:
            stats = learners[r].aggregate_message(models[r], updates[r])
            mixed[k, r] = bool(stats["gossip_mixed"])
            age[k, r] = stats["staleness"] if mixed[k, r] else -1
        values.append(torch.stack([flat(m) for m in models]))
    for learner in learners:
        learner.close()
    return x0, torch.stack(values).double().numpy(), mixed, age


@pytest.mark.parametrize("policy", ["latest", "skip"])
@pytest.mark.parametrize("topology", ["ring", "star"])
def test_asynchronous_learners_hold_the_simulators_parameters_after_every_step(topology, policy):
    schedule, update_every, steps = build_topology(topology, N), [1, 3, 2, 1], 24
    x0, values, mixed, age = drive_learners(schedule, policy, update_every, steps)
    trace = simulate_async(schedule, x0.double(), steps, sync_freq=HUGE, policy=policy, update_every=update_every,
                           store_values=True)
    assert mixed.any() and (~mixed).any()  # some steps mix, others skip: the policy matters
    assert (trace.mixed == mixed).all()
    assert (trace.age == age).all()
    assert np.allclose(trace.values[1:], values, atol=1e-6)
    other_policy = "skip" if policy == "latest" else "latest"
    other = simulate_async(schedule, x0.double(), steps, sync_freq=HUGE, policy=other_policy,
                           update_every=update_every, store_values=True)
    assert not np.allclose(other.values[1:], values, atol=1e-3)  # the other policy would not match


# ------------------------------------------------------------------------------- runs of 4 learner processes


def cfg(tmp_path, name: str, **kw) -> Config:
    """N GALA learners that start apart and do not learn (lr = 0): only gossip moves their parameters."""
    return tiny_config(tmp_path / name, **{**dict(algo="gala", num_learners=N, lr=0.0, identical_init=False), **kw})


def params_after_each_update(c: Config) -> np.ndarray:
    """(updates, n, D): each learner's parameters in its checkpoint of update k = 1, 2, … ."""
    per_update = []
    for rank in range(c.num_learners):
        rows = {}
        for path in list_checkpoints(f"{c.run_dir}/learner_{rank}/checkpoints"):
            state = load_checkpoint(path)
            rows[state["update"]] = torch.cat([p.flatten() for p in state["model"].values()])
        per_update.append(torch.stack([rows[k] for k in sorted(rows)]))
    return torch.stack(per_update, dim=1).double().numpy()


@pytest.mark.processes
@pytest.mark.parametrize("topology", ["ring", "star"])
def test_synchronous_learners_hold_the_simulators_parameters_after_every_update(tmp_path, topology):
    updates = 10
    c = cfg(tmp_path, topology, topology=topology, sync_freq=0, total_timesteps=N * 2 * 5 * updates,
            checkpoint_interval=1, keep_checkpoints=updates + 1)
    galakit.train(c)
    learners = params_after_each_update(c)
    assert learners.shape[0] == updates
    schedule, x0 = build_topology(topology, N), initial_params(c).double()
    sync = simulate_sync(schedule, x0, updates, store_values=True).values[1:]
    asynchronous = simulate_async(schedule, x0, updates, sync_freq=0, store_values=True).values[1:]
    assert np.allclose(learners, sync, atol=1e-5) and np.allclose(learners, asynchronous, atol=1e-5)
    assert np.abs(learners[0] - x0.numpy()).max() > 0.01  # they did mix
    if topology == "star":  # only column-stochastic: the learners divide each row by its sum, as the simulator
        as_given = simulate_sync(schedule, x0, updates, normalise=False, store_values=True).values[1:]
        assert np.abs(learners - as_given).max() > 0.1


def run_until_the_fast_learners_finish(c: Config, fast: tuple[int, ...]) -> list[dict]:
    """Start the run, stop it (every learner saves) once the learners ``fast`` have made all their updates: the
    straggler has then nothing left to mix with. Returns the progress rows."""
    run, deadline = galakit.start(c), time.monotonic() + 300
    try:
        while not all(run.latest.get(r, {}).get("update") == c.num_updates for r in fast):
            assert not run.done and time.monotonic() < deadline, "the run ended before its fast learners finished"
            time.sleep(0.05)
    finally:
        metrics = run.stop()
    return metrics.progress


@pytest.mark.processes
@pytest.mark.parametrize("transport", ["shared_memory", "gloo"])
def test_a_straggler_mixes_its_fast_in_peers_newest_parameters_as_the_simulator_with_the_same_speeds(tmp_path,
                                                                                                      transport):
    # Ring 0 → 1 → 2 → 3 → 0, learner 0 slowed down, sync_freq=None, default policy ("latest"). On one machine
    # messages arrive at once: the asynchrony is the learners' unequal speeds, so the simulator gets the same
    # speeds (update_every, measured from the progress rows), not delays. Two readings, each over tens of mixes,
    # that do not depend on how the OS interleaves the fast learners (a loaded machine changes the speed ratio,
    # measured here, but not what is mixed):
    # * learner 0 hears from fast 3: under "latest" it mixes 3's newest message (age 0); under "skip" it would
    #   mix the first one 3 sent after 0's previous read, about one slow update (r − 1 of 3's updates) old;
    # * learner 1 hears from slow 0: it mixes each of 0's messages once (never twice; a few may be replaced
    #   when the OS keeps 1 off the cores for longer than one of 0's updates).
    c = cfg(tmp_path, "straggler", topology="ring", sync_freq=None, log_interval=1, slow_learners=(0,),
            slowdown=60.0, total_timesteps=N * 2 * 5 * 600, gossip_transport=transport)
    rows = run_until_the_fast_learners_finish(c, fast=(1, 2, 3))
    by_rank = {r: [row for row in rows if row["rank"] == r] for r in range(N)}
    period = {r: np.median(np.diff([row["time"] for row in by_rank[r]])) for r in range(N)}
    ratio = period[0] / period[3]
    assert ratio > 2.5, f"the straggler is only {ratio:.1f} times slower than its in-peer"

    end_of_3, end_of_1 = by_rank[3][-1]["time"], by_rank[1][-1]["time"]
    ages = [row["staleness"] for row in by_rank[0] if row["gossip_mixed"] and row["time"] <= end_of_3]
    posts_of_0_heard_by_1 = sum(row["time"] <= end_of_1 for row in by_rank[0])
    mixes_of_1 = by_rank[1][-1]["gossip_mixed_total"]

    update_every = [round(ratio), 1, 1, 1]
    steps = 20 * update_every[0]
    schedule, x0 = build_topology("ring", N), initial_params(c).double()
    simulated = {policy: simulate_async(schedule, x0, steps, sync_freq=HUGE, policy=policy, update_every=update_every)
                 for policy in ("latest", "skip")}
    simulated_age = {policy: np.median(t.age[t.mixed[:, 0], 0][1:]) for policy, t in simulated.items()}
    assert simulated_age["latest"] == 0 and simulated_age["skip"] == update_every[0] - 1 >= 2

    assert len(ages) >= 10, ages
    assert np.median(ages) <= simulated_age["latest"] + 1 < simulated_age["skip"], (ages, simulated_age)
    assert simulated["latest"].mixed[:, 1].sum() == 20  # the simulator: 1 mixes each of 0's 20 messages once
    assert posts_of_0_heard_by_1 - max(2, 0.2 * posts_of_0_heard_by_1) <= mixes_of_1 <= posts_of_0_heard_by_1 + 1, \
        (mixes_of_1, posts_of_0_heard_by_1)
