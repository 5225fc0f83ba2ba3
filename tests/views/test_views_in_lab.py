"""The views as a student sees them, in a real JupyterLab in headless Chromium: the explorer renders and its step
slider changes the picture; a dashboard of a started 2-learner run draws growing curves and its Stop button ends
every learner process within 10 s; a replay plays inline. Screenshots go to the test artifacts, and to docs/ with
GALAKIT_UPDATE_DOCS=1 (the README's pictures)."""

import os
import re
import shutil
import time
from pathlib import Path

import psutil
import pytest
from browser import ROOT, cell_text, open_notebook, pixel_difference, run_cell
from playwright.sync_api import expect

pytestmark = pytest.mark.processes  # a JupyterLab server, its kernel, Chromium and learner processes

DOCS = ROOT / "docs"


def for_docs(shot: Path, name: str) -> None:
    """Keep ``shot`` as ``docs/<name>`` when the README's pictures are being renewed."""
    if os.environ.get("GALAKIT_UPDATE_DOCS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS / name)


def step_of(status: str) -> int:
    """The run's step in the dashboard's status line (``… step 1200 of 40000 · …``)."""
    match = re.search(r"step ([\d,]+) of", status)
    assert match, status
    return int(match.group(1).replace(",", ""))


def points_drawn(view) -> int:
    """Points of every curve in the dashboard's charts (``data-points`` of each series in the page)."""
    return sum(int(n) for n in view.locator(".galakit-series").evaluate_all(
        "(nodes) => nodes.map((node) => node.dataset.points)"))


def wait_for_step(status, above: int, timeout: float) -> int:
    """Poll the dashboard's status line until the run is past step ``above``; that step."""
    deadline = time.monotonic() + timeout
    while (step := step_of(status.inner_text())) <= above and time.monotonic() < deadline:
        time.sleep(0.25)
    assert step > above, f"the dashboard stayed at step {step} for {timeout} s: {status.inner_text()}"
    return step


def test_the_explorer_renders_and_its_step_slider_changes_the_picture(page, lab, shoot):
    open_notebook(page, lab, ["from galakit.views import explore\n"
                              "ex = explore(topology='one_peer_exponential', n=8)\nex"])
    output = run_cell(page, 0, timeout=120)
    explorer = output.locator(".galakit-explorer")
    view, readout = explorer.locator("img.galakit-explorer-view"), explorer.locator(".galakit-explorer-readout")
    expect(view).to_be_visible(timeout=30_000)
    expect(readout).to_contain_text("step k = 0")
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=view.element_handle())
    before = view.screenshot()
    for_docs(shoot("explorer at step 0", of=explorer), "explorer.png")

    handle = explorer.locator(".galakit-explorer-step .noUi-handle")
    handle.focus()
    handle.press("ArrowRight")
    expect(readout).to_contain_text("step k = 1", timeout=30_000)  # the kernel drew step 1
    page.wait_for_timeout(300)  # the new image's bytes reach the <img>
    after = view.screenshot()
    shoot("explorer at step 1", of=explorer)
    assert pixel_difference(before, after) > 0.001, "moving the step slider must change the picture"


def test_a_started_run_draws_live_and_its_stop_button_ends_every_learner(page, lab, shoot):
    run_dir = Path(lab.root) / "dashboard-run"
    open_notebook(page, lab, [
        "import galakit\nfrom galakit.views import Dashboard\n"
        f"cfg = galakit.Config(env_id='CartPole-v1', algo='gala', num_learners=2, num_envs=4, num_steps=5,\n"
        f"                     total_timesteps=10**8, log_interval=5, diag_interval=10, progress=False,\n"
        f"                     tensorboard=False, checkpoint_interval=0, run_dir={str(run_dir)!r})\n"
        "dash = Dashboard(min_interval=0.5)\n"
        "run = galakit.start(cfg, observers=[dash])",
        "print(*run.pids)",
    ])
    output = run_cell(page, 0, timeout=120)  # start returns at once: the kernel is free for the button
    dashboard = output.locator(".galakit-dashboard")
    view, status = dashboard.locator(".galakit-dashboard-view"), dashboard.locator(".galakit-dashboard-status")
    expect(status).to_contain_text("running", timeout=60_000)
    run_cell(page, 1)
    pids = [int(p) for p in cell_text(page, 1).split()]
    assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)

    first_step = wait_for_step(status, above=0, timeout=120)  # the learners start (spawn, imports) and report
    first = view.screenshot()
    later_step = wait_for_step(status, above=first_step + 2000, timeout=60)
    page.wait_for_timeout(1500)  # the image drawn with those rows
    later = view.screenshot()
    for_docs(shoot("dashboard running", of=dashboard), "dashboard.png")
    assert later_step > first_step, (first_step, later_step)
    assert pixel_difference(first, later) > 0.001, "the curves must grow while the run goes"

    dashboard.locator(".galakit-dashboard-stop").click()  # the kernel is idle: the click reaches it
    started = time.monotonic()
    while any(_alive(p) for p in pids) and time.monotonic() - started < 10:
        time.sleep(0.1)
    gone_after = time.monotonic() - started
    assert not [p for p in pids if _alive(p)], f"learners still running {gone_after:.1f} s after Stop"
    expect(status).to_contain_text("stopped", timeout=10_000)
    shoot("dashboard stopped", of=dashboard)


def test_a_replay_plays_inline_with_its_score(page, lab, shoot):
    run_dir = Path(lab.root) / "replay-run"
    open_notebook(page, lab, [
        "import galakit\nfrom galakit.views import replay\n"
        f"cfg = galakit.Config(env_id='ALE/Breakout-v5', num_envs=2, num_steps=5, total_timesteps=20,\n"
        f"                     progress=False, tensorboard=False, run_dir={str(run_dir)!r})\n"
        "metrics = galakit.train(cfg)\n"
        "replay(metrics.checkpoint, max_frames=400)",
    ])
    output = run_cell(page, 0, timeout=240)
    player = output.locator("[id^=galakit-replay]")
    expect(player).to_be_visible(timeout=30_000)
    expect(player).to_contain_text("raw score")
    first = player.locator("img").screenshot()
    page.wait_for_timeout(1500)  # it plays by itself
    assert pixel_difference(first, player.locator("img").screenshot()) > 0, "the replay must play"
    for_docs(shoot("replay", of=player), "replay.png")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
