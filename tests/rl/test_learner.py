"""The training loop end to end on CartPole: learning, seeding, checkpoints and exact resume, logs."""

import csv

import numpy as np
import pytest
import torch

import galakit
from galakit.config import Config
from galakit.io.checkpoint import find_checkpoint, list_checkpoints, load_checkpoint, new_run_dir
from galakit.io.metrics import Metrics
from galakit.rl.evaluate import evaluate


def quick(tmp_path, name="run", **kw) -> Config:
    base = dict(run_dir=str(tmp_path / name), progress=False, tensorboard=False, log_interval=1,
                total_timesteps=40 * 8 * 5, checkpoint_interval=0)
    return Config.preset("cartpole", **{**base, **kw})


def params(path) -> torch.Tensor:
    return torch.cat([p.flatten() for p in load_checkpoint(path)["model"].values()])


@pytest.mark.slow
def test_a2c_solves_cartpole(tmp_path):
    """Seeded A2C reaches a mean raw return ≥ 195 over the last 100 games within the preset's budget."""
    metrics = galakit.train(quick(tmp_path, total_timesteps=150_000, log_interval=100, seed=1))
    assert metrics.mean_return(last=100) >= 195, metrics.summary()
    scores = evaluate(metrics.checkpoint, episodes=10)
    assert scores.mean() >= 195, scores


@pytest.mark.slow  # seconds each: keeps make test-fast under a minute
def test_same_seed_gives_identical_runs_on_cpu(tmp_path):
    a = galakit.train(quick(tmp_path, "a", seed=3))
    b = galakit.train(quick(tmp_path, "b", seed=3))
    c = galakit.train(quick(tmp_path, "c", seed=4))
    assert torch.equal(params(a.checkpoint), params(b.checkpoint))
    assert [r["value_loss"] for r in a.progress] == [r["value_loss"] for r in b.progress]
    assert not torch.equal(params(a.checkpoint), params(c.checkpoint))


@pytest.mark.slow  # seconds each: keeps make test-fast under a minute
def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    full = galakit.train(quick(tmp_path, "full", total_timesteps=40 * 40))
    half = galakit.train(quick(tmp_path, "half", total_timesteps=40 * 20))
    resumed = galakit.train(quick(tmp_path, "resumed", total_timesteps=40 * 40, resume=half.checkpoint))
    assert torch.equal(params(full.checkpoint), params(resumed.checkpoint))
    losses = lambda m, key: [(r["update"], r[key]) for r in m.progress]  # noqa: E731
    for key in ("policy_loss", "value_loss", "entropy"):
        assert losses(resumed, key) == losses(full, key)[20:]
    assert [e.ret for e in resumed.episodes] == [e.ret for e in full.episodes]


def test_resume_from_a_run_directory_writes_into_it(tmp_path):
    first = galakit.train(quick(tmp_path, total_timesteps=40 * 10))
    cfg = Config.preset("cartpole", resume=first.run_dir, progress=False, tensorboard=False,
                        total_timesteps=40 * 12, log_interval=1)
    second = galakit.train(cfg)
    assert second.run_dir == first.run_dir
    with open(f"{first.run_dir}/progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["update"]) for r in rows] == list(range(1, 13))


def test_resume_refuses_a_different_setup(tmp_path):
    first = galakit.train(quick(tmp_path, total_timesteps=40 * 2))
    with pytest.raises(ValueError, match="num_envs"):
        galakit.train(quick(tmp_path, "other", num_envs=4, resume=first.checkpoint))


def test_checkpoints_are_kept_and_rotated(tmp_path):
    m = galakit.train(quick(tmp_path, total_timesteps=40 * 10, checkpoint_interval=2, keep_checkpoints=2))
    kept = list_checkpoints(f"{m.run_dir}/checkpoints")
    assert [p.name for p in kept] == ["ckpt_000000000320.pt", "ckpt_000000000400.pt"]
    assert find_checkpoint(m.run_dir) == kept[-1]
    assert not [p for p in kept[0].parent.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_a_crash_while_saving_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    m = galakit.train(quick(tmp_path, total_timesteps=40 * 2))
    good = params(m.checkpoint)

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    from galakit.io.checkpoint import save_checkpoint

    with pytest.raises(OSError):
        save_checkpoint({"x": 1}, f"{m.run_dir}/checkpoints", global_step=80)
    assert torch.equal(params(find_checkpoint(m.run_dir)), good)
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["ckpt_000000000080.pt"]


def test_logs_have_cleanrl_names_and_raw_episodes(tmp_path):
    m = galakit.train(quick(tmp_path, total_timesteps=40 * 30, tensorboard=True))
    with open(f"{m.run_dir}/progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 30 and float(rows[-1]["SPS"]) > 0
    with open(f"{m.run_dir}/episodes.csv") as f:
        episodes = list(csv.DictReader(f))
    assert [float(e["return"]) for e in episodes] == [e.ret for e in m.episodes]
    assert all(float(e["return"]) == int(e["length"]) for e in episodes)  # CartPole: +1 per step
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(m.run_dir).Reload().Tags()["scalars"]
    assert {"charts/episodic_return", "charts/SPS", "losses/value_loss", "losses/policy_loss",
            "losses/entropy"} <= set(tags)


def test_evaluate_plays_the_requested_number_of_games(tmp_path):
    m = galakit.train(quick(tmp_path, total_timesteps=40 * 5))
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        scores = evaluate(m.checkpoint, episodes=5, num_envs=2)
        assert torch.get_num_threads() == 3, "evaluate plays on one thread and gives the caller its count back"
    finally:
        torch.set_num_threads(threads)
    assert scores.shape == (5,) and np.all(scores >= 8)  # CartPole games last at least 8 steps
    with pytest.raises(ValueError, match="episodes"):
        evaluate(m.checkpoint, episodes=0)


def test_linear_lr_decay_reaches_zero(tmp_path):
    m = galakit.train(quick(tmp_path, total_timesteps=40 * 10, lr_decay=True))
    lrs = [r["learning_rate"] for r in m.progress]
    assert lrs[0] == pytest.approx(7e-4) and lrs[-1] == pytest.approx(7e-4 / 10)
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))


@pytest.mark.slow  # seconds each: keeps make test-fast under a minute
def test_a2c_trains_on_real_atari_through_the_native_vector_env(tmp_path):
    cfg = Config.preset("atari", env_id="BreakoutNoFrameskip-v4", num_envs=4, total_timesteps=4 * 5 * 30,
                        run_dir=str(tmp_path / "run"), progress=False, tensorboard=False, log_interval=10,
                        checkpoint_interval=0)
    learner = galakit.Learner(cfg)
    assert learner.buf.obs.dtype == torch.uint8 and learner.buf.obs.shape == (6, 4, 4, 84, 84)
    assert isinstance(learner.model, galakit.AtariActorCritic)
    metrics = learner.run()
    learner.close()
    assert [r["update"] for r in metrics.progress] == [10, 20, 30]
    assert all(np.isfinite(r["value_loss"]) for r in metrics.progress)
    assert set(learner.buf.rewards.unique().tolist()) <= {-1.0, 0.0, 1.0}  # the learner sees clipped rewards


def test_summary_counts_the_steps_of_every_learner():
    rows = [{"rank": 0, "global_step": 10}, {"rank": 1, "global_step": 10}, {"rank": 0, "global_step": 20}]
    assert Metrics(progress=rows).summary().startswith("30 steps of 2 learners, 0 games")
    assert Metrics(progress=rows[:1]).summary().startswith("10 steps, 0 games")
    assert Metrics().summary().startswith("0 steps, 0 games")


def test_a_new_run_refuses_a_directory_holding_another_run(tmp_path, monkeypatch):
    first = galakit.train(quick(tmp_path, total_timesteps=40 * 2))
    for config in (quick(tmp_path, total_timesteps=40 * 2),                              # one learner, here
                   quick(tmp_path, total_timesteps=40 * 2, algo="gala", num_learners=2)):  # before any process
        refused = r"run_dir: got .* \(it holds a run: .*progress.csv\).*continue this one with resume="
        with pytest.raises(ValueError, match=refused):
            galakit.train(config)
    assert len(list_checkpoints(f"{first.run_dir}/checkpoints")) == 1 and not list((tmp_path / "run").glob("learner_*"))
    resumed = galakit.train(quick(tmp_path, total_timesteps=40 * 4, resume=first.run_dir))  # continuing is fine
    assert resumed.progress[-1]["global_step"] == 40 * 4
    monkeypatch.chdir(tmp_path)  # default directories, runs/<run_name>: a new one for every run
    names = [galakit.train(quick(tmp_path, total_timesteps=40, run_dir=None, run_name="same")).run_dir
             for _ in range(2)]
    assert names == ["runs/same", "runs/same_2"]
    # a name is claimed when it is handed out: two runs started together (nothing written yet) never share it
    assert new_run_dir("sweep") != new_run_dir("sweep")
