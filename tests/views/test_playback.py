"""A checkpoint on screen (galakit.views.playback): one full-colour frame per step, the scores evaluate() reports,
the policy fed exactly the observations training feeds it, an inline player that needs nothing from the web, and
videos that read back."""

import re

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from PIL import Image
from support import tiny_config

import galakit
import galakit.views.playback as replay_module
from galakit.config import Config
from galakit.rl.envs import build_env
from galakit.rl.evaluate import evaluate
from galakit.views.playback import Replay, replay


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A barely trained CartPole policy (20 updates, in-process): games of 10 to 50 steps."""
    where = tmp_path_factory.mktemp("replay")
    return str(galakit.train(tiny_config(where, total_timesteps=200, hidden_sizes=(8,))).checkpoint)


@pytest.fixture(scope="module")
def two_games(checkpoint) -> Replay:
    return replay(checkpoint, 2, seed=3)


class Watched(torch.nn.Module):
    """The policy, keeping every observation it is given."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, obs: torch.Tensor):
        self.seen.append(obs.clone())
        return self.model(obs)


def watch_policy(monkeypatch) -> list[Watched]:
    """Make replay's load_policy hand out a ``Watched`` model; the list gets it."""
    watched = []

    def load(checkpoint, device="cpu"):
        model, cfg = galakit.load_policy(checkpoint, device)
        watched.append(Watched(model))
        return watched[-1], cfg

    monkeypatch.setattr(replay_module, "load_policy", load)
    return watched


def assert_observations_are_build_envs(seen: list[torch.Tensor], model, cfg: Config, seed: int) -> None:
    """``seen`` are the observations of ``build_env(cfg, seed)`` played with the greedy actions of ``model``."""
    env = build_env(cfg.replace(num_envs=1), seed=seed)
    obs, _ = env.reset(seed=seed)
    with torch.no_grad():
        for given in seen:
            assert np.array_equal(given.numpy(), obs)
            obs, *_ = env.step(model(given)[0].argmax(-1).numpy())
    env.close()


def test_there_is_one_full_colour_frame_per_step(two_games):
    assert len(two_games.frames) == two_games.lengths.sum() and two_games.complete  # no reset frames
    assert all(f.shape == (400, 600, 3) and f.dtype == np.uint8 for f in two_games.frames)  # the render, not obs
    assert len({f.tobytes() for f in two_games.frames}) > len(two_games.frames) // 2  # the cart moves
    assert len(two_games.scores) == len(two_games.lengths) == 2


def test_a_cartpole_score_is_the_game_length(two_games):
    assert two_games.scores.tolist() == two_games.lengths.tolist()  # +1 a step, raw


@pytest.mark.parametrize("deterministic", [True, False])
def test_replay_plays_the_games_evaluate_plays_with_the_same_seed(checkpoint, deterministic):
    shown = replay(checkpoint, 3, seed=11, deterministic=deterministic)
    torch.manual_seed(11)  # what replay's seed does to the action sampling
    assert evaluate(checkpoint, 3, deterministic, seed=11, num_envs=1).tolist() == shown.scores.tolist()


def test_replay_is_repeatable_and_leaves_torchs_generator_alone(checkpoint):
    state = torch.random.get_rng_state()
    first = replay(checkpoint, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    again = replay(checkpoint, seed=5)
    assert np.array_equal(first.scores, again.scores) and np.array_equal(first.frames, again.frames)


def test_the_policy_sees_the_observations_evaluate_and_training_build(checkpoint, monkeypatch):
    watched = watch_policy(monkeypatch)
    shown = replay(checkpoint, 2, seed=4, deterministic=True)
    model, cfg = galakit.load_policy(checkpoint)
    assert len(watched[0].seen) == shown.lengths.sum() + 1  # and one autoreset step between the games
    assert_observations_are_build_envs(watched[0].seen, model, cfg, seed=4)


def test_max_frames_keeps_the_first_frames_and_plays_the_whole_game(checkpoint, two_games):
    capped = replay(checkpoint, 2, seed=3, max_frames=5)
    assert len(capped.frames) == 5 and not capped.complete
    assert np.array_equal(capped.frames, two_games.frames[:5])
    assert capped.scores.tolist() == two_games.scores.tolist()  # whole games still
    assert f"the first 5 of {two_games.lengths.sum()} steps shown" in capped.caption()


def test_the_inline_view_is_a_self_contained_animation_with_the_score(two_games):
    html = two_games._repr_html_()
    assert html.count("data:image/png;base64,") == len(two_games.frames)
    assert "<script>" in html and "setInterval" in html
    a, b = two_games.scores.astype(int)
    assert f"CartPole-v1: raw scores {a}, {b} (mean {(a + b) / 2:.1f})" in html
    assert not re.search(r"(src|href)=\"?https?:", html)  # no CDN, no file beside it


def test_save_writes_an_mp4_and_a_gif_that_read_back(two_games, tmp_path):
    n = len(two_games.frames)
    mp4 = imageio.get_reader(two_games.save(tmp_path / "game.mp4"))
    assert mp4.count_frames() == n and mp4.get_meta_data()["size"] == (600, 400)
    assert mp4.get_meta_data()["fps"] == 50  # CartPole's real time
    with Image.open(two_games.save(tmp_path / "game.gif")) as gif:
        assert gif.size == (600, 400)
        durations = []
        for k in range(gif.n_frames):
            gif.seek(k)
            durations.append(gif.info["duration"])
    assert gif.n_frames <= n and sum(durations) == 20 * n  # identical neighbours merge; the time stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["game.gif", "game.mp4"]  # no temporary file left


def test_save_png_writes_one_frame(two_games, tmp_path):
    path = two_games.save_png(tmp_path / "end.png")
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), two_games.frames[-1])
    with pytest.raises(ValueError, match=r"^frame: got 10000; accepted: an int in \["):
        two_games.save_png(tmp_path / "x.png", frame=10_000)


def test_save_refuses_other_extensions_naming_the_field(two_games, tmp_path):
    with pytest.raises(ValueError, match=r"^path: got '.*game\.avi'; accepted: a file name ending in \.mp4 or \.gif$"):
        two_games.save(tmp_path / "game.avi")
    assert list(tmp_path.iterdir()) == []


def test_a_save_that_fails_midway_leaves_nothing(two_games, tmp_path, monkeypatch):
    (tmp_path / "game.mp4").write_bytes(b"the old video")

    def broken(tmp):
        tmp.write_bytes(b"half a video")
        raise OSError("disk full")

    monkeypatch.setattr(Replay, "_write_mp4", lambda self, tmp: broken(tmp))
    with pytest.raises(OSError, match="disk full"):
        two_games.save(tmp_path / "game.mp4")
    assert [p.name for p in tmp_path.iterdir()] == ["game.mp4"]
    assert (tmp_path / "game.mp4").read_bytes() == b"the old video"


@pytest.mark.parametrize("option, value", [("episodes", 0), ("max_frames", 0), ("fps", 0.0), ("seed", -1)])
def test_bad_options_are_refused_before_any_game(option, value):
    with pytest.raises(ValueError, match=rf"^{option}: got "):
        replay("no/such/checkpoint", **{option: value})


@pytest.mark.slow
def test_atari_frames_are_the_consoles_screen_and_the_policy_sees_84x84_stacks(tmp_path, monkeypatch):
    cfg = Config.preset("atari", env_id="ALE/Breakout-v5", num_envs=2, num_steps=5, total_timesteps=10,
                        run_dir=str(tmp_path / "run"), progress=False, tensorboard=False, checkpoint_interval=0)
    checkpoint = str(galakit.train(cfg).checkpoint)  # one update: a policy that plays at random, ~100-300 steps
    watched = watch_policy(monkeypatch)
    shown = replay(checkpoint, seed=2, deterministic=True, max_frames=30)
    assert len(shown.frames) == 30 and shown.lengths[0] > 30
    assert all(f.shape == (210, 160, 3) and f.dtype == np.uint8 for f in shown.frames)
    assert shown.fps == 15  # 60 Hz, one agent step every 4 frames
    seen = watched[0].seen
    assert seen[0].shape == (1, 4, 84, 84) and seen[0].dtype == torch.uint8
    model, saved = galakit.load_policy(checkpoint)
    assert_observations_are_build_envs(seen, model, saved.replace(env_backend="sync"), seed=2)
