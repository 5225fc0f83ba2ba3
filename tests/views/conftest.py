"""Fixtures of the real-browser tests (harness in ``browser.py``): one JupyterLab server and one Chromium for the
session, a fresh page and screenshots for each test. A test that uses ``lab`` is marked ``processes``."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import (
    ARTIFACTS,
    INSTALL_HINT,
    VIEWPORT,
    Lab,
    Screenshots,
    artifact_stem,
    browser_required,
    find_chromium,
    launch_chromium,
    start_lab,
)

TESTS = Path(__file__).resolve().parents[1]

# What the kernel finds in its environment besides this process's own: tests/ on the path, as for the learners the
# tests start (scripted_env, support). MPLBACKEND is left to ipykernel, whose inline backend draws into the page.
KERNEL_ENV = {"PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
              "GALAKIT_BROWSER_TEST": "1"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    # before `-m "not processes"` deselects: the server and its kernels are processes
    for item in items:
        if "lab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.processes)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)  # the page fixture saves a picture of a failed test
    return report


def missing_browser(what: str) -> None:
    """Fail in CI, skip loudly elsewhere."""
    message = f"browser tests need {what}: {INSTALL_HINT}"
    if browser_required():
        pytest.fail(f"{message} (required here: CI or GALAKIT_REQUIRE_BROWSER=1 is set)", pytrace=False)
    warnings.warn(f"SKIPPED {message}", stacklevel=2)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (playwright ``Browser``), shared by the session; tests get a fresh context each."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing_browser("the playwright package (pip install -e '.[dev]')")
    executable = find_chromium()
    if executable is None:
        missing_browser("Chromium, found neither at /usr/bin/chromium, nor as $CHROMIUM, nor on PATH")
    with launch_chromium(executable) as chromium:
        yield chromium


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> Iterator[Lab]:
    """A JupyterLab server for the session (no token, a throwaway root and settings); kernels inherit
    ``KERNEL_ENV``. Notebooks go to ``lab.root``; ``open_notebook`` writes them there."""
    with start_lab(tmp_path_factory.mktemp("lab"), env=KERNEL_ENV) as server:
        yield server


@pytest.fixture
def page(browser, lab, request):
    """A new page in a fresh browser context (no cookies, no storage), 1400×900. Afterwards: a picture of the page
    if the test failed, with the browser console beside it, and every kernel of the test shut down."""
    stem = artifact_stem(request.node.name)
    for old in ARTIFACTS.glob(f"{stem}--*"):  # an earlier run's pictures of this test
        old.unlink()
    context = browser.new_context(viewport=VIEWPORT)
    tab = context.new_page()
    console = []
    tab.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    tab.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=ARTIFACTS / f"{stem}--failure.png")
        (ARTIFACTS / f"{stem}--console.txt").write_text("\n".join(console))
    context.close()
    lab.shutdown_kernels()


@pytest.fixture
def shoot(page, request) -> Screenshots:
    """``shoot("step")`` saves a PNG of the page (or ``of=locator``) named after the test, under
    $GALAKIT_TEST_ARTIFACTS (default: test-artifacts/ in the repository)."""
    return Screenshots(page, request.node.name)
