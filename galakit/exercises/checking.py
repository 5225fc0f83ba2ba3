"""What every exercise checker shares: call the learner's function, compare with galakit's, say what is wrong.

A checker is a function ``check(fn)`` decorated with :func:`checker`. It runs the learner's ``fn`` on hand-built
cases and on random ones (fixed seeds) through :func:`call`, and compares each answer with galakit's own through
:func:`expect_close`. The first case that fails stops the check with a :class:`Wrong`, which names the case, the
input, what was expected and what came back, and a hint: a :class:`Hint` is a known wrong answer (computed from
the same input with the mistake made on purpose) and the words that name that mistake. When the learner's
answer matches one, that is the hint shown::

    @checker("n-step returns", success="your returns match galakit.n_step_returns on every case")
    def check_n_step_returns(fn):
        for case in cases():
            got = call(fn, *case.args, case=case.name)
            expect_close(got, reference(case), case=case.name, shows=case.shows,
                         hints=[Hint(through_terminal(case), "you bootstrapped through a terminal state")])

The checker prints one line on success, a distinct "not attempted yet" line while ``fn`` still raises
``NotImplementedError``, or the full report, and returns a :class:`Result` (``bool(result)`` is ``passed``).
It works the same in a notebook and in a plain script.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"


@dataclass(frozen=True)
class Result:
    """What a checker found. ``message`` is what it printed; ``bool(result)`` is whether the exercise passed."""

    exercise: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return self.message

    def _ipython_display_(self) -> None:
        """The checker printed the message already; a cell ending with ``check_...(fn)`` shows it once."""


class NotAttempted(Exception):
    """The learner's function still raises ``NotImplementedError``."""


class Wrong(Exception):
    """A case failed: the message is the report a learner reads."""


@dataclass(frozen=True)
class Hint:
    """A known wrong answer to one case (``wrong``: an array, or a function of the learner's answer returning
    True when it shows the mistake) and the words naming the mistake."""

    wrong: Any
    says: str

    def matches(self, got: np.ndarray) -> bool:
        if callable(self.wrong):
            return bool(self.wrong(got))
        wrong = as_array(self.wrong)
        return wrong.shape == got.shape and np.allclose(got, wrong, rtol=1e-5, atol=1e-6, equal_nan=True)


def checker(exercise: str, success: str) -> Callable[[Callable[[Callable], None]], Callable[[Callable], Result]]:
    """Turn ``check(fn)`` (which raises :class:`Wrong` or :class:`NotAttempted`) into a checker that prints
    and returns a :class:`Result`."""

    def decorate(check: Callable[[Callable], None]) -> Callable[[Callable], Result]:
        @functools.wraps(check)
        def run(fn: Callable) -> Result:
            name = getattr(fn, "__name__", "your function")
            if not callable(fn):
                status, message = FAILED, (f"✗ {exercise}: pass the function itself, e.g. `check(my_function)` "
                                           f"(no parentheses after its name); got {type(fn).__name__}")
            else:
                try:
                    check(fn)
                except NotAttempted:
                    status, message = NOT_ATTEMPTED, (
                        f"… {exercise}: not attempted yet. `{name}` still raises NotImplementedError: replace that "
                        f"line with your code and run this cell again.")
                except Wrong as wrong:
                    status, message = FAILED, f"✗ {exercise}: not yet.\n{wrong}"
                else:
                    status, message = PASSED, f"✓ {exercise}: {success}"
            print(message)
            return Result(exercise, status, message)

        return run

    return decorate


def call(fn: Callable, *args: Any, case: str, **kwargs: Any) -> Any:
    """Call the learner's ``fn`` on one case. Arguments are copied first, so an answer that writes into its
    inputs cannot change the reference or the next case."""
    args = tuple(_copy(a) for a in args)
    kwargs = {k: _copy(v) for k, v in kwargs.items()}
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as stub:
        raise NotAttempted from stub
    except Exception as error:  # the learner's bug is the report, not a crash of the checker
        raise Wrong(f"case: {case}\nyour function raised {type(error).__name__}: {error}") from error


def expect_close(got: Any, expected: Any, *, case: str, shows: str = "", hints: Sequence[Hint] = (),
                 rtol: float = 1e-5, atol: float = 1e-6, what: str = "the answer") -> np.ndarray:
    """Compare the learner's answer with the expected one; raise :class:`Wrong` with the report if they differ.

    ``shows`` is the case's input as the learner should see it (a few short lines); a matching ``Hint`` names
    the mistake. Returns the answer as a numpy array.
    """
    if got is None:
        raise Wrong(_report(case, shows, f"{what} is None", "your function returns nothing: is `return` missing?"))
    expected = as_array(expected)
    try:
        got = as_array(got)
    except (TypeError, ValueError) as error:
        raise Wrong(_report(case, shows, f"{what} is a {type(got).__name__}, not an array of real numbers: {error}",
                            "return a numpy array or a torch tensor of real numbers")) from error
    hint = next((h.says for h in hints if h.matches(got)), "")
    if got.shape != expected.shape:
        found = f"{what} has shape {got.shape}; expected shape {expected.shape}"
        raise Wrong(_report(case, shows, found, hint or _shape_hint(got.shape, expected.shape)))
    if not np.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True):
        bad = np.argwhere(~np.isclose(got, expected, rtol=rtol, atol=atol, equal_nan=True))[0]
        where = f" (first difference at index {tuple(int(i) for i in bad)}: expected " \
                f"{expected[tuple(bad)]:.6g}, got {got[tuple(bad)]:.6g})" if got.ndim else ""
        found = f"expected {what}:\n{show(expected)}\ngot:\n{show(got)}{where}"
        raise Wrong(_report(case, shows, found, hint))
    return got


def expect(condition: bool, *, case: str, found: str, hint: str = "", shows: str = "") -> None:
    """Raise :class:`Wrong` unless ``condition``: for checks that are not one array (a type, a count, a flag)."""
    if not condition:
        raise Wrong(_report(case, shows, found, hint))


def as_array(x: Any) -> np.ndarray:
    """A numpy float64 copy of a number, list, numpy array or torch tensor (any device, with or without grad)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    if np.iscomplexobj(x):
        raise TypeError("complex numbers; return real ones (`.real`, when the imaginary parts are 0)")
    return np.asarray(x, dtype=np.float64)


def show(x: Any) -> str:
    """An array as a learner reads it: 4 significant digits, one row per line, indented."""
    text = np.array2string(as_array(x), precision=4, suppress_small=True, max_line_width=100, threshold=60)
    return "\n".join("    " + line for line in text.splitlines())


def _report(case: str, shows: str, found: str, hint: str) -> str:
    lines = [f"case: {case}"]
    if shows:
        lines += ["input:", *("    " + line for line in shows.splitlines())]
    lines.append(found)
    if hint:
        lines.append(f"hint: {hint}")
    return "\n".join(lines)


def _shape_hint(got: tuple, expected: tuple) -> str:
    if got == expected[::-1]:
        return "the axes are swapped: check which axis is time and which is the environment (or node)"
    if len(got) < len(expected):
        return "an axis is missing: did you sum or average over an axis that should stay?"
    return "check the shape of what you return against the docstring"


def _copy(x: Any) -> Any:
    if hasattr(x, "clone"):
        return x.clone()
    if isinstance(x, np.ndarray):
        return x.copy()
    return x
