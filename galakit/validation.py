"""The one error format of galakit, ``field: got X (why); accepted: Y``, and the checks that raise it.

Every module that checks a value a user gave (the config, the simulators, the topologies, the gossip simulator,
the consensus functions, evaluation) raises through ``fail``, so every bad value reads the same way: which field,
what came in, why it cannot work (when that is not obvious), and what would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NoReturn


class InvalidValue(ValueError):
    """The ``ValueError`` that `fail` raises. Its parts stay readable (``field``, ``value``, ``accepted``, ``why``),
    so a caller that checks a value through another function can report it under its own field: ``Config`` turns
    a graph that `galakit.gossip.topology.from_networkx` refuses into a ``topology: got …`` error."""

    field: str
    value: Any
    accepted: str
    why: str


class Described(str):
    """A value shown by a description rather than its repr, e.g. ``Described("a DiGraph with 5 nodes")``: the
    repr of a graph or a large array says little, so `fail` writes this text as it is, without quotes."""

    def __repr__(self) -> str:
        return str(self)


def fail(name: str, value: Any, accepted: str, why: str = "") -> NoReturn:
    """Raise ``InvalidValue("name: got value (why); accepted: accepted")``, a ``ValueError``."""
    err = InvalidValue(f"{name}: got {value!r}{f' ({why})' if why else ''}; accepted: {accepted}")
    err.field, err.value, err.accepted, err.why = name, value, accepted, why
    raise err


def check_int(name: str, value: Any, minimum: int = 0, maximum: int | None = None) -> int:
    """``value`` as an int in [minimum, maximum] (bools are not ints here)."""
    if maximum is not None:
        accepted = f"an int in [{minimum}, {maximum}]"
    else:
        accepted = f"an int >= {minimum}"
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum or (
            maximum is not None and value > maximum):
        fail(name, value, accepted)
    return value


def check_float(name: str, value: Any, low: float, high: float, low_open: bool = False) -> float:
    """``value`` as a finite number in [low, high] (or (low, high] with ``low_open``)."""
    accepted = f"a number in {'(' if low_open else '['}{low}, {high}]"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        fail(name, value, accepted)
    # NaN compares false with everything, so it passes the range test: isfinite catches it
    if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
        fail(name, value, accepted)
    return float(value)


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        fail(name, value, ", ".join(repr(c) for c in choices))
    return value
