"""CartPole variants for process tests, importable by spawned learners as ``faulty_env:<Id>``.

A learner of rank r seeds its simulators ``seed + r·num_envs + i``, so an env can tell which learner owns it
from its seed: ``Faulty-v0`` raises inside learner 1 only, after a few steps; ``NaNReward-v0`` gives learner 1
a NaN reward there instead.
"""

import gymnasium as gym
from gymnasium.envs.classic_control import CartPoleEnv


class FaultyCartPole(CartPoleEnv):
    """Raises RuntimeError on its 20th step when its seed says it belongs to a learner of rank ≥ 1."""

    envs_per_learner = 2

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.owner_rank = seed // self.envs_per_learner
            self.steps = 0
        return super().reset(seed=seed, options=options)

    def step(self, action):
        self.steps = getattr(self, "steps", 0) + 1
        if getattr(self, "owner_rank", 0) >= 1 and self.steps == 20:
            raise RuntimeError("simulator crashed on purpose")
        return super().step(action)


gym.register(id="Faulty-v0", entry_point=FaultyCartPole, max_episode_steps=500)


class NaNRewardCartPole(FaultyCartPole):
    """Returns a NaN reward on its 20th step when it belongs to a learner of rank ≥ 1: that learner's next A2C
    update makes its parameters NaN (a diverging learner), while the simulator itself carries on."""

    def step(self, action):
        self.steps = getattr(self, "steps", 0) + 1
        obs, reward, terminated, truncated, info = CartPoleEnv.step(self, action)
        if getattr(self, "owner_rank", 0) >= 1 and self.steps == 20:
            reward = float("nan")
        return obs, reward, terminated, truncated, info


gym.register(id="NaNReward-v0", entry_point=NaNRewardCartPole, max_episode_steps=500)
