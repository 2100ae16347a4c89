"""`%direng delegate` asks which lane when PLMS's lane classifier is unsure, in a real IPython
kernel (jupyter_client, python3 kernelspec, in-process transport, a fresh git copy of the sample
repository): the two lanes are shown with their reasons as buttons, a click creates the task in
the picked lane, and the routing book records the pick as a labelled example (`asked`)."""

from __future__ import annotations

import json

import pytest

from conftest import make_repo
from direng_kernel.models import LANE_IDS
from direng_kernel.plms.corrections import RoutingBook
from direng_kernel.plms.routing import Router
from test_e2e_magics import Kernel, markdown

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

BRIEF = "tidy the module layout"


@pytest.fixture()
def kernel_repo(tmp_path):
    repo = make_repo(tmp_path / "repo")
    book = RoutingBook.for_store(repo / ".direng")
    for lane in ("graph-ops", "code-impl"):  # the user has put this brief in both lanes before
        book.record("task_new", BRIEF, "narrative", lane, LANE_IDS)
    k = Kernel(repo)
    try:
        assert k.execute("%load_ext direng_kernel")["status"] == "ok"
        yield k, repo, book
    finally:
        k.close()


def test_delegate_shows_the_two_lanes_and_the_pick_is_the_lane(kernel_repo):
    kernel, repo, book = kernel_repo
    decision = Router.from_book(book, LANE_IDS).decide(BRIEF)
    assert decision.uncertain
    cell = kernel.execute(f'%direng delegate "{BRIEF}"')
    assert cell["status"] == "ok" and cell["error"] is None, cell
    text = markdown(cell)
    assert "unsure which lane fits" in text
    for c in decision.candidates:
        assert f"{c.lane}: p=" in text
    assert any("application/vnd.jupyter.widget-view+json" in d for d in cell["displays"])  # the buttons
    before = len(book.history().records)

    second = decision.candidates[1].lane
    probe = ("_d = get_ipython().magics_manager.registry['DirEngMagics'].last_delegation\n"
             "assert _d.task is None\n"
             "[_b for _b in _d.choice_buttons if _b.description == %r][0].click()\n"
             "import json; print(json.dumps({'id': _d.task.id, 'lane': _d.task.lane, 'state': _d.task.state.value,"
             " 'disabled': [b.disabled for b in _d.choice_buttons]}))" % second)
    clicked = kernel.execute(probe)
    assert clicked["status"] == "ok" and clicked["error"] is None, clicked
    task = json.loads(clicked["stdout"].strip().splitlines()[-1])
    assert task["lane"] == second and task["state"] == "estimated" and all(task["disabled"])
    records = book.history().records
    assert len(records) == before + 1
    assert (records[-1].source, records[-1].chosen, records[-1].task_id) == ("asked", second, task["id"])


def test_delegate_asks_nothing_when_the_router_is_sure(kernel_repo):
    kernel, repo, book = kernel_repo
    assert not Router.from_book(book, LANE_IDS).decide("find dead code in the shop package").uncertain
    cell = kernel.execute('%direng delegate "find dead code in the shop package"')
    assert cell["status"] == "ok" and cell["error"] is None, cell
    assert "unsure" not in markdown(cell) and "lane **graph-ops**" in markdown(cell)
    assert book.history().records[-1].source == "routed"


def test_direng_plms_draws_the_calibration_inline(tmp_path):
    """Finished runs in the task store (made through the store's own API); `%direng plms` shows the
    figure as an image and returns the calibration table."""
    from direng_kernel.models import TaskState
    from direng_kernel.pex.store import TaskStore

    repo = make_repo(tmp_path / "repo")
    store = TaskStore.for_store(repo / ".direng")
    for i in range(8):
        task, _ = store.create_task(title=f"t{i}", brief="b", lane="graph-ops", parameters={})
        store.transition(task.id, TaskState.estimated)
        store.transition(task.id, TaskState.approved)
        store.enqueue(task.id)
        run = store.claim("w1", {"graph-ops": 1})
        store.finish(run["id"], TaskState.succeeded)
    k = Kernel(repo)
    try:
        assert k.execute("%load_ext direng_kernel")["status"] == "ok"
        cell = k.execute("_t = %direng plms\nprint(int(_t.set_index('lane').loc['graph-ops', 'n']))")
        assert cell["status"] == "ok" and cell["error"] is None, cell
        assert any("image/png" in d for d in cell["displays"])
        assert cell["stdout"].strip().splitlines()[-1] == "8"  # every finished run of the lane
    finally:
        k.close()
