"""Checkpoints you can trust: loading one never runs code, a damaged newest one falls back to the one before,
non-finite parameters are never saved or gossiped, and killed writes leave no temporary files behind."""

import multiprocessing
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import galakit
from galakit.config import Config
from galakit.io import checkpoint as ckpt
from galakit.io.checkpoint import FORMAT_VERSION, list_checkpoints, load_checkpoint
from galakit.rl.evaluate import evaluate
from galakit.rl.learner import DivergenceError, Learner
from galakit.runtime.coupling import Independent
from galakit.runtime.launch import LearnerError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def quick(tmp_path, name="run", **kw) -> Config:
    base = dict(run_dir=str(tmp_path / name), progress=False, tensorboard=False, log_interval=1,
                total_timesteps=40 * 4, checkpoint_interval=0)
    return Config.preset("cartpole", **{**base, **kw})


class WritesAMarker:
    """Unpickling this runs ``exec``: what a malicious checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def malicious_checkpoint(directory: Path, kind: str) -> tuple[Path, Path]:
    """(a ckpt_*.pt file whose loading would create a marker file, that marker's path)."""
    directory.mkdir(parents=True, exist_ok=True)
    path, marker = directory / "ckpt_000000000040.pt", directory.parent / "code_ran"
    state = {"format_version": FORMAT_VERSION, "config": {}, "model": WritesAMarker(marker)}
    if kind == "torch.save":
        torch.save(state, path)
    else:  # a raw pickle, as old torch.save formats were
        path.write_bytes(pickle.dumps(state))
    return path, marker


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on the raw pickle
@pytest.mark.parametrize("kind", ["torch.save", "raw pickle"])
def test_a_checkpoint_that_would_run_code_is_refused_without_loading_it(tmp_path, kind):
    path, marker = malicious_checkpoint(tmp_path / "evil" / "checkpoints", kind)
    refused = rf"{path}.* is not a plain galakit checkpoint: it holds Python objects \((__builtin__|builtins)\.exec\)"
    with pytest.raises(ValueError, match=refused):
        load_checkpoint(path)
    with pytest.raises(ValueError, match=refused):  # a run directory's newest: refused, not skipped
        load_checkpoint(tmp_path / "evil")
    with pytest.raises(ValueError, match=refused):
        galakit.train(quick(tmp_path, resume=str(path)))
    with pytest.raises(ValueError, match=refused):
        evaluate(str(path), episodes=1)
    assert not marker.exists()


def test_an_old_format_checkpoint_is_refused_with_its_file_named(tmp_path):
    path = tmp_path / "ckpt_000000000040.pt"
    torch.save({"format_version": 1, "rng": {"numpy": np.random.get_state()}, "env_state": b"pickled envs"}, path)
    with pytest.raises(ValueError, match=rf"{path}.* format 1.*reads format {FORMAT_VERSION}"):
        load_checkpoint(path)


def test_a_checkpoint_is_plain_data_and_holds_the_simulators(tmp_path):
    m = galakit.train(quick(tmp_path))
    state = torch.load(m.checkpoint, map_location="cpu", weights_only=True)
    assert state["format_version"] == FORMAT_VERSION
    cartpoles = [chain[-1] for chain in state["env_state"]["envs"]]
    assert [c["class"].rsplit(".", 1)[1] for c in cartpoles] == ["CartPoleEnv"] * 8
    physics = [ckpt.from_plain(c["attrs"]["state"]) for c in cartpoles]
    assert all(p.shape == (4,) and p.dtype == np.float64 for p in physics)


def test_plain_data_round_trips_exactly():
    generator = np.random.default_rng(7)
    generator.random(3)
    from collections import deque

    value = {"a": np.arange(6, dtype=np.uint32).reshape(2, 3), "g": generator, "q": deque([np.ones(2)], maxlen=3),
             "s": np.float64(0.5), "t": (1, None, "x", [True, 2.5])}
    back = ckpt.from_plain(ckpt.to_plain(value))
    assert back["a"].dtype == np.uint32 and np.array_equal(back["a"], value["a"])
    assert back["g"].random() == generator.random()
    assert back["q"].maxlen == 3 and np.array_equal(back["q"][0], np.ones(2))
    assert type(back["s"]) is np.float64 and back["t"] == value["t"]
    with pytest.raises(TypeError, match="not plain data"):
        ckpt.to_plain(object())


def test_a_truncated_newest_checkpoint_falls_back_to_the_one_before(tmp_path):
    first = galakit.train(quick(tmp_path, total_timesteps=40 * 4, checkpoint_interval=2))
    older, newest = list_checkpoints(f"{first.run_dir}/checkpoints")
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    with pytest.warns(UserWarning) as warned:
        resumed = galakit.train(quick(tmp_path, total_timesteps=40 * 6, resume=first.run_dir, run_dir=None))
    said = [str(w.message) for w in warned]
    assert any(f"{str(newest)!r} is truncated or damaged" in m for m in said), said
    assert any(f"continuing from {str(older)!r}" in m for m in said), said
    assert [r["update"] for r in resumed.progress] == [3, 4, 5, 6]  # continued from update 2


def test_an_unreadable_checkpoint_is_a_clear_error_naming_it(tmp_path):
    m = galakit.train(quick(tmp_path, total_timesteps=40 * 2))
    only = Path(m.checkpoint)
    only.write_bytes(b"\x00garbage, not a checkpoint" * 100)
    for source in (only, m.run_dir):  # the file itself, or the run directory holding only it
        with pytest.raises(ValueError, match=rf"{only}.* truncated or damaged"):
            load_checkpoint(source)
    (only.parent / "ckpt_000000000040.pt").write_bytes(b"")  # two files, both unreadable: both named
    with pytest.raises(ValueError, match=rf"no readable checkpoint.*{only}.*ckpt_000000000040.pt"):
        with pytest.warns(UserWarning):
            load_checkpoint(m.run_dir)


def test_stale_temporary_files_are_removed_when_a_learner_starts(tmp_path):
    m = galakit.train(quick(tmp_path, total_timesteps=40 * 2))
    folder = Path(m.checkpoint).parent
    stale = [folder / ".ckpt_000000000120.pt.tmp4242", folder / ".ckpt_000000000160.pt.tmp1"]
    for tmp in stale:
        tmp.write_bytes(b"half a checkpoint")
    (folder / "notes.txt").write_text("not ours")
    learner = Learner(quick(tmp_path, total_timesteps=40 * 4, resume=m.run_dir, run_dir=None))
    learner.close()
    assert not any(tmp.exists() for tmp in stale) and (folder / "notes.txt").exists()


# -- divergence


class SpyCoupling(Independent):
    """A coupling that records whether the gossip step ran."""

    def __init__(self):
        super().__init__()
        self.after_update_calls = 0

    def after_update(self, model, update):
        self.after_update_calls += 1
        return {}


def test_a_learner_whose_update_goes_nan_stops_before_gossip_and_never_saves_it(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from scripted_env import register_scripted

    env_id = register_scripted("galakit-test/NaNReward-v0", rewards=(1.0, float("nan")), terminate_after=4)
    cfg = Config(env_id=env_id, num_envs=2, num_steps=5, run_dir=str(tmp_path / "run"), progress=False,
                 tensorboard=False, total_timesteps=2 * 5 * 4)
    learner = Learner(cfg)
    learner.coupling = spy = SpyCoupling()
    try:
        with pytest.raises(DivergenceError, match="learner 0 diverged at update 1.*not finite after its A2C update"):
            learner.train_one_update()
        assert spy.after_update_calls == 0
        with pytest.raises(DivergenceError, match="when saving"):
            learner.save()
        assert list_checkpoints(tmp_path / "run" / "checkpoints") == []
    finally:
        learner.close()


def all_finite(path: Path) -> bool:
    """Every floating-point tensor of a checkpoint file (model and optimizer) is finite."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    tensors = list(state["model"].values())
    tensors += [t for s in state["optimizer"]["state"].values() for t in s.values() if torch.is_tensor(t)]
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())


@pytest.mark.processes
def test_a_diverging_gala_learner_stops_the_run_and_no_nan_is_saved_or_mixed(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    c = Config(env_id="faulty_env:NaNReward-v0", algo="gala", num_learners=2, num_envs=2, num_steps=5, seed=0,
               sync_freq=0, run_dir=str(tmp_path / "run"), progress=False, tensorboard=False, log_interval=10,
               total_timesteps=2 * 2 * 5 * 100, checkpoint_interval=1, keep_checkpoints=1000)
    with pytest.raises(LearnerError) as err:
        galakit.train(c)
    assert err.value.rank == 1 and "learner 1 diverged at update 4" in str(err.value)
    files = sorted(Path(c.run_dir).rglob("*.pt*"))
    saved = {rank: list_checkpoints(f"{c.run_dir}/learner_{rank}/checkpoints") for rank in range(2)}
    assert len(saved[1]) == 3 and len(saved[0]) >= 3  # learner 1's updates 1-3; its peer went on for a while
    assert all(all_finite(f) for f in files), [f for f in files if not all_finite(f)]


def test_gossip_drops_a_delivery_that_is_not_finite():
    from galakit.gossip.topology import build_topology
    from galakit.runtime.coupling import Gossip, shared_slots

    schedule = build_topology("ring", 2)
    torch.manual_seed(0)
    models = [torch.nn.Linear(3, 2) for _ in range(2)]
    with torch.no_grad():
        models[0].weight[0, 0] = float("nan")  # a peer whose θ went NaN, running code that sends it anyway
    slots = shared_slots(schedule, 8, multiprocessing.get_context("spawn"))
    learners = [Gossip(schedule, rank, models[rank], sync_freq=0, slots=slots) for rank in range(2)]
    before = torch.nn.utils.parameters_to_vector(models[1].parameters()).detach().clone()
    learners[0].channel.post(torch.nn.utils.parameters_to_vector(models[0].parameters()).detach(), 0, (1,),
                             keep_every_message=True)
    stats = learners[1].after_update(models[1], 0)
    assert stats["gossip_mixed"] == 0 and stats["gossip_rejected_total"] == 1
    assert torch.equal(torch.nn.utils.parameters_to_vector(models[1].parameters()).detach(), before)


def test_a_generator_state_cannot_name_an_arbitrary_numpy_callable():
    from galakit.io.checkpoint import from_plain

    with pytest.raises(ValueError, match="bit_generator 'test'"):  # np.random.test would run numpy's test suite
        from_plain({"__generator__": {"bit_generator": "test", "state": {}}})


def test_resumed_steps_are_each_learners_newest_checkpoint(tmp_path):
    from galakit.io.checkpoint import resumed_steps

    for rank, steps in enumerate([(100, 200), (100, 300)]):
        folder = tmp_path / "run" / f"learner_{rank}" / "checkpoints"
        folder.mkdir(parents=True)
        for step in steps:
            (folder / f"ckpt_{step:012d}.pt").touch()
    assert resumed_steps(tmp_path / "run", num_learners=2) == [200, 300]
    file = tmp_path / "run" / "learner_0" / "checkpoints" / f"ckpt_{100:012d}.pt"
    assert resumed_steps(file, num_learners=2) == [100]          # every learner starts from one file
    assert resumed_steps(None, num_learners=2) == []              # a new run
    assert resumed_steps(tmp_path / "empty", num_learners=1) == []
