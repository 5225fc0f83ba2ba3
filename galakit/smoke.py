"""The tutorials' one switch: ``GALAKIT_SMOKE=1`` shrinks every budget so all notebooks run in CI in minutes.

A notebook writes each budget once, as ``budget(full=150_000, smoke=4_000)``: without the switch it does the
real thing (and asserts the real claim), with it the tiny version (and asserts what a tiny budget can show).
"""

import os

ENV_VAR = "GALAKIT_SMOKE"


def smoke_mode() -> bool:
    """True when ``GALAKIT_SMOKE`` is set to ``1`` (CI and ``tests/test_notebooks.py`` set it)."""
    return os.environ.get(ENV_VAR, "") == "1"


def budget(full, smoke):
    """``smoke`` in smoke mode, ``full`` otherwise: a step count, a number of games, a duration, a grid."""
    return smoke if smoke_mode() else full
