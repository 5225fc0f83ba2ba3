"""Actor-critic networks: one body, a policy head π(a|s) and a value head V(s).

``AtariActorCritic`` is the network of the official GALA code (itself from ikostrikov's A2C); ``MLPActorCritic``
serves vector observations (CartPole and friends). Both map a batch of observations to
``(logits (B, |A|), value (B,))``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def init_layer(layer: nn.Module, gain: float) -> nn.Module:
    """Orthogonal weights with the given gain, zero biases (the A2C/PPO convention)."""
    nn.init.orthogonal_(layer.weight, gain=gain)
    nn.init.zeros_(layer.bias)
    return layer


class AtariActorCritic(nn.Module):
    """The GALA-A2C network for stacks of 4 grey 84×84 frames.

    conv 32@8×8/4 → conv 64@4×4/2 → conv 32@3×3/1 → fc 512, all ReLU, shared by a policy head (|A| logits) and
    a value head. Orthogonal init with gain √2 for the torso, 0.01 for the policy head, 1 for the value head.
    The third conv has 32 filters (not Nature-DQN's 64), as in the official code: ≈ 0.87 M parameters for Pong.
    """

    def __init__(self, num_actions: int, in_channels: int = 4):
        super().__init__()
        relu_gain = math.sqrt(2)
        self.torso = nn.Sequential(
            init_layer(nn.Conv2d(in_channels, 32, 8, stride=4), relu_gain), nn.ReLU(),
            init_layer(nn.Conv2d(32, 64, 4, stride=2), relu_gain), nn.ReLU(),
            init_layer(nn.Conv2d(64, 32, 3, stride=1), relu_gain), nn.ReLU(),
            nn.Flatten(),
            init_layer(nn.Linear(32 * 7 * 7, 512), relu_gain), nn.ReLU(),
        )
        self.policy = init_layer(nn.Linear(512, num_actions), 0.01)
        self.value = init_layer(nn.Linear(512, 1), 1.0)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """obs: uint8 (B, 4, 84, 84) → logits (B, |A|), value (B,). Frames are scaled by 1/255 here.

        The scaled frames are laid out channels-last (same values, pixels stored channel-innermost): oneDNN's
        convolutions run that layout much faster on CPU (the update is ~1.5x faster); the weights keep theirs.
        """
        frames = obs.contiguous(memory_format=torch.channels_last).to(torch.float32, copy=True).div_(255.0)
        features = self.torso(frames)
        return self.policy(features), self.value(features).squeeze(-1)


class MLPActorCritic(nn.Module):
    """Two separate tanh MLPs (as SB3's MlpPolicy): one for π, one for V. obs: float (B, D)."""

    def __init__(self, obs_dim: int, num_actions: int, hidden_sizes: tuple[int, ...] = (64, 64)):
        super().__init__()
        self.pi_body = self._body(obs_dim, hidden_sizes)
        self.v_body = self._body(obs_dim, hidden_sizes)
        self.policy = init_layer(nn.Linear(hidden_sizes[-1], num_actions), 0.01)
        self.value = init_layer(nn.Linear(hidden_sizes[-1], 1), 1.0)

    @staticmethod
    def _body(obs_dim: int, hidden_sizes: tuple[int, ...]) -> nn.Sequential:
        layers: list[nn.Module] = []
        for size in hidden_sizes:
            layers += [init_layer(nn.Linear(obs_dim, size), math.sqrt(2)), nn.Tanh()]
            obs_dim = size
        return nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        obs = obs.float()
        return self.policy(self.pi_body(obs)), self.value(self.v_body(obs)).squeeze(-1)


def make_model(obs_shape: tuple[int, ...], num_actions: int, hidden_sizes: tuple[int, ...] = (64, 64)) -> nn.Module:
    """The CNN for image stacks (C, 84, 84), the MLP for flat vectors (D,)."""
    if len(obs_shape) == 3 and obs_shape[1:] == (84, 84):
        return AtariActorCritic(num_actions, in_channels=obs_shape[0])
    if len(obs_shape) == 1:
        return MLPActorCritic(obs_shape[0], num_actions, hidden_sizes)
    raise ValueError(f"observation shape: got {obs_shape}; accepted: (C, 84, 84) image stacks or (D,) vectors")


def initial_model(cfg, rank: int, obs_shape: tuple[int, ...], num_actions: int) -> nn.Module:
    """θ_0 of learner ``rank`` (``cfg`` a ``galakit.Config``): drawn with ``cfg.seed``, so identical on every learner
    (as in GALA), unless ``cfg.identical_init`` is False (then drawn with ``seed + rank``). The caller's torch
    generator and thread count are left as they were."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # orthogonal init (a QR) rounds differently with other thread counts
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed if cfg.identical_init else cfg.seed + rank)
            return make_model(obs_shape, num_actions, cfg.hidden_sizes)
    finally:
        torch.set_num_threads(threads)
