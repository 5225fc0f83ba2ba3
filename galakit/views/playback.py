"""Watch a checkpoint play: the game's own full-colour screens, step by step, shown inline in Jupyter as a small
animation (no ffmpeg, nothing fetched from the web) and saved as .mp4, .gif or one .png.

How the frames are made
-----------------------
The policy plays exactly as :func:`galakit.rl.evaluate.evaluate` plays it: the same model (``load_policy``), the
same simulators built by ``build_env`` from the checkpoint's config, so the same observations (for Atari the 84x84
grayscale stack of 4), the same action rule. Only the camera is added: after each agent step the simulator is asked
for its ``rgb_array`` render, the screen a person would see (Atari 210x160x3, CartPole 400x600x3), never the
preprocessed observation.

One simulator plays, in-process (the ``"sync"`` backend): ale_py's native vector env, which Atari training uses,
cannot show its screens. Atari then runs on gymnasium's path, whose preprocessing gives the same observations pixel
for pixel (``tests/rl/test_envs.py``), though a seed draws other no-op counts there than on the native path.
"""

from __future__ import annotations

import base64
import io
import json
import os
import string
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from galakit.rl.a2c import sample_actions
from galakit.rl.envs import FRAME_SKIP, build_env, is_atari
from galakit.rl.evaluate import load_policy
from galakit.rl.machine import resolve_device, torch_threads
from galakit.validation import check_float, check_int, fail

__all__ = ["VIDEO_FORMATS", "Replay", "check_video_path", "replay"]

VIDEO_FORMATS = (".mp4", ".gif")
ATARI_FPS = 60 / FRAME_SKIP  # a 60 Hz console with one agent step every 4 frames: 15 steps a second is real time

# The inline player: one <img> whose source steps through the frames (base64 PNGs), play/pause, a slider, and
# "game g, step s/length" under it. Plain JavaScript, nothing loaded from elsewhere.
_PLAYER = string.Template("""\
<div id="$uid" style="display:inline-block;text-align:center;font-family:sans-serif">
<img style="width:${width}px;height:${height}px;image-rendering:pixelated;border:1px solid #ccc">
<div><button type="button" style="width:4em">pause</button>
<input type="range" min="0" max="$last" value="0" style="width:${slider}px">
<span style="font-family:monospace;font-size:small"></span></div>
<div style="font-size:small">$caption</div>
<script>(() => {
  const root = document.getElementById("$uid"), frames = $frames, lengths = $lengths;
  const img = root.querySelector("img"), button = root.querySelector("button");
  const slider = root.querySelector("input"), label = root.querySelector("span");
  let i = 0, timer = null;
  function show(k) {
    i = k; img.src = frames[i]; slider.value = i;
    let game = 0, start = 0;
    while (game < lengths.length - 1 && i >= start + lengths[game]) start += lengths[game++];
    label.textContent = (lengths.length > 1 ? "game " + (game + 1) + ", " : "") +
                        "step " + (i - start + 1) + "/" + lengths[game];
  }
  function play() { timer = setInterval(() => show((i + 1) % frames.length), $delay); button.textContent = "pause"; }
  function pause() { clearInterval(timer); timer = null; button.textContent = "play"; }
  button.onclick = () => (timer ? pause() : play());
  slider.oninput = () => { pause(); show(Number(slider.value)); };
  show(0); play();
})();</script></div>""")


def check_video_path(path: str | os.PathLike, field: str = "path") -> Path:
    """``path`` as a ``Path`` if it ends in one of ``VIDEO_FORMATS``; else the one error, under ``field`` (the CLI
    says ``--video``), so that a mistyped name fails before a game is played."""
    if Path(path).suffix.lower() not in VIDEO_FORMATS:
        fail(field, str(path), f"a file name ending in {' or '.join(VIDEO_FORMATS)}")
    return Path(path)


@dataclass(repr=False)
class Replay:
    """Games played by a checkpoint's policy, as the player saw them.

    Attributes:
        frames: one (H, W, 3) uint8 screen per agent step, *after* the step (the reset screen is not included, the
            screen where the game ends is): ``len(frames) == sum(lengths)``, unless capped at ``max_frames``, when
            the first ``max_frames`` are kept. Games follow each other.
        scores: (episodes,) raw, unclipped return of each whole game (Atari: all lives), as ``evaluate`` reports.
        lengths: (episodes,) agent steps of each game.
        fps: playback speed, frames a second.
        env_id: the game.
    """

    frames: list[np.ndarray]
    scores: np.ndarray
    lengths: np.ndarray
    fps: float
    env_id: str

    @property
    def complete(self) -> bool:
        """True when every step of every game has its frame (no ``max_frames`` cap cut the recording)."""
        return len(self.frames) == int(self.lengths.sum())

    def caption(self) -> str:
        """``"CartPole-v1: raw score 500"``; several games list their scores; a capped recording says so."""
        scores = ", ".join(f"{s:.0f}" if float(s).is_integer() else f"{s:.2f}" for s in self.scores)
        text = f"{self.env_id}: raw score{'s' if len(self.scores) > 1 else ''} {scores}"
        if len(self.scores) > 1:
            text += f" (mean {self.scores.mean():.1f})"
        if not self.complete:
            text += f"; the first {len(self.frames)} of {int(self.lengths.sum())} steps shown"
        return text

    def __repr__(self) -> str:
        h, w, _ = self.frames[0].shape
        return f"Replay({self.caption()}; {len(self.frames)} frames of {h}x{w} at {self.fps:g} fps)"

    def _repr_html_(self) -> str:
        """A self-contained player (play/pause, a slider, the step shown): every frame a base64 PNG in the page,
        a few lines of JavaScript, no external file. Jupyter runs it in a notebook you trust (your own outputs)."""
        from PIL import Image

        def png(frame: np.ndarray) -> str:
            buffer = io.BytesIO()
            Image.fromarray(frame).save(buffer, format="PNG", compress_level=1)  # fast; level 6 halves the size
            return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()

        h, w, _ = self.frames[0].shape
        scale = max(1, 320 // w)  # small Atari screens drawn twice as large, pixels kept sharp
        return _PLAYER.substitute(
            uid=f"galakit-replay-{uuid.uuid4().hex[:12]}", width=w * scale, height=h * scale,
            slider=max(w * scale - 180, 100), last=len(self.frames) - 1, delay=1000 / self.fps,
            caption=self.caption().replace("&", "&amp;").replace("<", "&lt;"),
            frames=json.dumps([png(f) for f in self.frames]), lengths=json.dumps(self.lengths.tolist()))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the frames as an .mp4 (H.264 through imageio-ffmpeg's own ffmpeg binary) or a .gif (Pillow) and
        return the path. The file appears whole or not at all (written next to it, then renamed over it).

        A GIF stores 256 colours a frame and 1/100 s delays, and Pillow merges identical consecutive frames into one
        longer frame: reading it back may give fewer frames than ``frames`` (same duration).
        """
        path = check_video_path(path)
        if path.suffix.lower() == ".mp4":
            _atomic_write(path, self._write_mp4)
        else:
            _atomic_write(path, self._write_gif)
        return path

    def save_png(self, path: str | os.PathLike, frame: int = -1) -> Path:
        """Write one frame (default the last: how the game ended) as a PNG and return the path."""
        from PIL import Image

        path = Path(path)
        if path.suffix.lower() != ".png":
            fail("path", str(path), "a file name ending in .png")
        n = len(self.frames)
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or not -n <= frame < n:
            fail("frame", frame, f"an int in [{-n}, {n - 1}] (this replay has {n} frames)")
        _atomic_write(path, lambda tmp: Image.fromarray(self.frames[frame]).save(tmp, format="PNG"))
        return path

    def _write_mp4(self, tmp: Path) -> None:
        import imageio.v2 as imageio

        # H.264 in yuv420p needs even sides: macro_block_size=2 pads an odd side by one pixel (the default 16
        # would rescale 210x160 Atari screens to 224x160).
        with imageio.get_writer(tmp, format="FFMPEG", fps=self.fps, macro_block_size=2) as writer:
            for frame in self.frames:
                writer.append_data(frame)

    def _write_gif(self, tmp: Path) -> None:
        from PIL import Image

        # One palette per frame by fast octree: ~4x faster than Pillow's default median cut on these screens.
        images = [Image.fromarray(f).quantize(method=Image.Quantize.FASTOCTREE) for f in self.frames]
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=1000 / self.fps, loop=0)


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` to a temporary file next to ``path`` (with its suffix, which the writers read), then rename
    it over ``path``; on an error the temporary file goes and ``path`` is untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _camera(env) -> Callable[[], np.ndarray]:
    """A function returning the screen, (H, W, 3) uint8, of the one simulator of a ``"sync"`` vector env.

    The simulators were built without a render mode (training never renders). Classic control and ALE envs read
    ``render_mode`` when ``render()`` is called, so setting it on the base env adds rendering and changes nothing
    else: the game and its observations stay those of ``build_env``.
    """
    base = env.unwrapped.envs[0].unwrapped
    if "rgb_array" not in base.metadata.get("render_modes", ()):
        fail("env_id", base.spec.id if base.spec else type(base).__name__, "an environment that renders rgb_array")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame (classic control) then needs no screen
    base.render_mode = "rgb_array"
    return lambda: np.ascontiguousarray(base.render(), dtype=np.uint8)


@torch.inference_mode()
def replay(checkpoint: str | os.PathLike, episodes: int = 1, *, deterministic: bool = False, seed: int = 10_000,
           max_frames: int | None = 3_000, fps: float | None = None, device: str = "cpu") -> Replay:
    """Play ``episodes`` whole games with a checkpoint's policy and keep the screen of every step.

    Args:
        checkpoint: a ckpt_*.pt file or a run directory (its newest checkpoint), as ``load_policy`` takes.
        episodes: games to play, one after the other on one simulator.
        deterministic: take the most likely action instead of sampling π.
        seed: seeds the simulator and torch's generator (as ``torch.manual_seed(seed)``; its state is restored
            afterwards), so a replay is repeatable. For a non-Atari checkpoint it plays the games that
            ``torch.manual_seed(seed); evaluate(checkpoint, episodes, deterministic, seed, num_envs=1)`` plays
            (Atari: the same preprocessing, other games; see the module docstring).
        max_frames: keep at most this many frames (None: all). The games are still played to the end, so
            ``scores`` and ``lengths`` stay those of whole games. Memory: 100 KB a frame for Atari (210x160x3),
            720 KB for CartPole (400x600x3); a good Atari agent plays thousands of steps a game.
        fps: playback speed; default real time (CartPole 50, Atari 15 agent steps a second).
        device: where the policy runs.

    Returns:
        A :class:`Replay`; in Jupyter it shows itself as an animation with its scores.
    """
    check_int("episodes", episodes, 1)
    check_int("seed", seed, 0)
    if max_frames is not None:
        check_int("max_frames", max_frames, 1)
    if fps is not None:
        check_float("fps", fps, 0.0, 1000.0, low_open=True)
    where = resolve_device(device)
    frames: list[np.ndarray] = []
    scores: list[float] = []
    lengths: list[int] = []
    with torch.random.fork_rng(devices=[where.index or 0] if where.type == "cuda" else []), torch_threads(1):
        torch.manual_seed(seed)  # before load_policy, as evaluate after torch.manual_seed(seed): the same draws
        model, cfg = load_policy(str(checkpoint), device)
        env = build_env(cfg.replace(num_envs=1, env_backend="sync"), seed=seed)
        try:
            if fps is None:
                fps = ATARI_FPS if is_atari(cfg.env_id) else float(env.unwrapped.envs[0].metadata.get("render_fps", 30))
            screen = _camera(env)
            obs, _ = env.reset(seed=seed)
            while len(scores) < episodes:  # evaluate's loop, one simulator
                logits, _ = model(torch.as_tensor(obs, device=where))
                actions = logits.argmax(-1) if deterministic else sample_actions(logits)
                obs, _, _, _, info = env.step(actions.cpu().numpy())
                if info["autoreset"][0]:  # the first screen of the next game: no step of any game
                    continue
                if max_frames is None or len(frames) < max_frames:
                    frames.append(screen())
                if info["_episode"][0]:
                    scores.append(float(info["episode"]["r"][0]))
                    lengths.append(int(info["episode"]["l"][0]))
        finally:
            env.close()
    return Replay(frames, np.array(scores), np.array(lengths), float(fps), cfg.env_id)
