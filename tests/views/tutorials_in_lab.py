"""Run the tutorials in a real JupyterLab in headless Chromium, as a student would, and photograph each key figure.

    .venv/bin/python tests/views/tutorials_in_lab.py              # every tutorial, full budgets (tens of minutes)
    .venv/bin/python tests/views/tutorials_in_lab.py 03 04 --smoke # some, at the smoke budget (GALAKIT_SMOKE=1)
    .venv/bin/python tests/views/tutorials_in_lab.py --docs        # also copy the key figures to docs/

Each notebook is copied into a throwaway lab root (its runs go there), opened in the browser, and its code cells
run one by one with Ctrl+Enter (the harness of ``browser.py``: each waits for its prompt and an idle kernel). A
cell that raises, or prints a warning or a traceback, fails the notebook. The output of the cell tagged
``key-figure`` is saved as ``test-artifacts/tutorials/<name>.png`` (``--docs``: also ``docs/tutorials/``), and
the wall-clock of every notebook goes to ``test-artifacts/tutorials/timings.json``. This is a tool run by hand
(a full run of every tutorial takes longer than CI allows); CI runs the same notebooks through nbclient in
smoke mode (``tests/test_notebooks.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from browser import (
    ARTIFACTS,
    ROOT,
    VIEWPORT,
    cell,
    cell_outputs,
    find_chromium,
    launch_chromium,
    open_notebook,
    run_cell,
    start_lab,
)

TUTORIALS = ROOT / "tutorials"
OUT = ARTIFACTS / "tutorials"
DOCS = ROOT / "docs" / "tutorials"
WARNING = re.compile(r"\b\w*Warning\b:")


def key_figure(notebook: nbformat.NotebookNode) -> int | None:
    """The index of the cell tagged ``key-figure``."""
    tagged = [i for i, c in enumerate(notebook.cells) if "key-figure" in c.get("metadata", {}).get("tags", [])]
    return tagged[0] if tagged else None


def printed_problems(outputs: list[dict]) -> list[str]:
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    found = [line for line in text.splitlines() if WARNING.search(line)]
    return found + (["a traceback was printed"] if "Traceback (most recent call last)" in text else [])


def run_tutorial(page, lab, path: Path, cell_timeout: float) -> dict:
    """Open one tutorial, run its code cells in order; its timings, problems and the key figure's picture."""
    notebook = nbformat.read(path, as_version=4)
    started = time.monotonic()
    open_notebook(page, lab, path)
    opened = time.monotonic() - started
    cells, problems = [], []
    for index, source in enumerate(notebook.cells):
        if source.cell_type != "code":
            continue
        began = time.monotonic()
        run_cell(page, index, timeout=cell_timeout)  # an error output raises, with the traceback
        cells.append({"cell": index, "seconds": round(time.monotonic() - began, 1)})
        problems += [f"cell {index}: {p}" for p in printed_problems(cell_outputs(page, index))]
    result = {"notebook": path.name, "seconds": round(time.monotonic() - started, 1),
              "open_seconds": round(opened, 1), "cells": cells, "problems": problems}
    index = key_figure(notebook)
    if index is not None:
        OUT.mkdir(parents=True, exist_ok=True)
        target = cell(page, index).locator(".jp-OutputArea")
        target.scroll_into_view_if_needed()
        time.sleep(1.0)  # widgets and images finish drawing
        picture = OUT / f"{path.stem}.png"
        target.screenshot(path=str(picture))
        result["key_figure"] = str(picture)
    page.screenshot(path=str(OUT / f"{path.stem}--page.png"))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="tutorial prefixes (e.g. 00 03); default: all")
    parser.add_argument("--smoke", action="store_true", help="GALAKIT_SMOKE=1: the tiny budgets")
    parser.add_argument("--docs", action="store_true", help="copy each key figure to docs/tutorials/")
    parser.add_argument("--cell-timeout", type=float, default=1200, help="seconds one cell may take")
    args = parser.parse_args(argv)
    paths = sorted(p for p in TUTORIALS.glob("*.ipynb") if not args.names or p.name.startswith(tuple(args.names)))
    if not paths:
        parser.error(f"names: got {args.names}; accepted: prefixes of {[p.stem for p in TUTORIALS.glob('*.ipynb')]}")
    executable = find_chromium()
    if executable is None:
        parser.error("Chromium not found: apt-get install -y chromium, or set $CHROMIUM")
    env = {"GALAKIT_SMOKE": "1" if args.smoke else "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))}
    results, failed = [], False
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir, start_lab(Path(workdir), env=env) as lab, \
            launch_chromium(executable) as browser:
        for path in paths:
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            try:
                result = run_tutorial(page, lab, path, args.cell_timeout)
            except AssertionError as error:  # the harness's failures say what the page showed
                result = {"notebook": path.name, "error": str(error)[-4000:]}
                page.screenshot(path=str(OUT / f"{path.stem}--failure.png"))
            finally:
                context.close()
                lab.shutdown_kernels()
            failed |= bool(result.get("error") or result.get("problems"))
            results.append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "cells"}), flush=True)
            if args.docs and "key_figure" in result and not result.get("error"):
                DOCS.mkdir(parents=True, exist_ok=True)
                shutil.copy(result["key_figure"], DOCS / Path(result["key_figure"]).name)
    mode = "smoke" if args.smoke else "full"
    (OUT / f"timings-{mode}.json").write_text(json.dumps(results, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
