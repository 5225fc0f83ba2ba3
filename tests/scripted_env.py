"""A gymnasium env whose every number is known in advance, for tests of what learners and wrappers do with them.

``ScriptedEnv`` ignores its actions. Step t of a game (t = 1, 2, ...) returns reward ``rewards[t - 1]`` (cycling
through the list), observation ``[game index, t]``, and ``info["lives"] = lives[t]`` when a lives schedule is given.
The game terminates at step ``terminate_after`` or, failing that, is truncated at step ``truncate_after``.

Example: ``ScriptedEnv(rewards=(1.0, -2.0, 0.5, 3.0), terminate_after=4)`` plays games of 4 steps with raw return
1 - 2 + 0.5 + 3 = 2.5 and clipped (sign) return 1 - 1 + 1 + 1 = 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

SCRIPTED_ID = "galakit-test/Scripted-v0"


class ScriptedEnv(gym.Env):
    """Fixed reward sequence; terminates after ``terminate_after`` steps or truncates after ``truncate_after``."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        rewards: Sequence[float] = (1.0, -2.0, 0.5, 3.0),
        terminate_after: int | None = 4,
        truncate_after: int | None = None,
        lives: Sequence[int] | None = None,
    ):
        if terminate_after is None and truncate_after is None:
            raise ValueError("terminate_after=None and truncate_after=None: the game would never end.")
        self.rewards = tuple(float(r) for r in rewards)
        self.terminate_after = terminate_after
        self.truncate_after = truncate_after
        self.lives = tuple(lives) if lives is not None else None
        # float64 on purpose: make_vec_env must hand float32 to the learner.
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float64)
        self.action_space = gym.spaces.Discrete(2)
        self.games = -1  # index of the current game, 0 after the first reset
        self.t = 0  # steps taken in the current game

    def _obs(self) -> np.ndarray:
        return np.array([self.games, self.t], dtype=np.float64)

    def _info(self) -> dict[str, Any]:
        if self.lives is None:
            return {}
        return {"lives": self.lives[min(self.t, len(self.lives) - 1)]}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.games += 1
        self.t = 0
        return self._obs(), self._info()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        reward = self.rewards[(self.t - 1) % len(self.rewards)]
        terminated = self.terminate_after is not None and self.t >= self.terminate_after
        truncated = not terminated and self.truncate_after is not None and self.t >= self.truncate_after
        return self._obs(), reward, terminated, truncated, self._info()


def register_scripted(env_id: str = SCRIPTED_ID, **kwargs: Any) -> str:
    """Register ``ScriptedEnv(**kwargs)`` under ``env_id`` (replacing an earlier one) so ``gym.make`` can build it."""
    gym.register(id=env_id, entry_point=ScriptedEnv, kwargs=kwargs, disable_env_checker=True)
    return env_id
