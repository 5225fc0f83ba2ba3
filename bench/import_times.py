"""Import time of each galakit subpackage (every module in it), in a fresh interpreter: best of ``--repeat``.

    python bench/import_times.py
"""

from __future__ import annotations

import argparse
import pkgutil
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "galakit"
TOP = ["galakit.config", "galakit.validation", "galakit.preflight", "galakit.cli"]


def modules(sub: str) -> list[str]:
    return [f"galakit.{sub}.{m.name}" for m in pkgutil.iter_modules([str(PACKAGE / sub)])]


def seconds(statement: str, repeat: int) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    return min(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                     .stdout) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    cases = {"import galakit": "import galakit",
             "from galakit import build_topology": "from galakit import build_topology",
             **{f"galakit/{sub}/": "; ".join(f"import {m}" for m in modules(sub))
                for sub in ("gossip", "rl", "runtime", "io", "views")},
             "config, validation, preflight, cli": "; ".join(f"import {m}" for m in TOP)}
    for name, statement in cases.items():
        print(f"{name:40s} {seconds(statement, repeat):6.2f} s")


if __name__ == "__main__":
    main()
