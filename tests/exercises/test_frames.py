"""The checker of exercise 04 (the frame stack): its reference, ``push_frame``, is what the real Atari pipeline
returns; the reference solution passes, the stub is "not attempted", and each mistake fails with a hint naming it."""

import numpy as np
import pytest
from support import load_solution

from galakit import make_vec_env
from galakit.exercises import check_frame_stack
from galakit.exercises.checking import FAILED, NOT_ATTEMPTED
from galakit.exercises.frames import push_frame

solution = load_solution("04_frame_stack").push_frame


@pytest.mark.parametrize("backend", ["ale_vector", "sync"])
def test_push_frame_is_what_the_atari_pipeline_returns_through_life_losses_and_new_games(backend):
    # ale_vector: ale-py's C++ AtariVectorEnv stacks the frames; sync: gymnasium's FrameStackObservation. NOOP
    # Breakout loses a life every ~25 steps (FIRE serves again) and a game every ~120.
    env = make_vec_env("BreakoutNoFrameskip-v4", 2, seed=0, backend=backend)
    obs, _ = env.reset()
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    np.testing.assert_array_equal(push_frame(obs, obs[:, -1], np.ones(2, dtype=bool)), obs)  # reset: zeros, frame
    life_losses = new_games = 0
    for _ in range(300):
        previous = obs
        obs, _, terminated, _, info = env.step(np.zeros(2, dtype=np.int64))
        np.testing.assert_array_equal(push_frame(previous, obs[:, -1], info["autoreset"]), obs)
        new_games += int(info["autoreset"].sum())
        life_losses += int((terminated & (info["lives"] > 0)).sum())
    env.close()
    assert new_games >= 2 and life_losses >= 8  # both kinds of episode end were replayed


def test_the_reference_solution_passes():
    assert check_frame_stack(solution).passed


def test_the_stub_is_not_attempted():
    def stub(stack, frame, new_game):
        raise NotImplementedError  # your code here

    result = check_frame_stack(stub)
    assert result.status == NOT_ATTEMPTED and "not attempted yet" in result.message


def test_a_function_that_returns_nothing_is_told_so():
    result = check_frame_stack(lambda stack, frame, new_game: None)
    assert result.status == FAILED and "is `return` missing?" in result.message


def test_passing_the_result_instead_of_the_function_is_told_so():
    result = check_frame_stack(np.zeros((1, 4, 84, 84), dtype=np.uint8))
    assert result.status == FAILED and "pass the function itself" in result.message


def in_place(stack, frame, new_game):  # a correct answer that writes into its input: the checker copies inputs
    stack[:, :-1] = stack[:, 1:].copy()
    stack[new_game, :-1] = 0
    stack[:, -1] = frame
    return stack


def test_an_answer_that_writes_into_its_input_passes():
    assert check_frame_stack(in_place).passed


def last(stack, frame):
    return np.concatenate([stack[:, 1:], frame[:, None]], axis=1)


def never_cleared(stack, frame, new_game):
    return last(stack, frame)


def newest_first(stack, frame, new_game):
    out = np.concatenate([frame[:, None], stack[:, :-1]], axis=1)
    out[new_game, 1:] = 0
    return out


def filled_with_the_first_frame(stack, frame, new_game):  # baselines' FrameStack.reset
    out = last(stack, frame)
    out[new_game] = frame[new_game, None]
    return out


def cleared_everywhere(stack, frame, new_game):
    out = last(stack, frame)
    if new_game.any():
        out[:, :-1] = 0
    return out


def new_frame_cleared_too(stack, frame, new_game):
    out = last(stack, frame)
    out[new_game] = 0
    return out


def not_shifted(stack, frame, new_game):
    out = stack.copy()
    out[new_game] = 0
    out[:, -1] = frame
    return out


def new_game_frame_in_slot_0(stack, frame, new_game):
    out = last(stack, frame)
    out[new_game] = 0
    out[new_game, 0] = frame[new_game]
    return out


def float_stack(stack, frame, new_game):
    out = np.zeros(stack.shape)
    out[:, :-1] = stack[:, 1:]
    out[new_game, :-1] = 0
    out[:, -1] = frame
    return out


@pytest.mark.parametrize(("wrong", "says"), [
    (never_cleared, "the stack was not cleared where new_game is True"),
    (newest_first, "the newest frame went into slot 0"),
    (filled_with_the_first_frame, "on a new game you filled every slot with the first frame"),
    (cleared_everywhere, "you cleared every simulator's stack"),
    (new_frame_cleared_too, "on a new game the new frame was cleared too"),
    (not_shifted, "the newest frame replaced the last one without shifting the others"),
    (new_game_frame_in_slot_0, "on a new game the frame went into slot 0"),
    (float_stack, "return a numpy array of the frames' dtype, uint8"),
])
def test_each_mistake_is_named(wrong, says):
    result = check_frame_stack(wrong)
    assert result.status == FAILED and "hint: " + says in result.message, result.message


def test_a_failure_on_small_frames_shows_one_number_per_frame():
    message = check_frame_stack(never_cleared).message
    assert "case: the frame starts a new game (an autoreset step)" in message
    assert "stack (before this step, slot 0 = oldest) = [[1, 2, 3, 4]]" in message
    assert "expected the next stack:\n    [[0. 0. 0. 5.]]\ngot:\n    [[2. 3. 4. 5.]]" in message
