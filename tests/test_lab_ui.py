"""The workbench in JupyterLab, in a real browser: a real `jupyter lab --allow-root` with the
built extension over a sample repository, driven by Debian's Chromium through Playwright.

Screenshots of what the user sees go to docs/images/ (the README shows them).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from fake_providers import FakeModelServer, FakeReply, route_chat_to
from lab_browser import browser_page, chromium_browser, require_chromium

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


def lab_settings(work: Path, **direng: object) -> None:
    """User settings for a test lab: no "get notified about Jupyter news?" toast over the panels
    (this network is closed anyway), and the extension's own settings."""
    folder = work / "lab-settings"
    news = folder / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false"}))
    if direng:
        ours = folder / "direng-workbench" / "plugin.jupyterlab-settings"
        ours.parent.mkdir(parents=True)
        ours.write_text(json.dumps(direng))


@contextmanager
def lab_server(work: Path, *extra: str, **settings):
    require_chromium()
    from test_server import running_server

    lab_settings(work, **settings)
    with running_server(work, "--ContentsManager.allow_hidden=True", *extra, app="jupyterlab") as srv:
        yield srv


@pytest.fixture(scope="module")
def chromium():
    with chromium_browser() as browser:
        yield browser


@contextmanager
def lab_page(lab, browser, wait_for: str = ".direng-status"):
    with browser_page(browser) as page:
        page.goto(f"{lab.url}/lab?token={lab.token}")
        page.wait_for_selector("#jp-main-dock-panel", timeout=90_000)
        page.wait_for_selector(wait_for, timeout=60_000)
        yield page


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    # no refresh daemon: the index stays behind after a commit until the status item is clicked;
    # event streams end after 1 s, so the tasks panel must resume them to see a whole run
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAKE_OPENAI_KEY", "fake-key-for-the-lab")  # for route_chat_to
        with lab_server(tmp_path_factory.mktemp("lab"), "--DirEngExtension.watch=False",
                        "--DirEngExtension.stream_max_seconds=1") as srv:
            yield srv


@pytest.fixture(scope="module")
def page(lab, chromium):
    with lab_page(lab, chromium) as page:
        yield page


def shot(page, name: str) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / f"{name}.png"))


def open_side_panel(page, widget_id: str):
    tab = page.locator(f'li[data-id="{widget_id}"]')
    tab.wait_for()
    if "lm-mod-current" not in (tab.get_attribute("class") or ""):
        tab.click()
    panel = page.locator(f"#{widget_id}")
    panel.wait_for(state="visible")
    return panel


def test_ask_in_the_panel_and_open_a_citation_at_its_line(lab, page):
    panel = open_side_panel(page, "direng-chat")
    panel.locator(".direng-chat-hint").wait_for()  # the conversation of the current widget is shown
    box = panel.locator("textarea")
    box.fill("what calls charge_card?")
    box.press("Enter")
    answer = panel.locator(".direng-answer").last
    try:
        answer.wait_for()
    except Exception:
        shot(page, "debug-chat")
        raise
    citation = panel.locator("a.direng-citation").first
    citation.wait_for()
    target = citation.inner_text()
    path, lines = target.split(":", 1)
    start = int(lines.split("-")[0])
    shot(page, "chat-panel")
    citation.click()
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
    tab.wait_for()
    assert Path(path).name in tab.inner_text()
    # the cursor is on the cited line: JupyterLab's own line/column item says so
    position = page.get_by_text(re.compile(r"^Ln \d+, Col \d+$"))
    position.wait_for()
    deadline = time.monotonic() + 20
    while not position.inner_text().startswith(f"Ln {start},") and time.monotonic() < deadline:
        time.sleep(0.2)
    shot(page, "citation-opened")
    assert position.inner_text().startswith(f"Ln {start},"), position.inner_text()


def test_work_asked_in_the_panel_is_proposed_approved_run_and_relayed(lab, page):
    panel = open_side_panel(page, "direng-chat")
    box = panel.locator("textarea")
    box.fill("document the shop package")
    box.press("Enter")
    card = panel.locator(".direng-proposed-task").last
    card.wait_for(timeout=60_000)
    assert card.get_attribute("data-state") == "estimated" and "narrative" in card.inner_text()
    task_id = card.get_attribute("data-task-id")
    assert lab.get(f"tasks/{task_id}")[1]["state"] == "estimated"  # nothing runs before Approve
    card.locator(".direng-proposed-approve").click()
    panel.locator(f".direng-proposed-task[data-task-id='{task_id}'][data-state='succeeded']").wait_for(timeout=240_000)
    relay = panel.locator(".direng-answer", has_text=task_id).last  # DirEng relays the result
    relay.locator("a", has_text="output.ipynb").wait_for(timeout=60_000)
    assert "succeeded" in relay.inner_text() and "docs_coverage" in relay.inner_text()
    shot(page, "chat-delegation")


def test_a_generative_answer_streams_into_the_panel(lab, page):
    """With the chat lane on a model that streams (the FAKE OpenAI-protocol server), the answer
    shows while it is being written, then is replaced by the final answer with its meta line."""
    text = ("Cards are charged by `charge_card` (shop/payment.py:1-5) once the basket is priced. "
            + "The charge happens once per order, after the total is known. " * 4)
    with FakeModelServer() as fake, route_chat_to(lab, fake):
        fake.reply(FakeReply(content=text, piece_chars=8, piece_delay_s=0.05, output_tokens=70))
        panel = open_side_panel(page, "direng-chat")
        before = panel.locator(".direng-answer-block").count()
        box = panel.locator("textarea")
        box.fill("how does the shop charge a customer's credit card?")
        box.press("Enter")
        live = panel.locator(".direng-streaming")
        live.wait_for(timeout=30_000)
        partial = live.inner_text()
        shot(page, "chat-streaming")
        block = panel.locator(".direng-answer-block").nth(before)
        block.wait_for(timeout=30_000)
        final = block.locator(".direng-answer").inner_text()
        assert fake.requests[-1].body["stream"] is True
    assert partial.strip() and len(partial) < len(final) and final.startswith(partial.strip()[:20]), (partial, final)
    assert "fake-openai" in block.locator(".direng-answer-meta").inner_text()
    assert panel.locator(".direng-streaming").count() == 0


def contents(lab, path: str) -> dict:
    import urllib.request

    req = urllib.request.Request(f"{lab.url}/api/contents/{path}?content=1",
                                 headers={"Authorization": f"token {lab.token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def write_notebook(path: Path, *cells) -> None:
    """A python3 notebook of `cells` (nbformat cell objects) at `path`."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def run_menu(page, menu: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{item}$")).click()


def test_a_graph_cell_is_drawn_and_saved_small(lab, page):
    import nbformat

    write_notebook(lab.root / "graph.ipynb", nbformat.v4.new_code_cell("%load_ext direng_kernel"),
                   nbformat.v4.new_code_cell("%direng graph charge_card --depth 2"))
    page.goto(f"{lab.url}/lab/tree/graph.ipynb?token={lab.token}")
    page.locator(".jp-Notebook").wait_for(timeout=90_000)
    page.get_by_text(re.compile(r"^Python 3 \(ipykernel\) \| Idle$")).wait_for(timeout=90_000)
    run_menu(page, "Run", "Run All Cells")
    count = page.locator(".direng-graph-count")
    count.wait_for(timeout=120_000)
    nodes = int(re.search(r"(\d+)", count.inner_text()).group(1))
    assert nodes >= 5, count.inner_text()
    page.locator(".direng-graph-canvas canvas").first.wait_for()
    shot(page, "graph-cell")
    page.keyboard.press("Control+S")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        saved = contents(lab, "graph.ipynb")["content"]
        outputs = saved["cells"][1].get("outputs") or []
        if outputs:
            break
        time.sleep(0.5)
    displays = [o for o in outputs if o.get("output_type") == "display_data"]
    assert len(displays) == 1, [(o.get("output_type"), o.get("text", "")[:300]) for o in outputs]
    (output,) = displays
    assert {"application/vnd.direng.graph+json", "image/svg+xml", "text/plain"} <= set(output["data"])
    assert not any("html" in mime for mime in output["data"])  # no inlined script library
    size = len(json.dumps(output).encode())
    assert size <= 100_000, size
    assert len(output["data"]["application/vnd.direng.graph+json"]["nodes"]) == nodes


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                   check=True, capture_output=True)


def wait_text(locator, pattern: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = locator.inner_text()
        if re.search(pattern, text):
            return text
        time.sleep(0.25)
    raise AssertionError(f"{pattern!r} never appeared; last: {text!r}")


def test_the_status_item_goes_behind_after_a_commit_and_a_click_refreshes(lab, page):
    status = page.locator(".direng-status")
    wait_text(status, r"fresh · \d+ symbols")
    (lab.root / "shop" / "refunds.py").write_text("def refund(txn: str) -> str:\n    return txn\n")
    git(lab.root, "add", "-A")
    git(lab.root, "commit", "-qm", "refunds")
    wait_text(status, r"1 commits? behind")
    shot(page, "status-behind")
    status.click()
    text = wait_text(status, r"fresh · \d+ symbols", timeout=60)
    assert int(re.search(r"(\d+) symbols", text).group(1)) > 0


def test_a_task_from_the_tasks_panel_runs_opens_its_notebook_and_replays(lab, page):
    panel = open_side_panel(page, "direng-tasks")
    panel.locator(".direng-task-title").fill("Document the shop package")
    panel.locator(".direng-task-brief").fill("write the API reference of the shop package")
    panel.locator(".direng-task-lane").select_option("narrative")
    panel.locator(".direng-task-create").click()
    row = panel.locator("tr.direng-task", has_text="Document the shop package")
    row.wait_for()
    row.locator(".direng-task-estimate").click()
    panel.locator("tr.direng-task[data-state='estimated']").wait_for()
    row.locator(".direng-task-approve").click()
    ended = panel.locator(", ".join(f"tr.direng-task[data-state='{s}']" for s in ("succeeded", "failed", "cancelled")))
    ended.wait_for(timeout=240_000)
    assert ended.get_attribute("data-state") == "succeeded", panel.locator(".direng-task-detail").inner_text()
    panel.locator(".direng-task-final", has_text="succeeded").wait_for(timeout=30_000)
    assert panel.locator(".direng-event-message").count() > 3  # the live log streamed the run
    # every event once, in order, although each stream ended after 1 s and had to be resumed
    detail = panel.locator(".direng-task-detail")
    task_id = detail.get_attribute("data-task-id")
    status, reply = lab.get(f"tasks/{task_id}/events")
    shown = [int(s) for s in panel.locator(".direng-event").evaluate_all("els => els.map(e => e.dataset.seq)")]
    assert status == 200 and shown == [e["seq"] for e in reply["events"]]
    assert int(detail.get_attribute("data-streams")) >= 2, "the run outlasted a stream: the panel resumed it"
    shot(page, "tasks-panel")
    panel.locator(".direng-task-detail a.direng-open-notebook").click()
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current", has_text="output.ipynb").wait_for()
    open_side_panel(page, "direng-tasks")
    detail = panel.locator(".direng-task-detail")
    detail.locator(".direng-replay").click()
    result = detail.locator(".direng-replay-result[data-match='true']")
    result.wait_for(timeout=240_000)
    assert "matches" in result.inner_text()


# -- bad input -------------------------------------------------------------------------------------

def test_errors_show_inline_and_a_long_answer_is_cut_with_show_more(tmp_path, chromium):
    with lab_server(tmp_path / "lab", "--DirEngExtension.watch=False", answerCutoff=1000) as lab, \
            lab_page(lab, chromium) as page:
        panel = open_side_panel(page, "direng-chat")
        panel.locator(".direng-chat-hint").wait_for()
        box = panel.locator("textarea")
        box.fill("/graph charge_crad")
        box.press("Enter")
        answer = panel.locator(".direng-answer").last
        answer.wait_for()
        assert "charge_card" in answer.inner_text()  # DirEng's own answer names the close match
        panel.locator(".direng-open-graph").last.click()  # the graph view asks the API itself: a 404
        error = page.locator(".direng-error", has_text="unknown_symbol").first
        error.wait_for()
        assert "404" in error.inner_text() and "charge_card" in error.inner_text()
        box.fill("how is a credit card charged at checkout?")
        box.press("Enter")
        more = panel.locator(".direng-show-more").last
        more.wait_for()
        cut = len(panel.locator(".direng-answer").last.inner_text())
        more.click()
        page.wait_for_function("() => !document.querySelector('#direng-chat .direng-show-more')")
        assert len(panel.locator(".direng-answer").last.inner_text()) > cut
        shot(page, "chat-errors")


@contextmanager
def lab_without_direng(work: Path):
    """JupyterLab with the extension's frontend but the DirEng server extension disabled."""
    require_chromium()
    from test_server import Server

    from conftest import make_repo

    lab_settings(work)
    srv = Server(make_repo(work / "repo"), work, '--ServerApp.jpserver_extensions={"direng_kernel": False}',
                 app="jupyterlab")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if srv.request("GET", "status", base=srv.url + "/api", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.25)
        yield srv
    finally:
        srv.stop()


def test_without_the_server_extension_the_panel_says_so_in_one_line(tmp_path, chromium):
    with lab_without_direng(tmp_path / "lab") as lab, \
            lab_page(lab, chromium, wait_for="li[data-id='direng-chat']") as page:
        panel = open_side_panel(page, "direng-chat")
        banner = panel.locator(".direng-unavailable")
        banner.wait_for()
        text = banner.inner_text().strip()
        assert text and "\n" not in text and "404" in text, text


def test_a_notebook_cell_citation_opens_the_notebook_at_that_cell(lab, page):
    import nbformat

    write_notebook(lab.root / "gadgets.ipynb", nbformat.v4.new_markdown_cell("# Gadgets"),
                   nbformat.v4.new_code_cell("import math\n\n\ndef polish_gadgets(n):\n    return math.sqrt(n)"))
    status, _ = lab.post("index/refresh")
    assert status == 200
    panel = open_side_panel(page, "direng-chat")
    panel.locator(".direng-new-conversation, button:has-text('New conversation')").first.click()
    box = panel.locator("textarea")
    box.fill("where is polish_gadgets defined?")
    box.press("Enter")
    citation = panel.locator("a.direng-citation", has_text="gadgets.ipynb:cell 1:").first
    citation.wait_for()
    assert re.fullmatch(r"gadgets\.ipynb:cell 1:4-5", citation.inner_text()), citation.inner_text()
    citation.click()
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current", has_text="gadgets.ipynb").wait_for()
    wait_text(page.get_by_text(re.compile(r"^Cell \d+/\d+$")), r"^Cell 2/2$")  # the second cell is active
    wait_text(page.get_by_text(re.compile(r"^Ln \d+, Col \d+$")), r"^Ln 4,")  # on the definition's line
    shot(page, "notebook-citation")


def test_the_panel_sends_where_the_user_is_with_each_message(lab, page):
    """With a notebook open, a message carries its path and the active cell (never kernel values)."""
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="gadgets.ipynb").click()
    panel = open_side_panel(page, "direng-chat")
    box = panel.locator("textarea")
    box.fill("what does this cell compute?")
    with page.expect_request(lambda r: r.method == "POST" and re.search(r"/direng/api/chat(\?|$)", r.url)) as sent:
        box.press("Enter")
    body = json.loads(sent.value.post_data)
    assert body["context"]["path"] == "gadgets.ipynb"
    assert body["context"]["cell"] == 1 and "def polish_gadgets" in body["context"]["cell_source"]
    assert "namespace" not in body["context"]
    panel.locator(".direng-answer").last.wait_for()
