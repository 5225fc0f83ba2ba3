"""A real-browser harness for widget tests: a throwaway JupyterLab server, headless Chromium (Debian's, never a
download), notebooks written from cell sources, cells run until their kernel is done, and screenshots per step.

The fixtures ``lab``, ``browser``, ``page`` and ``shoot`` live in ``tests/views/conftest.py``; test modules in
``tests/views`` import the functions (``from browser import open_notebook, run_cell``). A test reads::

    from browser import open_notebook, run_cell
    from playwright.sync_api import expect

    def test_the_slider_steps_right(page, lab, shoot):
        open_notebook(page, lab, ["import ipywidgets as w; w.IntSlider(value=2)"])
        output = run_cell(page, 0)              # done: prompt [1]:, kernel idle, no error output
        output.locator(".noUi-handle").press("ArrowRight")
        expect(output.locator(".widget-readout")).to_have_text("3")   # expect retries until it does
        shoot("stepped right")                  # test-artifacts/test_the_slider_steps_right--01-stepped-right.png

Waiting is the whole difficulty, so every wait here names what it waits for and, when it times out, says what
the page showed instead: the cell's source, its prompt, its output and the kernel's status.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import psutil

from galakit.runtime.lifeline import die_with_parent

if TYPE_CHECKING:  # playwright is imported where it is used, so that a missing one can be reported as such
    from playwright.sync_api import Browser, Locator, Page

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("GALAKIT_TEST_ARTIFACTS") or ROOT / "test-artifacts")

# Everything that could make Chromium reach the network, use a GPU or ask a question is off; --no-sandbox because
# CI containers run as root, where Chromium's sandbox refuses to start.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
VIEWPORT = {"width": 1400, "height": 900}
INSTALL_HINT = ("install Debian's chromium (`sudo apt-get install -y chromium`) or point CHROMIUM at a Chromium or "
                "Chrome executable; playwright's own browser download is not used")

# The notebook shown in the main area, and its parts (JupyterLab 4 DOM).
NOTEBOOK = "#jp-main-dock-panel .jp-NotebookPanel:not(.lm-mod-hidden)"
CELL = f"{NOTEBOOK} .jp-Notebook .jp-Cell"
# The toolbar's kernel indicator: data-status is the kernel status as this page's session sees it. It reads
# "idle" before any kernel is attached too, so "ready" also needs the kernel name to be set.
KERNEL_READY_JS = """(selector) => {
  const panel = document.querySelector(selector);
  const status = panel && panel.querySelector('.jp-Notebook-ExecutionIndicator');
  const name = panel && panel.querySelector('.jp-Toolbar-kernelName');
  return !!status && !!name && status.dataset.status === 'idle' && name.textContent.trim() !== 'No Kernel';
}"""


def find_chromium() -> str | None:
    """The Chromium to drive: $CHROMIUM if set, else /usr/bin/chromium, else `chromium` on PATH; None if none."""
    named = os.environ.get("CHROMIUM")
    if named:
        return named  # a wrong path must fail loudly at launch, not fall back to another browser
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def browser_required() -> bool:
    """In CI (or with GALAKIT_REQUIRE_BROWSER=1) a missing browser fails the browser tests instead of skipping."""
    ci = os.environ.get("CI", "").strip().lower()
    return ci not in ("", "0", "false", "no") or os.environ.get("GALAKIT_REQUIRE_BROWSER") == "1"


# --- the server -------------------------------------------------------------------------------------------------

@dataclass
class Lab:
    """A running JupyterLab: its address, the folder it serves (notebooks go there) and its log."""
    url: str
    root: Path
    log: Path
    process: subprocess.Popen = field(repr=False)

    def api(self, method: str, path: str, body: dict | None = None) -> object:
        """One REST call, e.g. ``lab.api("GET", "/api/kernels")``; the decoded JSON, or None for an empty body."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as reply:
            answer = reply.read()
        return json.loads(answer) if answer else None

    def kernels(self) -> list[dict]:
        """The server's kernels: id, name, execution_state ("starting", "idle", "busy"), connections."""
        return self.api("GET", "/api/kernels")

    def shutdown_kernels(self) -> None:
        """End every session and kernel (a notebook's kernel outlives its closed page otherwise)."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")
        for kernel in self.kernels():
            self.api("DELETE", f"/api/kernels/{kernel['id']}")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# JupyterLab's user settings for tests: every cell stays in the DOM (the default windowing drops cells scrolled out
# of view, and a locator would not find them), and no news or update check pops up over the notebook.
TEST_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                      "checkForUpdates": False},
}


@contextmanager
def start_lab(workdir: Path, env: Mapping[str, str] | None = None, timeout: float = 60) -> Iterator[Lab]:
    """Start ``jupyter lab`` on 127.0.0.1 at a free port, with no token and no password, serving
    ``workdir/root``; config, runtime, data, settings and workspaces are fresh folders in ``workdir``, so no user
    setting or kernel spec interferes. The kernel is this Python's (``python3`` from ``sys.prefix``) and inherits
    this process's environment updated by ``env``. On exit: every kernel is shut down through the REST API, the
    server is terminated, and whatever it started that is still alive is killed."""
    dirs = {name: workdir / name for name in ("root", "config", "runtime", "data", "settings", "workspaces")}
    for folder in dirs.values():
        folder.mkdir(parents=True, exist_ok=True)
    for name, values in TEST_SETTINGS.items():
        target = dirs["settings"] / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    port = free_port()
    server_env = {**os.environ, "JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
                  "JUPYTER_DATA_DIR": str(dirs["data"]), "JUPYTER_PLATFORM_DIRS": "1", **(env or {})}
    server_env.pop("JUPYTER_PATH", None)  # only this venv's kernel spec
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={dirs['root']}",
               "--IdentityProvider.token=", "--PasswordIdentityProvider.hashed_password=",
               # no token means no token-authenticated REST calls; the xsrf check would refuse our DELETEs
               "--ServerApp.disable_check_xsrf=True",
               f"--LabApp.user_settings_dir={dirs['settings']}", f"--LabApp.workspaces_dir={dirs['workspaces']}",
               # window.jupyterapp, as JupyterLab's own Galata tests use it: a cell's outputs as nbformat JSON
               "--LabApp.expose_app_in_browser=True",
               "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = workdir / "jupyter.log"
    with open(log, "wb") as out:
        # its own process group, so that teardown can reach whatever it started without touching pytest; and a
        # SIGTERM when pytest dies without teardown (SIGKILL), on which the server shuts its kernels down
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=server_env,
                                   cwd=dirs["root"], start_new_session=True,
                                   preexec_fn=partial(die_with_parent, os.getpid()))
    lab = Lab(url=f"http://127.0.0.1:{port}", root=dirs["root"], log=log, process=process)
    try:
        wait_for_server(lab, timeout)
        yield lab
    finally:
        stop_lab(lab)


def wait_for_server(lab: Lab, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with code {lab.process.returncode}:\n{lab.log_tail()}")
        try:
            lab.api("GET", "/api/status")
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"jupyter lab did not answer {lab.url}/api/status within {timeout:.0f}s:\n{lab.log_tail()}")


def stop_lab(lab: Lab) -> None:
    """Kernels first (they run in sessions of their own, which the server's process group does not reach), then
    the server, then anything of either still alive."""
    try:
        started = psutil.Process(lab.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        started = []
    if lab.process.poll() is None:
        try:
            lab.shutdown_kernels()
        except OSError:
            pass  # a server that does not answer any more is terminated below all the same
        lab.process.terminate()
        try:
            lab.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(lab.process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    lab.process.wait()
    for child in started:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(started, timeout=10)


# --- the browser ------------------------------------------------------------------------------------------------

@contextmanager
def launch_chromium(executable: str) -> Iterator[Browser]:
    """Headless Chromium through playwright's sync API (a ``Browser``); each ``browser.new_context()`` is a fresh
    profile (playwright gives every launch a temporary user-data-dir and removes it on close)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# --- notebooks --------------------------------------------------------------------------------------------------

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def write_notebook(lab: Lab, cells: Sequence[str | nbformat.NotebookNode] | Path, name: str | None = None) -> str:
    """Write a notebook into the lab's root and return its name there. ``cells``: code cell sources (an nbformat
    cell passes as it is, e.g. ``nbformat.v4.new_markdown_cell(...)``), or the path of an existing notebook."""
    if isinstance(cells, Path) or (isinstance(cells, str) and cells.endswith(".ipynb")):
        notebook = nbformat.read(cells, as_version=4)
        name = name or Path(cells).name
    elif isinstance(cells, str):
        raise TypeError(f"cells: got a str ({cells[:40]!r}); accepted: a list of cell sources or an .ipynb path")
    else:
        notebook = nbformat.v4.new_notebook(
            cells=[c if isinstance(c, nbformat.NotebookNode) else nbformat.v4.new_code_cell(c) for c in cells])
        name = name or f"test-{uuid.uuid4().hex[:8]}.ipynb"
    notebook.metadata.setdefault("kernelspec", KERNELSPEC)  # without one, JupyterLab asks which kernel to start
    nbformat.write(notebook, lab.root / name)
    return name


def open_notebook(page: Page, lab: Lab, cells: Sequence[str | nbformat.NotebookNode] | Path,
                  name: str | None = None, timeout: float = 90) -> str:
    """Write the notebook (see ``write_notebook``), open it in JupyterLab and wait until its kernel is connected
    and idle; returns its name. ``?reset`` starts from an empty workspace, so no earlier test's tab comes back."""
    name = write_notebook(lab, cells, name)
    page.goto(f"{lab.url}/lab/tree/{urllib.parse.quote(name)}?reset")
    page.locator(CELL).first.wait_for(timeout=timeout * 1000)
    wait_for_kernel_idle(page, timeout)
    return name


def wait_for_kernel_idle(page: Page, timeout: float = 60) -> None:
    """Until the notebook's kernel is attached and idle, as the toolbar's execution indicator shows it."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(KERNEL_READY_JS, arg=NOTEBOOK, timeout=timeout * 1000, polling=100)
    except PlaywrightTimeout:
        raise AssertionError(f"the kernel is not idle after {timeout:.0f}s; {kernel_state(page)}") from None


def kernel_state(page: Page) -> str:
    return page.evaluate("""(selector) => {
      const panel = document.querySelector(selector);
      const status = panel && panel.querySelector('.jp-Notebook-ExecutionIndicator');
      const name = panel && panel.querySelector('.jp-Toolbar-kernelName');
      return `kernel ${name ? name.textContent.trim() : '(no notebook)'}: ${status ? status.dataset.status : '?'}`;
    }""", NOTEBOOK)


def cell(page: Page, index: int) -> Locator:
    """The locator of cell ``index`` (counting every cell, as in the .ipynb) of the open notebook."""
    return page.locator(CELL).nth(index)


def cell_outputs(page: Page, index: int) -> list[dict]:
    """Cell ``index``'s outputs as nbformat dicts (output_type, text, data, ename, ...), read from JupyterLab's
    model of the current notebook (``window.jupyterapp``, which the server exposes for these tests)."""
    return page.evaluate("""(index) => {
      const panel = window.jupyterapp.shell.currentWidget;
      return panel.content.model.cells.get(index).toJSON().outputs || [];
    }""", index)


def cell_text(page: Page, index: int) -> str:
    """The text of cell ``index``'s outputs as the page shows them."""
    return cell(page, index).locator(".jp-OutputArea").inner_text()


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def describe_cell(page: Page, index: int) -> str:
    target = cell(page, index)
    source = target.locator(".jp-InputArea-editor").inner_text().strip()
    prompt = target.locator(".jp-InputPrompt").inner_text().strip()
    output = cell_text(page, index).strip()
    return (f"cell {index} {prompt} ({kernel_state(page)})\n--- source\n{source[:2000]}\n"
            f"--- output\n{output[-3000:] or '(none)'}")


def run_cell(page: Page, index: int, timeout: float = 60, check: bool = True) -> Locator:
    """Run code cell ``index`` (Ctrl+Enter, as a reader would) and wait until it is done: its prompt went
    ``[*]:`` and then shows an execution count, and the kernel is idle again. Returns the cell's output area
    (a locator); widgets inside it render asynchronously, so wait on them with ``expect``. With ``check`` an
    error output fails the test, with the traceback."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    target = cell(page, index)
    if "jp-CodeCell" not in (target.get_attribute("class") or ""):
        raise ValueError(f"index: got {index}, which is not a code cell; accepted: the index of a code cell")
    prompt = target.locator(".jp-InputPrompt")
    # Remember whether the prompt ever showed [*] (queued or running): an old count in the prompt, or the idle
    # kernel before the request reached it, must not pass for "done".
    prompt.evaluate("""(node) => {
      const queued = (text) => { if (text.trim() === '[*]:') node.galakitQueued = true; };
      node.galakitQueued = false;
      new MutationObserver((records) => {  // each record, so that a [*] replaced within one task still counts
        for (const record of records) record.addedNodes.forEach((added) => queued(added.textContent));
        queued(node.textContent);
      }).observe(node, {childList: true, characterData: true, subtree: true});
    }""")
    prompt.click()  # selects the cell without entering its editor
    page.keyboard.press("Control+Enter")
    try:
        page.wait_for_function("(node) => node.galakitQueued && /^\\[\\d+\\]:$/.test(node.textContent.trim())",
                               arg=prompt.element_handle(), timeout=timeout * 1000, polling=50)
    except PlaywrightTimeout:
        message = f"cell {index} did not finish within {timeout:.0f}s:\n{describe_cell(page, index)}"
        raise AssertionError(message) from None
    wait_for_kernel_idle(page, timeout)
    if check:
        errors = [o for o in cell_outputs(page, index) if o.get("output_type") == "error"]
        if errors:
            trace = ANSI.sub("", "\n".join(errors[0].get("traceback", [])))
            raise AssertionError(f"cell {index} raised {errors[0]['ename']}: {errors[0]['evalue']}\n{trace}")
    return target.locator(".jp-OutputArea")


def run_all(page: Page, timeout: float = 60) -> list[Locator]:
    """Run every code cell in order, each with its own ``timeout``; their output areas."""
    count = page.locator(CELL).count()
    return [run_cell(page, i, timeout) for i in range(count)
            if "jp-CodeCell" in (cell(page, i).get_attribute("class") or "")]


# --- pictures ---------------------------------------------------------------------------------------------------

def artifact_stem(name: str) -> str:
    """A test's or step's name as a file name: ``test_x[a b]`` → ``test_x-a-b`` (never ``--``, which separates
    the test from its steps)."""
    return re.sub(r"[^\w.-]+", "-", name).strip("-")


class Screenshots:
    """``shoot("slider moved")`` saves ``<artifacts>/<test>--02-slider-moved.png`` (the page, or ``of=`` one
    element) and returns its path."""

    def __init__(self, page: Page, test_name: str, folder: Path = ARTIFACTS):
        self.page, self.folder, self.stem, self.count = page, folder, artifact_stem(test_name), 0

    def __call__(self, step: str, of: Locator | None = None) -> Path:
        self.count += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.stem}--{self.count:02d}-{artifact_stem(step)}.png"
        (of or self.page).screenshot(path=str(path))
        return path


def pixel_difference(a: bytes | Path, b: bytes | Path, tolerance: int = 0) -> float:
    """The fraction of pixels (0..1) in which two PNG images differ by more than ``tolerance`` (0..255) in any
    channel; images of different sizes differ everywhere (1.0). ``a``/``b``: PNG bytes (``locator.screenshot()``)
    or files."""
    import numpy as np
    from PIL import Image

    def pixels(image: bytes | Path) -> np.ndarray:
        source = io.BytesIO(image) if isinstance(image, bytes) else image
        with Image.open(source) as opened:
            return np.asarray(opened.convert("RGBA"), dtype=np.int16)

    first, second = pixels(a), pixels(b)
    if first.shape != second.shape:
        return 1.0
    return float((np.abs(first - second).max(axis=-1) > tolerance).mean())
