"""Tests for galakit.rl.envs: the learning signal versus raw scores, next-step autoreset, Atari preprocessing parity."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from ale_py.env import AtariEnv
from gymnasium.vector import SyncVectorEnv
from scripted_env import ScriptedEnv, register_scripted

from galakit.config import Config
from galakit.rl import envs
from galakit.rl.envs import FireOnReset, LearningSignal, atari_rom_id, build_env, is_atari, make_vec_env


def scripted_vector(num_envs: int = 2, *, clip_rewards: bool = False, episodic_life: bool = False, **kwargs):
    return LearningSignal(
        SyncVectorEnv([lambda: ScriptedEnv(**kwargs)] * num_envs),
        clip_rewards=clip_rewards,
        episodic_life=episodic_life,
    )


def run(env, steps: int) -> list[tuple]:
    """Step with action 0 everywhere; the (reward, terminated, truncated, info) of each step."""
    out = []
    for _ in range(steps):
        _, reward, terminated, truncated, info = env.step(np.zeros(env.num_envs, dtype=np.int64))
        out.append((reward, terminated, truncated, info))
    return out


# ---------------------------------------------------------------- the learning-signal wrapper, on known numbers


def test_autoreset_step_is_flagged_once_after_each_game_end():
    env = scripted_vector(1, rewards=(1.0, -2.0, 0.5, 3.0), terminate_after=4)
    env.reset(seed=0)
    steps = run(env, 15)
    flagged = [i for i, (_, _, _, info) in enumerate(steps) if info["autoreset"][0]]
    ended = [i for i, (_, terminated, _, _) in enumerate(steps) if terminated[0]]
    assert ended == [3, 8, 13]  # 4 real steps, then the autoreset step, then 4 real steps ...
    assert flagged == [4, 9, 14]  # exactly the step after each end, once
    for i in flagged:
        reward, terminated, truncated, info = steps[i]
        assert reward[0] == 0.0 and not terminated[0] and not truncated[0]
        assert not info["_episode"][0]


def test_first_step_after_reset_is_never_an_autoreset_step():
    env = scripted_vector(2, terminate_after=1)
    env.reset(seed=0)
    (_, terminated, _, info), (_, _, _, info2) = run(env, 2)
    assert terminated.all() and not info["autoreset"].any()
    assert info2["autoreset"].all()
    ((_, terminated, _, _),) = run(env, 1)
    assert terminated.all()
    env.reset()  # a game has just ended: reset() must clear the pending autoreset
    ((reward, terminated, _, info),) = run(env, 1)
    assert not info["autoreset"].any() and terminated.all() and (reward == 1.0).all()


def test_episode_return_and_length_are_the_raw_full_game_ones():
    env = scripted_vector(2, rewards=(1.0, -2.0, 0.5, 3.0), terminate_after=4)
    env.reset(seed=0)
    steps = run(env, 10)
    ends = [(i, info) for i, (_, _, _, info) in enumerate(steps) if info["_episode"].any()]
    assert [i for i, _ in ends] == [3, 8]
    for _, info in ends:
        assert info["_episode"].all()
        np.testing.assert_array_equal(info["episode"]["r"], [2.5, 2.5])  # 1 - 2 + 0.5 + 3
        np.testing.assert_array_equal(info["episode"]["l"], [4, 4])  # the autoreset step is not counted
        assert info["episode"]["r"].dtype == np.float64 and info["episode"]["l"].dtype == np.int64


def test_episode_info_is_present_on_every_step_with_an_all_false_mask():
    env = scripted_vector(3, terminate_after=4)
    _, reset_info = env.reset(seed=0)
    for info in [reset_info] + [s[3] for s in run(env, 3)]:
        assert info["_episode"].shape == (3,) and not info["_episode"].any()
        assert info["episode"]["r"].shape == (3,) and info["episode"]["l"].shape == (3,)
        assert info["autoreset"].dtype == bool and info["autoreset"].shape == (3,)


def test_clipping_changes_the_learning_reward_but_not_the_reported_return():
    rewards = (1.0, -2.0, 0.5, 3.0)
    clipped, raw = (scripted_vector(1, clip_rewards=c, rewards=rewards, terminate_after=4) for c in (True, False))
    clipped.reset(seed=0)
    raw.reset(seed=0)
    clipped_steps, raw_steps = run(clipped, 4), run(raw, 4)
    assert [s[0][0] for s in clipped_steps] == [1.0, -1.0, 1.0, 1.0]
    assert [s[0][0] for s in raw_steps] == list(rewards)
    assert clipped_steps[0][0].dtype == np.float32
    assert clipped_steps[-1][3]["episode"]["r"][0] == raw_steps[-1][3]["episode"]["r"][0] == 2.5


def test_truncated_game_is_reported_as_truncated_with_its_episode():
    env = scripted_vector(1, rewards=(1.0, -2.0, 0.5, 3.0), terminate_after=None, truncate_after=3)
    env.reset(seed=0)
    steps = run(env, 5)
    reward, terminated, truncated, info = steps[2]
    assert truncated[0] and not terminated[0]
    assert info["_episode"][0] and info["episode"]["r"][0] == -0.5 and info["episode"]["l"][0] == 3
    assert steps[3][3]["autoreset"][0]


def test_life_loss_terminates_the_learning_episode_and_the_game_goes_on():
    # lives[t] after step t: a life lost at step 2 and at step 4, the game over at step 6 (lives 0, not a life loss)
    kwargs = dict(rewards=(1.0,), terminate_after=6, lives=(3, 3, 2, 2, 1, 1, 0))
    env = scripted_vector(1, episodic_life=True, **kwargs)
    env.reset(seed=0)
    steps = run(env, 8)
    assert [bool(s[1][0]) for s in steps[:6]] == [False, True, False, True, False, True]
    assert [bool(s[3]["autoreset"][0]) for s in steps] == [False] * 6 + [True, False]  # only after game over
    assert [bool(s[3]["_episode"][0]) for s in steps] == [False] * 5 + [True, False, False]
    assert steps[5][3]["episode"]["r"][0] == 6.0 and steps[5][3]["episode"]["l"][0] == 6  # all lives
    np.testing.assert_array_equal(steps[3][3]["lives"], [1])  # lives passed through (after step 4)

    # Some games (Qbert) show 0 lives for a few frames before the game is over: that is no life loss (baselines).
    last_life = scripted_vector(1, episodic_life=True, rewards=(1.0,), terminate_after=5, lives=(2, 2, 1, 0, 0, 0))
    last_life.reset(seed=0)
    assert [bool(s[1][0]) for s in run(last_life, 5)] == [False, True, False, False, True]

    # A game cut by the time limit after winning an extra life restarts with fewer lives: no life loss either.
    extra_life = scripted_vector(
        1, episodic_life=True, rewards=(1.0,), terminate_after=None, truncate_after=2, lives=(3, 4, 4)
    )
    extra_life.reset(seed=0)
    steps = run(extra_life, 4)
    assert [bool(s[2][0]) for s in steps] == [False, True, False, False]  # step 3 is the autoreset
    assert [bool(s[1][0]) for s in steps] == [False] * 4

    off = scripted_vector(1, episodic_life=False, **kwargs)
    off.reset(seed=0)
    assert [bool(s[1][0]) for s in run(off, 6)] == [False] * 5 + [True]


def test_make_vec_env_applies_the_learning_signal_to_any_gymnasium_id():
    env_id = register_scripted("galakit-test/ScriptedMake-v0", rewards=(2.0, -3.0), terminate_after=2)
    env = make_vec_env(env_id, 2, seed=0, clip_rewards=True)
    obs, _ = env.reset()
    assert obs.dtype == np.float32 and obs.shape == (2, 2)
    (r1, *_), (r2, t2, _, info) = run(env, 2)
    np.testing.assert_array_equal(r1, [1.0, 1.0])
    np.testing.assert_array_equal(r2, [-1.0, -1.0])
    assert t2.all() and info["_episode"].all()
    np.testing.assert_array_equal(info["episode"]["r"], [-1.0, -1.0])


# ---------------------------------------------------------------- classic control


@pytest.mark.parametrize("backend", ["auto", "sync", pytest.param("async", marks=pytest.mark.processes)])
def test_cartpole_gives_float32_observations_and_raw_returns(backend):
    env = make_vec_env("CartPole-v1", 4, seed=1, backend=backend)
    try:
        obs, _ = env.reset()
        assert obs.dtype == np.float32 and obs.shape == (4, 4)
        ended = []
        for _ in range(100):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert reward.dtype == np.float32 and set(np.unique(reward)) <= {0.0, 1.0}
            ended += list(info["episode"]["r"][info["_episode"]])
            np.testing.assert_array_equal(
                info["episode"]["r"][info["_episode"]], info["episode"]["l"][info["_episode"]]
            )
        assert ended  # random CartPole games last ~20 steps; each step pays 1, so return == length
    finally:
        env.close()


def test_seeded_reset_is_reproducible():
    first = make_vec_env("CartPole-v1", 3, seed=5)
    second = make_vec_env("CartPole-v1", 3, seed=5)
    other = make_vec_env("CartPole-v1", 3, seed=6)
    obs_a, _ = first.reset()  # the first reset uses make_vec_env's seed
    obs_b, _ = second.reset()
    obs_c, _ = other.reset()
    np.testing.assert_array_equal(obs_a, obs_b)
    assert not np.array_equal(obs_a, obs_c)
    np.testing.assert_array_equal(first.reset(seed=6)[0], obs_c)  # env i gets seed + i


# ---------------------------------------------------------------- ids and errors


@pytest.mark.parametrize(
    ("env_id", "rom"),
    [
        ("ALE/Pong-v5", "pong"),
        ("PongNoFrameskip-v4", "pong"),
        ("Pong-v4", "pong"),
        ("Pong", "pong"),
        ("pong", "pong"),
        ("space_invaders", "space_invaders"),
        ("SpaceInvaders", "space_invaders"),
        ("ALE/SpaceInvaders-v5", "space_invaders"),
        ("BeamRiderNoFrameskip-v4", "beam_rider"),
        ("CartPole-v1", None),
        ("Blackjack-v1", None),  # gymnasium's card game, not the Atari cartridge
        ("Pongg", None),
    ],
)
def test_atari_ids_map_to_rom_ids(env_id, rom):
    assert atari_rom_id(env_id) == rom
    assert is_atari(env_id) == (rom is not None)


@pytest.mark.parametrize(("env_id", "suggestion"), [("Pongg", "Pong"), ("CartPol-v1", "CartPole-v1")])
def test_unknown_id_names_the_id_and_suggests_close_matches(env_id, suggestion):
    with pytest.raises(ValueError) as excinfo:
        make_vec_env(env_id, 2)
    message = str(excinfo.value)
    assert repr(env_id) in message and repr(suggestion) in message


@pytest.mark.parametrize("num_envs", [0, -3, 2.5, "4", True, None])
def test_bad_num_envs_is_named_in_the_error(num_envs):
    with pytest.raises(ValueError, match=r"^num_envs: got .*; accepted: an int >= 1$"):
        make_vec_env("CartPole-v1", num_envs)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (dict(seed=-1), r"^seed: got -1; accepted: an int >= 0$"),
        (dict(backend="gpu"), r"^backend: got 'gpu'; accepted: 'auto', 'ale_vector', 'sync', 'async'$"),
        (dict(backend="ale_vector"), r"^backend: got 'ale_vector' \('CartPole-v1' is not an Atari game.*\); "
                                     r"accepted: 'auto', 'sync' or 'async'"),
        (dict(num_threads=-1), r"^num_threads: got -1; accepted: an int >= 0$"),
        (dict(episodic_life=True), r"^episodic_life: got True \('CartPole-v1' is not an Atari game.*\); "
                                   r"accepted: False or None"),
        (dict(repeat_action_probability=0.25), r"^repeat_action_probability: got 0.25 \('CartPole-v1' is not an "
                                               r"Atari game.*\); accepted: None or 0.0"),
    ],
)
def test_bad_options_are_named_in_the_error(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        make_vec_env("CartPole-v1", 2, **kwargs)


def test_bad_repeat_action_probability_is_named_in_the_error():
    with pytest.raises(ValueError, match=r"^repeat_action_probability: got 1.5; accepted: .*a number in \[0, 1\]"):
        make_vec_env("Pong", 2, repeat_action_probability=1.5)


# ---------------------------------------------------------------- real Atari through the ALE


def random_actions(env, steps: int, seed: int = 0):
    """Step with uniform random actions; yield (reward, terminated, truncated, info)."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        actions = rng.integers(0, env.single_action_space.n, env.num_envs)
        _, reward, terminated, truncated, info = env.step(actions)
        yield reward, terminated, truncated, info


@pytest.mark.parametrize("game", ["Pong", "Breakout"])
def test_both_atari_backends_give_the_same_format(game):
    native, gym_path = make_vec_env(game, 3, seed=0), make_vec_env(game, 3, seed=0, backend="sync")
    assert native.single_action_space == gym_path.single_action_space
    assert native.single_observation_space == gym_path.single_observation_space
    for env in (native, gym_path):
        obs, info = env.reset()
        assert obs.dtype == np.uint8 and obs.shape == (3, 4, 84, 84)
        assert (obs[:, :3] == 0).all() and obs[:, 3].max() > 0  # zero padding, newest frame last
        obs, reward, terminated, truncated, info = env.step(np.zeros(3, dtype=np.int64))
        assert reward.dtype == np.float32 and terminated.dtype == bool and truncated.dtype == bool
        assert obs.dtype == np.uint8 and obs.shape == (3, 4, 84, 84) and "lives" in info


def test_pong_first_observation_is_the_same_on_both_backends():
    # Pong's screen does not change during the no-op frames, so the different no-op counts do not show.
    native, gym_path = make_vec_env("Pong", 4, seed=3), make_vec_env("Pong", 4, seed=3, backend="sync")
    np.testing.assert_array_equal(native.reset()[0], gym_path.reset()[0])


class FixedNoops(gym.Wrapper):
    """Run exactly ``k`` NOOP frames after reset (test only: aligns the gymnasium path with a native env)."""

    def __init__(self, env: gym.Env, k: int):
        super().__init__(env)
        self.k = k

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        for _ in range(self.k):
            obs, _, _, _, info = self.env.step(0)
        return obs, info


def test_gymnasium_preprocessing_matches_the_native_env_pixel_for_pixel():
    # The two paths draw their no-op counts from different generators. Given the same count (read from the native
    # env's episode_frame_number = 1 FIRE frame + no-ops), both emulators and preprocessings agree exactly:
    # every frame, max-pool, resize, stack, reward and life.
    native = make_vec_env("Breakout", 2, seed=7, clip_rewards=False, episodic_life=False)
    obs, info = native.reset()
    singles = []
    for i, frames in enumerate(info["episode_frame_number"]):
        env = FixedNoops(
            FireOnReset(AtariEnv("breakout", obs_type="grayscale", frameskip=1, repeat_action_probability=0.0)),
            int(frames) - 1,
        )
        env = gym.wrappers.AtariPreprocessing(env, noop_max=0, frame_skip=4, terminal_on_life_loss=False)
        env = gym.wrappers.FrameStackObservation(env, 4, padding_type="zero")
        single_obs, _ = env.reset(seed=i)
        np.testing.assert_array_equal(single_obs, obs[i])
        singles.append(env)
    rng = np.random.default_rng(0)
    playing = [True, True]
    fire_next = [False, False]  # FireAfterLifeLoss's rule, applied by hand to the singles
    lives = list(info["lives"])
    for _ in range(400):  # a whole random Breakout game each, several life losses on the way
        actions = rng.integers(0, 4, 2)
        obs, reward, terminated, _, info = native.step(actions)
        for i, env in enumerate(singles):
            if not playing[i]:
                continue
            single_obs, single_reward, single_terminated, _, single_info = env.step(1 if fire_next[i] else actions[i])
            fire_next[i] = 0 < single_info["lives"] < lives[i] and not single_terminated
            lives[i] = single_info["lives"]
            np.testing.assert_array_equal(single_obs, obs[i])
            native_step = (reward[i], terminated[i], info["lives"][i])
            assert (single_reward, single_terminated, single_info["lives"]) == native_step
            playing[i] = not single_terminated
        if not any(playing):
            break
    assert not any(playing)


@pytest.mark.slow  # seconds each: keeps make test-fast under a minute
def test_pong_games_end_with_raw_scores_in_range_and_clipped_learning_rewards():
    env = make_vec_env("Pong", 16, seed=0)
    env.reset()
    clipped_sum = np.zeros(16)
    returns = []
    for reward, _, _, info in random_actions(env, 1100):
        assert set(np.unique(reward)) <= {-1.0, 0.0, 1.0}
        clipped_sum += reward
        for i in np.flatnonzero(info["_episode"]):
            returns.append(info["episode"]["r"][i])
            assert info["episode"]["r"][i] == clipped_sum[i]  # Pong pays +-1 per point: raw == clipped sum
            assert 0 < info["episode"]["l"][i] <= 1100
            clipped_sum[i] = 0.0
    assert len(returns) >= 8
    assert all(-21 <= r <= 21 and r == int(r) for r in returns) and min(returns) == -21


@pytest.mark.slow  # seconds each: keeps make test-fast under a minute
def test_clipping_on_real_atari_leaves_the_reported_score_raw():
    # Same seeds and actions on two native envs: the emulators run identically, only the rewards differ.
    clipped = make_vec_env("SpaceInvaders", 8, seed=0)
    raw = make_vec_env("SpaceInvaders", 8, seed=0, clip_rewards=False)
    clipped.reset()
    raw.reset()
    rng = np.random.default_rng(0)
    raw_sum, ended, big_rewards = np.zeros(8), 0, 0
    for _ in range(600):
        actions = rng.integers(0, 6, 8)
        _, clipped_reward, _, _, clipped_info = clipped.step(actions)
        _, raw_reward, _, _, raw_info = raw.step(actions)
        np.testing.assert_array_equal(clipped_reward, np.sign(raw_reward))
        big_rewards += int((raw_reward > 1).sum())  # an invader is worth 5 to 30 points
        raw_sum += raw_reward
        np.testing.assert_array_equal(clipped_info["_episode"], raw_info["_episode"])
        np.testing.assert_array_equal(clipped_info["episode"]["r"], raw_info["episode"]["r"])
        for i in np.flatnonzero(raw_info["_episode"]):
            assert raw_info["episode"]["r"][i] == raw_sum[i] > 1  # the raw sum, not a count of scoring steps
            raw_sum[i], ended = 0.0, ended + 1
    assert big_rewards > 0 and ended >= 2


@pytest.mark.slow  # seconds each: keeps make test-fast under a minute
@pytest.mark.parametrize("backend", ["ale_vector", "sync"])
def test_breakout_life_losses_terminate_without_an_autoreset(backend):
    env = make_vec_env("Breakout", 8, seed=0, backend=backend)
    _, info = env.reset()
    lives = info["lives"].copy()
    life_losses = games = 0
    previous_terminated = np.zeros(8, dtype=bool)
    for _, terminated, _, info in random_actions(env, 400):
        life_lost = previous_terminated  # the previous step was a life loss, not a game over
        assert not info["autoreset"][life_lost].any()
        assert (info["lives"][life_lost] == lives[life_lost]).all()  # same game, same lives: no reset happened
        new_lives = np.asarray(info["lives"])
        lost_now = (new_lives < lives) & (new_lives > 0) & ~info["autoreset"]
        np.testing.assert_array_equal(terminated & (new_lives > 0), lost_now)
        life_losses += int(lost_now.sum())
        games += int(info["_episode"].sum())
        previous_terminated, lives = terminated & (new_lives > 0), new_lives
    assert life_losses >= 8 and games >= 2


# ---------------------------------------------------------------- FIRE after each life loss, sticky actions


@pytest.mark.parametrize("backend", ["ale_vector", "sync"])
def test_breakout_serves_again_after_each_life_loss_for_a_policy_that_never_fires(backend):
    # Before FireAfterLifeLoss, NOOP forever lost one life (~20 steps) and then nothing moved until the time limit.
    env = make_vec_env("BreakoutNoFrameskip-v4", 1, seed=0, backend=backend)
    _, info = env.reset()
    lives, losses, games = int(info["lives"][0]), 0, 0
    for _ in range(400):
        _, _, _, _, info = env.step(np.zeros(1, dtype=np.int64))
        new_lives = int(info["lives"][0])
        losses += int(0 <= new_lives < lives)
        games += int(info["_episode"][0])
        lives = new_lives
    assert losses >= 10 and games >= 2  # 5 lives a game, each lost within ~25 steps of its serve


def gym_path_sticky(env) -> list[float]:
    """What each emulator of a gymnasium-path vector env was built with."""
    return [e.unwrapped.ale.getFloat("repeat_action_probability") for e in env.unwrapped.envs]


@pytest.mark.parametrize(("env_id", "asked", "expected"), [
    ("ALE/Breakout-v5", None, 0.25), ("BreakoutNoFrameskip-v4", None, 0.0), ("Breakout-v0", None, 0.25),
    ("Breakout", None, 0.0), ("ALE/Breakout-v5", 0.0, 0.0), ("BreakoutNoFrameskip-v4", 0.1, 0.1),
])
def test_sticky_actions_are_the_ids_own_unless_asked(env_id, asked, expected, monkeypatch):
    assert gym_path_sticky(make_vec_env(env_id, 2, backend="sync", repeat_action_probability=asked)) == [
        pytest.approx(expected)] * 2
    built = []

    class SpyAtariVectorEnv(envs.AtariVectorEnv):  # the C++ env does not report its settings: record them
        def __init__(self, *args, **kwargs):
            built.append(kwargs["repeat_action_probability"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(envs, "AtariVectorEnv", SpyAtariVectorEnv)
    make_vec_env(env_id, 2, backend="ale_vector", repeat_action_probability=asked).close()
    assert built == [pytest.approx(expected)]


def test_config_repeat_action_probability_reaches_the_emulators():
    cfg = Config(env_id="ALE/Pong-v5", num_envs=1, env_backend="sync", repeat_action_probability=0.1)
    assert gym_path_sticky(build_env(cfg)) == [pytest.approx(0.1)]
    assert gym_path_sticky(build_env(cfg.replace(repeat_action_probability=None))) == [pytest.approx(0.25)]


@pytest.mark.parametrize("value", [float("nan"), -0.1, 1.5, "0.25"])
def test_config_rejects_a_bad_repeat_action_probability(value):
    with pytest.raises(ValueError, match="repeat_action_probability"):
        Config(repeat_action_probability=value)
