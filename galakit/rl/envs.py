"""A vector of simulators from an id: Atari through the native ALE vector env or gymnasium, any other gymnasium id.

:func:`make_vec_env` is the one door. Whatever is behind it, the caller gets the same contract: a learning signal
(clipped reward, life-loss termination) to learn from, and the raw full-game score (``info["episode"]``) to report.

Atari preprocessing (the DQN/A3C/GALA recipe, ``*NoFrameskip-v4`` semantics)
----------------------------------------------------------------------------
Every Atari id (``ALE/Pong-v5``, ``PongNoFrameskip-v4``, ``Pong-v4``, ``Pong``, ``space_invaders`` ...) is mapped to
its ROM and gets the same preprocessing, whatever its version suffix says:

* **no-op reset**: after a reset the emulator runs a random number (up to 30) of NOOP frames, so that games do not all
  start from the same frame and a policy cannot just memorise one action sequence.
* **FIRE reset**: games whose action set has FIRE get one FIRE frame at reset (Breakout needs it to serve the ball),
  and FIRE for one agent step after every life loss (:class:`FireAfterLifeLoss`), as baselines' ``FireResetEnv``
  under ``EpisodicLifeEnv`` does: without it, a policy that has not learnt to fire stalls Breakout for the rest of
  the game (27,000 agent steps) after its first lost life.
* **frame skip 4 with max-pooling**: the agent picks an action every 4th frame and the action is repeated; the
  observation is the pixel-wise max of the last two frames, because the Atari draws some sprites only every other
  frame (flicker).
* **84x84 grayscale, stack of 4**: the screen is shrunk (``cv2.INTER_AREA``) and the last 4 agent-step frames are
  stacked, oldest first, so that the network can see motion. After a reset the 3 older slots are zeros.
* **sticky actions as the id says** (``repeat_action_probability``: 0.25 for ``ALE/…-v5`` and ``…-v0``, as
  gymnasium registers them, after Machado et al. 2018; 0 for ``…NoFrameskip-v4``, ``…-v4`` and bare names such as
  ``Pong``, as in the paper), **minimal action set** (Pong has 6 actions, not 18), and a cap of **108,000 frames**
  (30 minutes of play) per game, reported as truncation.

Learning signal versus raw score
--------------------------------
Two changes make Atari easier to *learn* but change the game, so they apply to what the learner sees only:

* **reward clipping** (``clip_rewards``, on for Atari): the reward the learner gets is ``sign(raw reward)``, so one
  learning rate fits games whose points differ by orders of magnitude.
* **episodic life** (``episodic_life``, on for Atari): losing a life is reported as ``terminated=True``, so the value
  of the state before a life loss is not bootstrapped from the next life. The game itself goes on; no reset follows.

The score everyone reports (CleanRL, SB3, baselines' Monitor, GALA's logs) is the **raw, unclipped, full-game return**:
all lives, all points. It is in ``info["episode"]["r"]`` at the step where a game ends; never average the learning
reward and call it a score.

The next-step autoreset trap
----------------------------
gymnasium >= 1.0 vector envs (and the native ALE vector env) reset a finished sub-env on the *next* ``step()``:
the action sent on that step is ignored, and what comes back is the first observation of a new game::

    step t    obs=last frame of game 1   reward=r_t  terminated=True                      <- real transition
    step t+1  obs=first frame of game 2  reward=0    terminated=False  autoreset=True     <- NOT a transition
    step t+2  obs=second frame, game 2   reward=r    terminated=False  autoreset=False    <- real again

An n-step return that treats step t+1 as a transition bootstraps across two games and trains on an action that did
nothing. ``info["autoreset"]`` flags those steps so that the learner can mask them out. A life-loss termination is not
followed by an autoreset step (the game continues), and the first step after ``reset()`` is never one.

Where galakit departs from baselines' ``wrap_deepmind`` (which GALA uses)
----------------------------------------------------------------------
* After a life loss, FIRE replaces the agent's next action (one agent step, 4 frames): the game goes on, so there is
  no reset to hook it on as baselines does (a no-op step, a FIRE step and an action-2 step, unseen by the agent). The
  agent's sampled action is still the one stored for learning; since FIRE was played whatever it sampled, the
  advantage of that step does not depend on the sampled action, and its policy-gradient term has expectation 0
  (variance only, one step per life lost).
* The frame stack is not zeroed after a life loss, only when a new game starts.
* No-ops are single frames, drawn from different generators on the two paths: 1 to 30 after the FIRE frame on the
  gymnasium path; 0 to 28 after it on the native path (0 to 29 in games without FIRE). Baselines runs 1 to 30 no-op
  frames, then FIRE for a whole agent step and action 2 for another. Given the same count, the two paths give the same
  frames pixel for pixel (tested), but the same seed does not give the same count.
* The 108,000-frame cap counts frames after the no-ops on the native path and from the game's reset on the gymnasium
  path (at most 30 frames apart).
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable
from typing import Any

import ale_py  # also registers the ALE/... ids with gymnasium before any gym.make
import gymnasium as gym
import numpy as np
from ale_py import roms
from ale_py.env import AtariEnv
from ale_py.vector_env import AtariVectorEnv
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv, VectorWrapper

from galakit.config import ENV_BACKENDS
from galakit.validation import check_choice, fail

__all__ = [
    "BACKENDS",
    "FireAfterLifeLoss",
    "FireOnReset",
    "Float32Observation",
    "LearningSignal",
    "atari_rom_id",
    "default_repeat_action_probability",
    "is_atari",
    "make_vec_env",
]

BACKENDS = ENV_BACKENDS  # ("auto", "ale_vector", "sync", "async"), defined once in galakit.config

# The paper's (DQN/A3C/GALA) Atari preprocessing, in one place.
NOOP_MAX = 30
FRAME_SKIP = 4
SCREEN_SIZE = 84
FRAME_STACK = 4
MAX_FRAMES_PER_GAME = 108_000  # 30 minutes at 60 frames/s; 27,000 agent steps

# "ALE/" prefix, a CamelCase or snake_case game name, an optional legacy mode, an optional "-vN".
_ATARI_ID = re.compile(r"^(?:ALE/)?(?P<game>[A-Za-z0-9_]+?)(?:NoFrameskip|Deterministic)?(?:-v\d+)?$")


@functools.lru_cache(maxsize=1)
def _rom_ids_by_key() -> dict[str, str]:
    """ale_py's ROM ids keyed by their lowercase name without underscores: {"spaceinvaders": "space_invaders"}."""
    return {rom.replace("_", "").lower(): rom for rom in roms.get_all_rom_ids()}


def atari_rom_id(env_id: str) -> str | None:
    """The ALE ROM id (``"space_invaders"``) that ``env_id`` names, or None when it names no Atari game.

    An id registered with gymnasium by another package wins: ``Blackjack-v1`` is the toy-text card game, while
    ``Blackjack`` and ``ALE/Blackjack-v5`` are the Atari cartridge.
    """
    spec = gym.envs.registry.get(env_id)
    if spec is not None and "ale_py" not in str(spec.entry_point):
        return None
    match = _ATARI_ID.match(env_id)
    if match is None:
        return None
    return _rom_ids_by_key().get(match.group("game").replace("_", "").lower())


def is_atari(env_id: str) -> bool:
    """True when ``env_id`` names an ALE game (``ALE/Pong-v5``, ``PongNoFrameskip-v4``, ``Pong``, ``pong`` ...)."""
    return atari_rom_id(env_id) is not None


def default_repeat_action_probability(env_id: str) -> float:
    """The sticky-action probability an Atari id stands for: what gymnasium registers it with (0.25 for
    ``ALE/Pong-v5`` and ``Pong-v0``, 0 for ``PongNoFrameskip-v4`` and ``Pong-v4``), else 0 as in the paper (bare
    names such as ``Pong`` or ``space_invaders``)."""
    spec = gym.envs.registry.get(env_id)
    return float(spec.kwargs.get("repeat_action_probability", 0.0)) if spec is not None else 0.0


@functools.cache
def fire_action(rom: str) -> int | None:
    """The index of FIRE in the game's minimal action set (the agent's action space), or None without FIRE."""
    ale = ale_py.ALEInterface()
    ale.setLoggerMode(ale_py.LoggerMode.Error)
    ale.loadROM(roms.get_rom_path(rom))
    actions = list(ale.getMinimalActionSet())
    return actions.index(ale_py.Action.FIRE) if ale_py.Action.FIRE in actions else None


class FireAfterLifeLoss(VectorWrapper):
    """Play FIRE instead of the agent's action on the step after a life loss, in each sub-env that lost one.

    Breakout serves the ball only on FIRE, at the start of the game and after every lost life; the game's reset is
    handled by the emulator (``FireOnReset``, the native env's ``use_fire_reset``), this wrapper handles the rest.
    Wraps a vector env of raw Atari signals (``info["lives"]``, game over as ``terminated``), both backends alike.
    A life is lost when ``lives`` goes down and stays above 0 on a step that does not end the game.
    """

    def __init__(self, env: VectorEnv, fire: int):
        super().__init__(env)
        self.fire = fire
        self._lives = np.zeros(env.num_envs, dtype=np.int64)
        self._fire_next = np.zeros(env.num_envs, dtype=bool)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        mask = np.ones(self.num_envs, dtype=bool)
        if options is not None and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], dtype=bool).copy()
        obs, info = self.env.reset(seed=seed, options=options)
        self._lives[mask] = np.asarray(info["lives"])[mask]
        self._fire_next[mask] = False
        return obs, info

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict]:
        actions = np.where(self._fire_next, self.fire, np.asarray(actions)).astype(np.asarray(actions).dtype)
        obs, reward, terminated, truncated, info = self.env.step(actions)
        lives = np.asarray(info["lives"], dtype=np.int64)
        self._fire_next = (lives < self._lives) & (lives > 0) & ~(np.asarray(terminated) | np.asarray(truncated))
        self._lives = lives
        return obs, reward, terminated, truncated, info


class FireOnReset(gym.Wrapper):
    """Press FIRE for one emulator frame after each reset, in games whose action set has FIRE.

    Some games (Breakout) wait for FIRE before anything moves; a random policy would see a frozen screen for long.
    Wraps a frame-skip-1 ALE env, below ``AtariPreprocessing``, so the order is that of the native ALE vector env:
    game reset, one FIRE frame, then the no-op frames.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()
        self.fire_action = meanings.index("FIRE") if "FIRE" in meanings else None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        if self.fire_action is not None:
            obs, _, _, _, step_info = self.env.step(self.fire_action)  # one frame cannot end a game
            info.update(step_info)
        return obs, info


def _make_gym_atari(rom: str, repeat_action_probability: float) -> gym.Env:
    """One Atari env on the gymnasium path: ALE at frame skip 1 -> FIRE reset -> AtariPreprocessing -> stack of 4."""
    # AtariEnv directly rather than gym.make("ALE/<Game>-v5"): the same emulator settings, no checker wrappers, and
    # it also loads the 4 ROMs that have no v5 id. Grayscale so the base env does not build an RGB frame per frame.
    env: gym.Env = AtariEnv(
        game=rom,
        obs_type="grayscale",
        frameskip=1,
        repeat_action_probability=repeat_action_probability,
        full_action_space=False,
        max_num_frames_per_episode=MAX_FRAMES_PER_GAME,
    )
    env = FireOnReset(env)
    env = gym.wrappers.AtariPreprocessing(
        env, noop_max=NOOP_MAX, frame_skip=FRAME_SKIP, screen_size=SCREEN_SIZE, terminal_on_life_loss=False
    )
    return gym.wrappers.FrameStackObservation(env, FRAME_STACK, padding_type="zero")


class Float32Observation(gym.ObservationWrapper):
    """Cast a floating-point Box observation to float32, the dtype torch models use."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.observation_space
        self.observation_space = gym.spaces.Box(
            space.low.astype(np.float32), space.high.astype(np.float32), space.shape, np.float32
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.asarray(observation, dtype=np.float32)


def _make_gym_env(env_id: str) -> gym.Env:
    """One gymnasium env; floating-point Box observations come back as float32."""
    env = gym.make(env_id)
    space = env.observation_space
    if isinstance(space, gym.spaces.Box) and np.issubdtype(space.dtype, np.floating) and space.dtype != np.float32:
        env = Float32Observation(env)
    return env


class LearningSignal(VectorWrapper):
    """Split what the learner learns from from what is reported; flag next-step autoreset steps.

    Wraps a vector env that gives **raw** rewards, terminates only at game over and autoresets on the next step.
    Returns, for each of the ``num_envs`` sub-envs:

    * ``reward``: float32, ``sign(raw)`` when ``clip_rewards`` else raw.
    * ``terminated``: game over, or a life loss when ``episodic_life`` (life lost: ``lives`` went down and is still
      above 0, baselines' rule; the game continues).
    * ``truncated``: the time limit.
    * ``info["autoreset"]``: bool (num_envs,), True where this step was an automatic reset (not a transition).
    * ``info["episode"] = {"r": float64, "l": int64}`` and ``info["_episode"]`` (bool mask): raw return and length in
      agent steps of the games that ended at this step (game over or time limit, not a life loss). Present on every
      step, in the layout of gymnasium's ``RecordEpisodeStatistics``.

    The first ``reset()`` without a seed uses ``seed``, so that a run is reproducible from ``make_vec_env``'s seed.
    """

    def __init__(self, env: VectorEnv, *, clip_rewards: bool, episodic_life: bool, seed: int | None = None):
        super().__init__(env)
        self.clip_rewards = clip_rewards
        self.episodic_life = episodic_life
        self._first_seed = seed
        n = env.num_envs
        self._return = np.zeros(n, dtype=np.float64)  # raw reward summed over the current game
        self._length = np.zeros(n, dtype=np.int64)  # agent steps in the current game
        self._lives = np.zeros(n, dtype=np.int64)
        self._game_ended = np.zeros(n, dtype=bool)  # game ended on the previous step: this step is an autoreset

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        if seed is None and self._first_seed is not None:
            seed, self._first_seed = self._first_seed, None
        mask = np.ones(self.num_envs, dtype=bool)
        if options is not None and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], dtype=bool).copy()  # the vector env may pop it from options
        obs, info = self.env.reset(seed=seed, options=options)
        self._return[mask] = 0.0
        self._length[mask] = 0
        self._game_ended[mask] = False
        if "lives" in info:
            self._lives[mask] = np.asarray(info["lives"])[mask]
        info["autoreset"] = np.zeros(self.num_envs, dtype=bool)
        info["episode"], info["_episode"] = self._no_episode()
        return obs, info

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        obs, raw_reward, terminated, truncated, info = self.env.step(np.asarray(actions))
        raw_reward = np.asarray(raw_reward, dtype=np.float64)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)

        autoreset = self._game_ended.copy()  # this step reset those sub-envs: action ignored, reward 0, obs = first obs
        self._return[autoreset] = 0.0
        self._length[autoreset] = 0
        self._return[~autoreset] += raw_reward[~autoreset]
        self._length[~autoreset] += 1

        game_ended = terminated | truncated
        episode, ended_mask = self._no_episode()
        episode["r"][game_ended] = self._return[game_ended]
        episode["l"][game_ended] = self._length[game_ended]
        ended_mask |= game_ended
        self._game_ended = game_ended

        if "lives" in info:
            lives = np.asarray(info["lives"], dtype=np.int64)
            life_lost = (lives < self._lives) & (lives > 0) & ~autoreset
            self._lives = lives
            if self.episodic_life:
                terminated = terminated | life_lost

        reward = np.sign(raw_reward) if self.clip_rewards else raw_reward
        info["autoreset"] = autoreset
        info["episode"], info["_episode"] = episode, ended_mask
        return obs, reward.astype(np.float32), terminated, truncated, info

    def _no_episode(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        n = self.num_envs
        return {"r": np.zeros(n, dtype=np.float64), "l": np.zeros(n, dtype=np.int64)}, np.zeros(n, dtype=bool)


def _fail_unknown_id(env_id: str) -> None:
    names = set(gym.envs.registry)
    for rom in roms.get_all_rom_ids():
        names.update((rom, rom.title().replace("_", "")))
    suggestions = difflib.get_close_matches(env_id, sorted(names), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
    fail("env_id", env_id, "an ALE game ('ALE/Pong-v5', 'PongNoFrameskip-v4', 'Pong', 'space_invaders') or any id "
         f"in gymnasium.envs.registry ('CartPole-v1'){hint}",
         "neither an Atari game known to ale_py nor a registered gymnasium id")


def _check_int(name: str, value: Any, minimum: int) -> None:
    """An int >= minimum; numpy's integers count (a seed drawn with numpy is one)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        fail(name, value, f"an int >= {minimum}")


def make_vec_env(
    env_id: str,
    num_envs: int,
    seed: int = 0,
    *,
    backend: str = "auto",
    clip_rewards: bool | None = None,
    episodic_life: bool | None = None,
    num_threads: int = 0,
    repeat_action_probability: float | None = None,
) -> VectorEnv:
    """Build ``num_envs`` simulators of ``env_id`` behind one vector-env interface (see the module docstring).

    Args:
        env_id: an ALE game in any spelling (``"ALE/Pong-v5"``, ``"PongNoFrameskip-v4"``, ``"Pong"``,
            ``"space_invaders"``), all with the paper's preprocessing; or any gymnasium id (``"CartPole-v1"``).
        num_envs: number of simulators, N.
        seed: sub-env i is seeded with ``seed + i`` at the first ``reset()``, unless it is given a seed.
        backend: ``"auto"`` (Atari -> ``"ale_vector"``, else ``"sync"``); ``"ale_vector"``: ale_py's C++
            ``AtariVectorEnv`` (threads, Atari only); ``"sync"`` / ``"async"``: gymnasium's ``SyncVectorEnv`` (one
            process) / ``AsyncVectorEnv`` (one process per sub-env).
        clip_rewards: learn from ``sign(reward)``; default True for Atari, False otherwise. Scores stay raw.
        episodic_life: report a life loss as ``terminated``; default True for Atari, False otherwise (Atari only).
        num_threads: emulator threads of ``"ale_vector"`` (0: one per core, at most N); ignored by other backends.
        repeat_action_probability: sticky actions: the chance that the emulator keeps the previous action at each
            frame (Machado et al. 2018 use 0.25). None: the id's own (`default_repeat_action_probability`: 0.25 for
            ``ALE/…-v5``, 0 for ``…NoFrameskip-v4``). Atari only.

    Returns:
        A ``gymnasium.vector.VectorEnv``, wrapped in :class:`LearningSignal`. Observations: Atari uint8
        ``(N, 4, 84, 84)``, values 0..255, oldest frame first; other ids as gymnasium gives them, floating-point
        Box observations as float32. ``step`` returns float32 rewards and bool ``terminated``/``truncated`` of shape
        ``(N,)``; ``info`` has ``autoreset``, ``episode``, ``_episode`` and, for Atari, ``lives``.

    Raises:
        ValueError: unknown ``env_id`` (with close matches), bad ``num_envs``, ``seed``, ``backend``,
            ``num_threads`` or ``repeat_action_probability``, or an Atari-only option for a non-Atari id.
    """
    if not isinstance(env_id, str):
        fail("env_id", env_id, "a string such as 'ALE/Pong-v5' or 'CartPole-v1'")
    _check_int("num_envs", num_envs, 1)
    _check_int("seed", seed, 0)
    _check_int("num_threads", num_threads, 0)
    check_choice("backend", backend, BACKENDS)
    rap = repeat_action_probability
    # not (0 <= rap <= 1) also catches NaN
    if rap is not None and (isinstance(rap, bool) or not isinstance(rap, (int, float)) or not 0.0 <= rap <= 1.0):
        fail("repeat_action_probability", rap, "None (the id's own) or a number in [0, 1]")
    num_envs, seed = int(num_envs), int(seed)

    rom = atari_rom_id(env_id)
    if rom is None and ":" not in env_id and env_id not in gym.envs.registry:
        _fail_unknown_id(env_id)
    if rom is None:
        not_atari = f"{env_id!r} is not an Atari game"
        if backend == "ale_vector":
            fail("backend", backend, "'auto', 'sync' or 'async' for it", f"{not_atari}, and ale_vector runs only those")
        if episodic_life:
            fail("episodic_life", episodic_life, "False or None for it", f"{not_atari}: it has no lives to lose")
        if rap not in (None, 0.0):
            fail("repeat_action_probability", rap, "None or 0.0 for it",
                 f"{not_atari}, and sticky actions are an Atari emulator's")
    atari = rom is not None
    if atari and rap is None:
        rap = default_repeat_action_probability(env_id)
    if backend == "auto":
        backend = "ale_vector" if atari else "sync"

    env: VectorEnv
    if backend == "ale_vector":
        # Raw signals from the emulator; LearningSignal derives the learning ones. episodic_life=True here would make
        # the C++ env start a whole new game after every life loss, and reward_clipping=True would lose the score.
        env = AtariVectorEnv(
            rom,
            num_envs,
            num_threads=num_threads,
            max_num_frames_per_episode=MAX_FRAMES_PER_GAME,
            repeat_action_probability=rap,
            full_action_space=False,
            autoreset_mode=AutoresetMode.NEXT_STEP,
            img_height=SCREEN_SIZE,
            img_width=SCREEN_SIZE,
            grayscale=True,
            stack_num=FRAME_STACK,
            frameskip=FRAME_SKIP,
            maxpool=True,
            noop_max=NOOP_MAX,
            episodic_life=False,
            life_loss_info=False,
            reward_clipping=False,
            use_fire_reset=True,
        )
    else:
        make_one: Callable[[], gym.Env]
        if atari:
            make_one = functools.partial(_make_gym_atari, rom, float(rap))
        else:
            make_one = functools.partial(_make_gym_env, env_id)
        vector_cls = SyncVectorEnv if backend == "sync" else AsyncVectorEnv
        env = vector_cls([make_one] * num_envs, autoreset_mode=AutoresetMode.NEXT_STEP)
    if atari and fire_action(rom) is not None:
        env = FireAfterLifeLoss(env, fire_action(rom))

    env = LearningSignal(
        env,
        clip_rewards=atari if clip_rewards is None else bool(clip_rewards),
        episodic_life=atari if episodic_life is None else bool(episodic_life),
        seed=seed,
    )
    env.action_space.seed(seed)
    return env


def build_env(cfg, seed: int | None = None, num_threads: int | None = None) -> VectorEnv:
    """The vector of simulators a ``galakit.Config`` describes (``num_envs`` of ``env_id``, its signal options),
    seeded ``seed`` (default ``cfg.seed``)."""
    return make_vec_env(cfg.env_id, cfg.num_envs, cfg.seed if seed is None else seed, backend=cfg.env_backend,
                        clip_rewards=cfg.clip_rewards, episodic_life=cfg.episodic_life,
                        repeat_action_probability=cfg.repeat_action_probability,
                        num_threads=cfg.env_threads if num_threads is None else num_threads)


class Straggler:
    """Wraps a vector env so that each step takes ``slowdown`` times as long (a learner on a busy machine)."""

    def __init__(self, env, slowdown: float):
        self.env, self.slowdown = env, slowdown

    def step(self, actions):
        import time

        start = time.perf_counter()
        out = self.env.step(actions)
        time.sleep((time.perf_counter() - start) * (self.slowdown - 1))
        return out

    def __getattr__(self, name: str):
        if name == "env":  # not set yet (unpickling): do not recurse
            raise AttributeError(name)
        return getattr(self.env, name)
