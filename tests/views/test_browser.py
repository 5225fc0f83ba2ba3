"""The real-browser harness (browser.py) itself: widgets in a real JupyterLab answer the mouse and the keyboard
through the kernel, cells report their errors, and the server leaves no process behind."""

import sys

import psutil
import pytest
from browser import cell_text, open_notebook, pixel_difference, run_cell, start_lab
from playwright.sync_api import expect

pytestmark = pytest.mark.processes  # a JupyterLab server, its kernels and Chromium

SLIDER = """\
import ipywidgets as widgets
slider = widgets.IntSlider(value=2, min=0, max=10, description="steps")
label = widgets.Label(f"value: {slider.value}")
label.add_class("slider-value")  # a stable hook for the test: the slider has a (hidden) .widget-label of its own
slider.observe(lambda change: setattr(label, "value", f"value: {change['new']}"), names="value")
widgets.VBox([slider, label])"""

BUTTON = """\
import ipywidgets as widgets
clicks = 0
label = widgets.Label("clicks: 0")
label.add_class("clicks")
def count(_):
    global clicks
    clicks += 1
    label.value = f"clicks: {clicks}"
button = widgets.Button(description="Stop")
button.on_click(count)
widgets.HBox([button, label])"""


def test_kernel_runs_this_venvs_python_with_the_test_environment(page, lab):
    open_notebook(page, lab, ["import os, sys\nprint(sys.prefix, os.environ.get('GALAKIT_BROWSER_TEST'))"])
    run_cell(page, 0)
    assert cell_text(page, 0).split() == [sys.prefix, "1"]


def test_moving_the_slider_in_the_browser_updates_the_label_through_the_kernel(page, lab, shoot):
    open_notebook(page, lab, [SLIDER])
    output = run_cell(page, 0)
    handle, value = output.locator(".noUi-handle"), output.locator(".slider-value")
    expect(value).to_have_text("value: 2")
    before = output.screenshot()
    shoot("slider rendered")

    handle.focus()
    for _ in range(3):
        handle.press("ArrowRight")
    expect(value).to_have_text("value: 5")  # the label is set by the kernel's observer, not by the page
    shoot("three steps right")
    assert pixel_difference(before, before) == 0
    assert pixel_difference(before, output.screenshot()) > 0

    track = output.locator(".noUi-target").bounding_box()
    start = handle.bounding_box()
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(track["x"] + track["width"] + 50, start["y"] + start["height"] / 2, steps=5)
    page.mouse.up()
    expect(value).to_have_text("value: 10")
    shoot("dragged to the end")


def test_clicking_a_button_runs_its_handler_in_the_idle_kernel(page, lab, shoot):
    # a click is a comm message, which a kernel busy running a cell reads only when that cell ends
    open_notebook(page, lab, [BUTTON])
    output = run_cell(page, 0)
    button, clicks = output.get_by_role("button", name="Stop"), output.locator(".clicks")
    button.click()
    expect(clicks).to_have_text("clicks: 1")
    button.click()
    expect(clicks).to_have_text("clicks: 2")
    shoot("clicked twice")


def test_run_cell_fails_with_the_error_of_the_cell(page, lab):
    open_notebook(page, lab, ["print('before')\n1 / 0"])
    with pytest.raises(AssertionError, match=r"cell 0 raised ZeroDivisionError: division by zero"):
        run_cell(page, 0)


def test_lab_shuts_its_kernels_down_and_leaves_no_process_behind(tmp_path):
    with start_lab(tmp_path) as server:
        server.api("POST", "/api/kernels", {"name": "python3"})
        started = psutil.Process(server.process.pid).children(recursive=True)
        assert any("ipykernel" in " ".join(p.cmdline()) for p in started)
    assert not [p for p in [server.process.pid, *(c.pid for c in started)] if psutil.pid_exists(p)
                and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
