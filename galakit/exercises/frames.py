"""Checker for exercise 04 (the frame stack): the learner's ``push_frame`` against :func:`push_frame` below.

galakit has no Python frame stack of its own: ale-py's ``AtariVectorEnv`` stacks the frames in C++ (gymnasium's
``FrameStackObservation(padding_type="zero")`` on the other backend). :func:`push_frame` is the rule both follow,
written out; ``tests/exercises/test_frames.py`` replays it beside a real ``make_vec_env`` Breakout, through life
losses and new games, and checks that it gives the environment's observation at every step, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from galakit.exercises.checking import Hint, as_array, call, checker, expect, expect_close


def push_frame(stack: np.ndarray, frame: np.ndarray, new_game: np.ndarray) -> np.ndarray:
    """The next observation of each simulator: its last K frames, oldest first, as galakit's Atari pipeline gives.

    stack (N, K, H, W): the previous observations; frame (N, H, W): each simulator's newest frame; new_game (N,)
    bool: True where ``frame`` is the first frame of a new game (after ``reset()``, or on an autoreset step).
    A simulator that goes on drops its oldest frame and puts ``frame`` last; one that starts a new game gets zeros
    in the K−1 older slots (frames of the old game would show motion that never happened). A life loss is not a
    new game: its stack is kept.
    """
    shifted = np.concatenate([stack[:, 1:], frame[:, None]], axis=1)
    restarted = np.concatenate([np.zeros_like(stack[:, 1:]), frame[:, None]], axis=1)
    return np.where(new_game[:, None, None, None], restarted, shifted)


@dataclass(frozen=True)
class Steps:
    """A case: a start stack and, for each step, the frames and new-game flags; the learner's function is run
    on its own answer step after step, as an environment loop would."""

    name: str
    stack: np.ndarray
    frames: list[np.ndarray]
    new_games: list[np.ndarray]
    small: bool = True  # small frames are printed in the report

    def shows(self, step: int, stack: np.ndarray) -> str:
        N, K, H, W = stack.shape
        lines = [f"N = {N} simulator{'s' if N > 1 else ''}, K = {K} frames of {H}×{W} pixels; step {step + 1} of "
                 f"{len(self.frames)}",
                 f"new_game = {self.new_games[step].tolist()}"]
        if self.small:  # each frame is filled with one number: show that number per slot
            lines += [f"stack (before this step, slot 0 = oldest) = {stack[:, :, 0, 0].tolist()}",
                      f"frame (the newest) = {self.frames[step][:, 0, 0].tolist()}",
                      "(every pixel of a frame holds the same number; below, one number per frame)"]
        return "\n".join(lines)


def filled(values: list[list[int]], size: int = 2) -> np.ndarray:
    """Frames whose pixels all hold one number each: (N, K) numbers → (N, K, size, size) uint8."""
    return np.repeat(np.repeat(np.array(values, dtype=np.uint8)[..., None, None], size, -2), size, -1)


def cases() -> list[Steps]:
    rng = np.random.default_rng(0)
    no, yes = np.array([False]), np.array([True])
    return [
        Steps("one step in a game that goes on", filled([[1, 2, 3, 4]]), [filled([[5]])[:, 0]], [no]),
        Steps("the frame starts a new game (an autoreset step)", filled([[1, 2, 3, 4]]), [filled([[5]])[:, 0]],
              [yes]),
        Steps("two simulators, only the second starts a new game", filled([[1, 2, 3, 4], [11, 12, 13, 14]]),
              [filled([[5], [15]])[:, 0]], [np.array([False, True])]),
        Steps("six steps from reset(), a new game at step 4", filled([[0, 0, 0, 1]]),
              [filled([[v]])[:, 0] for v in (2, 3, 4, 9, 10, 11)], [no, no, no, yes, no, no]),
        Steps("K = 3 frames", filled([[1, 2, 3], [4, 5, 6]]), [filled([[7], [8]])[:, 0]] * 2,
              [np.array([False, True]), np.array([False, False])]),
        Steps("real-sized random frames: N = 4, K = 4, 84×84, uint8",
              rng.integers(0, 256, (4, 4, 84, 84), dtype=np.uint8),
              [rng.integers(0, 256, (4, 84, 84), dtype=np.uint8) for _ in range(5)],
              [rng.random(4) < 0.3 for _ in range(5)], small=False),
    ]


def mistakes(stack: np.ndarray, frame: np.ndarray, new_game: np.ndarray) -> list[Hint]:
    """Known wrong next stacks for one step, each with the mistake made on purpose, and the words that name it."""
    ng = new_game[:, None, None, None]
    older = stack[:, 1:]
    right_shift = np.concatenate([frame[:, None], stack[:, :-1]], axis=1)
    wrong = [
        (np.concatenate([older, frame[:, None]], axis=1),
         "the stack was not cleared where new_game is True: frames of the old game would show motion that never "
         "happened; zero the K−1 older slots there"),
        (np.where(ng, np.repeat(frame[:, None], stack.shape[1], axis=1), push_frame(stack, frame, new_game)),
         "on a new game you filled every slot with the first frame (baselines' FrameStack does that); galakit's "
         "pipeline (ale-py's AtariVectorEnv) puts zeros in the older slots"),
        (np.where(ng, np.concatenate([frame[:, None], np.zeros_like(older)], axis=1),
                  push_frame(stack, frame, new_game)),
         "on a new game the frame went into slot 0: it goes last (slot K−1), after the K−1 zeros"),
        (right_shift, "the newest frame went into slot 0: the stack is oldest first, so the newest frame goes last "
                      "(slot K−1)"),
        (push_frame(stack, frame, np.repeat(new_game.any(), len(new_game))),
         "you cleared every simulator's stack: only those where new_game[i] is True start a new game"),
        (np.where(ng, 0, push_frame(stack, frame, new_game)),
         "on a new game the new frame was cleared too: only the K−1 older slots are zeros"),
        (np.concatenate([stack[:, :-1], frame[:, None]], axis=1),
         "the newest frame replaced the last one without shifting the others: drop the oldest (slot 0), move the "
         "rest down one slot, then put the new frame last"),
    ]
    return [Hint(w, says) for w, says in wrong]


def one_number_per_frame(case: Steps, got, shape: tuple) -> Callable:
    """What the report prints: for the small cases, whose frames each hold one number, that number per slot."""
    if case.small and got is not None and tuple(np.shape(got)) == shape:
        return lambda x: as_array(x)[:, :, 0, 0]
    return lambda x: x


def expect_uint8(got, *, case: str, shows: str) -> None:
    dtype = getattr(got, "dtype", None)
    expect(dtype is not None and "uint8" in str(dtype), case=case, shows=shows,
           found=f"the stack is right, but its type is {type(got).__name__}, of dtype {dtype}",
           hint="return a numpy array of the frames' dtype, uint8 (np.zeros_like(stack), not np.zeros(shape), "
                "which is float64: a buffer of float64 frames takes 8 times the memory)")


@checker("frame stack", success="your push_frame gives the stack galakit's Atari pipeline gives, on every case")
def check_frame_stack(fn: Callable) -> None:
    """Check ``fn(stack, frame, new_game) -> next stack`` (exercise 04), step after step on each case."""
    for case in cases():
        stack = case.stack
        for step, (frame, new_game) in enumerate(zip(case.frames, case.new_games, strict=True)):
            got = call(fn, stack, frame, new_game, case=case.name)
            expected, shows = push_frame(stack, frame, new_game), case.shows(step, stack)
            view = one_number_per_frame(case, got, expected.shape)
            expect_close(view(got), view(expected), case=case.name, shows=shows, what="the next stack",
                         hints=[Hint(view(h.wrong), h.says) for h in mistakes(stack, frame, new_game)])
            expect_close(got, expected, case=case.name, shows=shows, what="the next stack (every pixel)")
            expect_uint8(got, case=case.name, shows=shows)
            stack = np.asarray(got)  # the next step starts from the learner's own stack, as in a real loop
