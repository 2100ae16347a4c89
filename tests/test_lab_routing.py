"""Routing that asks, and calibration you can see, in JupyterLab in a real browser (Debian's
Chromium through Playwright, as `test_lab_ui.py`): when PLMS's lane router is unsure of a new
task's brief, the tasks panel shows its two lanes with their reasons as buttons and the pick
creates the task in that lane, recorded in the routing book as a labelled example (`asked`); the
tasks panel and the palette open the planner's calibration (`GET /plms/calibration`)."""

from __future__ import annotations

import re

import pytest

from direng_kernel.plms.corrections import RoutingBook
from lab_browser import chromium_browser
from test_lab_ui import lab_page, lab_server, open_side_panel, run_palette

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

UNSURE = "rework the module layout"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with lab_server(tmp_path_factory.mktemp("lab-routing"), "--DirEngExtension.watch=False") as srv:
        yield srv


@pytest.fixture(scope="module")
def chromium():
    with chromium_browser() as browser:
        yield browser


def tasks_titled(lab, title: str) -> list[dict]:
    status, reply = lab.get("tasks")
    assert status == 200, reply
    return [t for t in reply["tasks"] if t["title"] == title]


def test_an_unsure_routing_asks_with_the_two_lanes_and_the_pick_is_a_labelled_example(lab, chromium):
    for lane in ("graph-ops", "code-impl"):  # the user has put this brief in both lanes: the router is unsure
        status, task = lab.post("tasks", {"title": UNSURE, "lane": lane})
        assert status == 201, task
    status, decision = lab.post("plms/route", {"title": UNSURE})
    assert status == 200 and decision["uncertain"], decision
    before = {t["id"] for t in tasks_titled(lab, UNSURE)}

    with lab_page(lab, chromium) as page:
        panel = open_side_panel(page, "direng-tasks")
        panel.locator(".direng-task-title").fill(UNSURE)
        panel.locator(".direng-task-create").click()
        choice = panel.locator(".direng-lane-choice")
        choice.wait_for(state="visible")
        assert "unsure which lane fits" in choice.inner_text()
        assert panel.locator(".direng-task-create").is_disabled()  # one question at a time
        picks = choice.locator("button.direng-lane-pick")
        assert picks.evaluate_all("els => els.map(e => e.dataset.lane)") == [c["lane"] for c in decision["candidates"]]
        for c in decision["candidates"]:
            shown = choice.locator(f".direng-lane-option[data-lane='{c['lane']}'] .direng-lane-reasons").inner_text()
            assert all(reason in shown for reason in c["reasons"]) and "which you put in" in shown
        assert tasks_titled(lab, UNSURE) == [t for t in tasks_titled(lab, UNSURE) if t["id"] in before]  # nothing yet

        second = decision["candidates"][1]["lane"]
        choice.locator(f"button.direng-lane-pick[data-lane='{second}']").click()
        choice.wait_for(state="hidden")
        selected = panel.locator("tr.direng-task.jp-mod-selected")
        selected.wait_for()
        assert selected.locator("td").nth(1).inner_text() == second
        [created] = [t for t in tasks_titled(lab, UNSURE) if t["id"] not in before]
        assert created["lane"] == second and selected.get_attribute("data-task-id") == created["id"]

        # a brief the router is sure of is created at once, in the router's lane
        panel.locator(".direng-task-title").fill("find dead code in the shop package")
        panel.locator(".direng-task-create").click()
        sure = panel.locator("tr.direng-task", has_text=re.compile("^find dead code in the shop package"))
        sure.wait_for()
        assert sure.locator("td").nth(1).inner_text() == "graph-ops" and choice.is_hidden()

    records = RoutingBook.for_store(lab.root / ".direng").history().records
    asked = next(r for r in records if r.task_id == created["id"])
    assert (asked.source, asked.routed, asked.chosen) == ("asked", decision["lane"], second)
    assert records[-1].source == "routed" and records[-1].chosen == "graph-ops"


def test_the_tasks_panel_and_the_palette_open_the_planner_calibration(lab, chromium):
    with lab_page(lab, chromium) as page:
        panel = open_side_panel(page, "direng-tasks")
        panel.locator(".direng-open-calibration").click()
        view = page.locator(".direng-calibration:visible")
        plot = view.locator("img.direng-calibration-plot")
        plot.wait_for()
        page.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=plot.element_handle())
        lanes = view.locator(".direng-calibration-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.lane)")
        assert {"code-impl", "graph-ops", "narrative"} <= set(lanes)
        status, cal = lab.get("plms/calibration", plot="0")
        assert status == 200 and [row["lane"] for row in cal["lanes"]] == lanes

        page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Planner Calibration").locator(
            ".lm-TabBar-tabCloseIcon").click()
        view.wait_for(state="detached")
        run_palette(page, "DirEng: Show Planner Calibration")
        page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current", has_text="Planner Calibration").wait_for()
        page.locator(".direng-calibration:visible img.direng-calibration-plot").wait_for()
