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


def new_task_row(panel, title: str, lane: str, brief: str = ""):
    """Create a task with the tasks panel's form; its row, once listed."""
    panel.locator(".direng-task-title").fill(title)
    if brief:
        panel.locator(".direng-task-brief").fill(brief)
    panel.locator(".direng-task-lane").select_option(lane)
    panel.locator(".direng-task-create").click()
    # a case-sensitive prefix: other tests' tasks are listed too ("document the shop package" from chat)
    row = panel.locator("tr.direng-task", has_text=re.compile("^" + re.escape(title)))
    row.wait_for()
    return row


def ask_panel(page, message: str):
    """Send `message` from the DirEng panel's input; the panel."""
    panel = open_side_panel(page, "direng-chat")
    box = panel.locator("textarea")
    box.fill(message)
    box.press("Enter")
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
    panel = ask_panel(page, "document the shop package")
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


def test_an_escalated_task_shows_its_evidence_and_the_choices_in_the_tasks_panel(lab, page):
    """A p90 over the lane's threshold (set through POST /policy) escalates at Estimate; the panel
    shows why, and Change lane answers it: the task is estimated again on the other lane."""
    status, reply = lab.get("policy")
    original = reply["policy"]
    changed = json.loads(json.dumps(original))
    changed["lanes"]["Graph-Ops"] = {**changed["lanes"].get("Graph-Ops", {"primary": {"provider": "local",
                                                                                     "model": "retrieval"}}),
                                     "escalate_p90_s": 1}
    assert lab.post("policy", {"policy": changed, "apply": True})[1]["applied"] is True
    try:
        panel = open_side_panel(page, "direng-tasks")
        row = new_task_row(panel, "Find the dead code", "graph-ops")
        row.locator(".direng-task-estimate").click()
        box = panel.locator(".direng-escalation[data-kind='estimate']")
        box.wait_for(timeout=60_000)
        assert "threshold" in box.inner_text() and "escalate_p90_s" in box.inner_text()
        assert panel.locator(".direng-escalation-raise_budget").count() == 1
        shot(page, "tasks-escalation")
        box.locator(".direng-escalation-lane").select_option("narrative")
        box.locator(".direng-escalation-change_lane").click()
        panel.locator(f"tr.direng-task[data-task-id='{row.get_attribute('data-task-id')}'][data-state='estimated']"
                      ).wait_for(timeout=30_000)
        task_id = panel.locator(".direng-task-detail").get_attribute("data-task-id")
        task = lab.get(f"tasks/{task_id}")[1]
        assert (task["state"], task["lane"]) == ("estimated", "narrative")
    finally:
        assert lab.post("policy", {"policy": original, "apply": True})[1]["applied"] is True


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


def contents(lab, path: str, attempts: int = 20) -> dict:
    """The contents API's model of `path`. A read that races JupyterLab's save gets a 400
    ("Unreadable Notebook"): jupyter_server writes the file in place, behind a backup copy, so
    a reader can see it half-written; such a read is tried again."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{lab.url}/api/contents/{path}?content=1",
                                 headers={"Authorization": f"token {lab.token}"})
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code != 400 or attempt == attempts - 1:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")


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
    # drawn where the kernel laid it out (the output's positions), no layout in the browser
    assert page.locator(".direng-graph").first.get_attribute("data-layout") == "kernel"
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
    row = new_task_row(panel, "Document the shop package", "narrative", "write the API reference of the shop package")
    this = f"tr.direng-task[data-task-id='{row.get_attribute('data-task-id')}']"  # other tests' tasks are listed too
    row.locator(".direng-task-estimate").click()
    panel.locator(f"{this}[data-state='estimated']").wait_for()
    why = lab.get(f"tasks/{row.get_attribute('data-task-id')}")[1]["estimate"]["explanation"]
    assert why.startswith("p90 ")  # PLMS says what drove it; the detail and the row's tooltip show it
    panel.locator(".direng-task-estimate-why", has_text=why).wait_for(timeout=30_000)
    assert why in panel.locator(f"{this} td.direng-task-est-cell").get_attribute("title")
    row.locator(".direng-task-approve").click()
    ended = panel.locator(", ".join(f"{this}[data-state='{s}']" for s in ("succeeded", "failed", "cancelled")))
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
    notebook_tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current", has_text="output.ipynb")
    notebook_tab.wait_for()
    # opened as written, not changed by opening it: not dirty once its kernel is up
    page.get_by_text(re.compile(r"^Python 3 \(ipykernel\) \| Idle$")).wait_for(timeout=90_000)
    page.wait_for_timeout(1000)
    assert "jp-mod-dirty" not in (notebook_tab.get_attribute("class") or ""), "output.ipynb opened unsaved"
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


# -- the palette commands and an answer's code-block actions ---------------------------------------

def run_palette(page, label: str) -> None:
    """Run `label` from the command palette (Ctrl+Shift+C), as a user would."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.keyboard.press("Control+Shift+C")
    box = page.locator(".lm-CommandPalette-input:visible")
    try:
        box.wait_for(timeout=10_000)
    except PlaywrightTimeout:  # a key press lost on a loaded machine: the View menu opens it too
        run_menu(page, "View", "Activate Command Palette")
        box.wait_for()
    box.fill(label)
    item = page.locator(".lm-CommandPalette-item:visible", has_text=label).first
    item.wait_for()
    assert "lm-mod-disabled" not in (item.get_attribute("class") or ""), f"{label!r} is disabled"
    item.click()


def open_path(page, path: str):
    """Open `path` through File → Open from Path…, and give back its main-area tab."""
    run_menu(page, "File", "Open from Path…")
    dialog = page.locator(".jp-Dialog")
    dialog.locator("input").fill(path)
    dialog.locator(".jp-mod-accept").click()
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current", has_text=Path(path).name)
    tab.wait_for()
    return tab


def file_editor(page):
    """The CodeMirror of the file editor that is shown, focused."""
    editor = page.locator(".jp-FileEditor:visible .cm-content")
    editor.wait_for()
    editor.click()
    return editor


def cursor_at(page, line: int, from_end: int) -> None:
    """The cursor on `line` (1-based), `from_end` characters before its end, by keyboard."""
    page.keyboard.press("Control+Home")
    for _ in range(line - 1):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("End")
    for _ in range(from_end):
        page.keyboard.press("ArrowLeft")
    wait_text(page.get_by_text(re.compile(r"^Ln \d+, Col \d+$")), rf"^Ln {line},")


def mark_answers(page) -> None:
    """Mark the answers shown so far (in every conversation), so that `new_answer` finds the next."""
    page.evaluate("() => document.querySelectorAll('#direng-chat .direng-answer').forEach(a => a.dataset.seen = '1')")


def new_answer(page):
    """The first answer that came after `mark_answers`, once it is there."""
    answer = page.locator("#direng-chat .direng-answer:not([data-seen])").first
    answer.wait_for(timeout=60_000)
    return answer


def test_the_palette_asks_about_the_selection(lab, page):
    open_path(page, "shop/payment.py")
    file_editor(page)
    panel = page.locator("#direng-chat")
    mark_answers(page)
    cursor_at(page, 17, 0)  # `def checkout(…):` to the end of its body
    page.keyboard.press("Home")
    for _ in range(3):
        page.keyboard.press("Shift+ArrowDown")
    page.keyboard.press("Shift+End")
    run_palette(page, "Ask About the Selection")
    panel.wait_for(state="visible")
    asked = panel.locator(".direng-user:visible").last
    wait_text(asked, r"What does this code from shop/payment\.py \(line 17\) do\?")
    assert "def checkout(cart: Cart, card_number: str) -> str:" in asked.inner_text()
    assert "return charge_card(card_number, amount)" in asked.inner_text()
    assert "def charge_card" not in asked.inner_text()  # the selection, not the whole file
    answer = new_answer(page)
    assert "checkout" in answer.inner_text(), answer.inner_text()
    block = answer.locator("xpath=..")  # the answer, its sources and its meta line
    cited = [a.inner_text() for a in block.locator("a.direng-citation").all()]
    assert "shop/payment.py:17-20" in cited, cited  # where the selected code is defined
    shot(page, "palette-ask-selection")


def test_the_palette_explains_and_graphs_the_symbol_under_the_cursor(lab, page):
    open_path(page, "shop/payment.py")
    file_editor(page)
    cursor_at(page, 20, 24)  # `    return charge_card(card_number, amount)`: inside `charge_card`
    panel = page.locator("#direng-chat")
    mark_answers(page)
    run_palette(page, "Explain the Symbol Under the Cursor")
    wait_text(panel.locator(".direng-user:visible").last, r"^explain charge_card$")
    answer = new_answer(page)
    assert "charge_card" in answer.inner_text()
    assert "shop/payment.py:10-14" in [a.inner_text() for a in answer.locator("a.direng-citation").all()]
    # the editor is still the current document: the graph is of the same symbol
    run_palette(page, "Graph the Symbol Under the Cursor")
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current", has_text="Graph: charge_card").wait_for()
    view = page.locator(".direng-graph-main:visible")
    view.locator(".direng-graph-canvas canvas").first.wait_for()
    page.wait_for_function("() => document.querySelector('.direng-graph-main:not(.lm-mod-hidden) .direng-graph-count')"
                           "?.dataset.nodes > 0")
    assert view.get_attribute("data-center") == "shop/payment.py::charge_card"
    assert int(view.locator(".direng-graph-count").get_attribute("data-nodes")) >= 3  # checkout, PaymentError, …
    shot(page, "palette-graph-symbol")


def notebook_sources(lab, path: str) -> list[str]:
    """The cells' sources of `path` as saved ([] while it is being written)."""
    import urllib.error

    try:
        cells = contents(lab, path)["content"]["cells"]
    except urllib.error.HTTPError:
        return []
    return [c["source"] if isinstance(c["source"], str) else "".join(c["source"]) for c in cells]


def ask(page, message: str):
    """Send `message` from the DirEng panel's input; the answer, once it is there."""
    panel = open_side_panel(page, "direng-chat")
    mark_answers(page)
    box = panel.locator("textarea")
    box.fill(message)
    box.press("Enter")
    return new_answer(page)


def test_code_block_actions_change_the_notebook_and_the_clipboard(lab, page):
    import nbformat

    write_notebook(lab.root / "actions.ipynb", nbformat.v4.new_code_cell("first = 1"),
                   nbformat.v4.new_code_cell("second = 2"))
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=lab.url)
    open_path(page, "actions.ipynb")
    notebook = page.locator(".jp-NotebookPanel:visible .jp-Notebook")
    notebook.locator(".jp-Cell").nth(1).wait_for()
    notebook.locator(".jp-Cell").first.locator(".jp-InputPrompt").click()  # the first cell is active
    answer = ask(page, "explain charge_card")
    block = answer.locator("pre").first
    code = block.inner_text().rstrip("\n")
    assert "def charge_card(card_number: str, amount_cents: int) -> str:" in code
    actions = answer.locator(".direng-code-actions").first
    shot(page, "code-block-actions")

    actions.locator(".direng-insert-below").click()  # a new cell below the active (first) one
    deadline = time.monotonic() + 10
    while notebook.locator(".jp-Cell").count() < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert notebook.locator(".jp-Cell").count() == 3
    notebook.locator(".jp-Cell").nth(2).locator(".jp-InputPrompt").click()  # `second = 2` is active
    actions.locator(".direng-replace-cell").click()
    page.locator(".jp-NotebookPanel:visible .jp-Toolbar [data-command='docmanager:save']").click()
    deadline = time.monotonic() + 30
    while notebook_sources(lab, "actions.ipynb") != ["first = 1", code, code] and time.monotonic() < deadline:
        time.sleep(0.3)
    assert notebook_sources(lab, "actions.ipynb") == ["first = 1", code, code]

    page.evaluate("() => navigator.clipboard.writeText('')")
    actions.locator(".direng-copy").click()
    deadline = time.monotonic() + 10
    copied = ""
    while copied != code and time.monotonic() < deadline:
        copied = page.evaluate("() => navigator.clipboard.readText()")
        time.sleep(0.1)
    assert copied == code

    # with a file editor current, code goes into the file, at the cursor's line
    open_path(page, "shop/payment.py")
    source = page.locator(".jp-FileEditor:visible .cm-content")

    def file_lines() -> list[str]:  # CodeMirror draws a line per element (an empty one holds a <br>)
        return [t.rstrip("\n") for t in source.locator(".cm-line").all_inner_texts()]

    original = (lab.root / "shop" / "payment.py").read_text().split("\n")
    answer = ask(page, "explain checkout")  # in this file's conversation
    code = answer.locator("pre").first.inner_text().rstrip("\n")
    file_editor(page)
    cursor_at(page, 1, 0)
    answer.locator(".direng-insert-below").first.click()
    lines = file_lines()  # not into the notebook, which was current before
    assert lines == original[:1] + code.split("\n") + original[1:], lines
    file_editor(page)
    page.keyboard.press("Control+Z")  # leave the file as it was
    deadline = time.monotonic() + 10
    while file_lines() != original and time.monotonic() < deadline:
        time.sleep(0.2)
    assert file_lines() == original


def open_saved_notebook(page, name: str, text: str) -> None:
    """Open the notebook `name` (a cell of it has `text`) and save it once its kernel is idle: the
    kernel's start rewrites the kernelspec's display name, and a reload never drops unsaved work."""
    open_path(page, name)
    page.locator(".jp-Notebook .jp-Cell", has_text=text).wait_for()
    page.get_by_text(re.compile(r"\| Idle$")).wait_for(timeout=60_000)
    page.locator(".jp-Notebook .jp-Cell", has_text=text).click()
    page.keyboard.press("Control+s")
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current:not(.jp-mod-dirty)",
                 has_text=name).wait_for(timeout=30_000)


def test_an_edit_proposed_in_chat_is_accepted_into_the_open_notebook(lab, page):
    """A generative provider (the FAKE OpenAI-protocol server) proposes a cell edit; nothing
    changes until Accept, which writes the cell with its provenance and reloads the open notebook."""
    import nbformat

    path = lab.root / "edits.ipynb"
    write_notebook(path, nbformat.v4.new_code_cell("total = 21"), nbformat.v4.new_code_cell("print(total)"))
    open_saved_notebook(page, "edits.ipynb", "print(total)")
    with FakeModelServer() as fake, route_chat_to(lab, fake):
        fake.reply(FakeReply(content="", tool_calls=[{"id": "e1", "name": "propose_cell_edit", "arguments": {
                       "notebook": "edits.ipynb", "cell": 1, "new_source": "print(total * 2)"}}]),
                   FakeReply(content="I proposed an edit of cell 1 of edits.ipynb."))
        panel = ask_panel(page, "double the printed total in edits.ipynb")
        card = panel.locator(".direng-edit-proposal").last
        card.wait_for(timeout=60_000)
    assert nbformat.read(path, as_version=4).cells[1].source == "print(total)"  # proposed: nothing changed yet
    assert "+print(total * 2)" in panel.locator(".direng-answer-block").last.inner_text()  # the diff is shown
    card.locator(".direng-edit-accept").click()
    panel.locator(f".direng-edit-proposal[data-proposal-id='{card.get_attribute('data-proposal-id')}']"
                  "[data-state='applied']").wait_for(timeout=30_000)
    cell = nbformat.read(path, as_version=4).cells[1]
    assert cell.source == "print(total * 2)" and cell.metadata["direng"]["provider"] == "fake-openai"
    page.locator(".jp-Notebook .jp-Cell", has_text="print(total * 2)").wait_for(timeout=30_000)  # reloaded
    assert "reloaded" in card.inner_text()
    shot(page, "edit-accepted")


def propose_cell_edit(fake, notebook: str, cell: int, new_source: str) -> None:
    """The FAKE model's next turn proposes `new_source` for `cell` of `notebook`, then says so."""
    fake.reply(FakeReply(content="", tool_calls=[{"id": "e1", "name": "propose_cell_edit", "arguments": {
                   "notebook": notebook, "cell": cell, "new_source": new_source}}]),
               FakeReply(content=f"I proposed an edit of cell {cell} of {notebook}."))


def test_a_proposed_edit_shows_as_a_diff_at_its_cell_and_is_decided_there(lab, page):
    """The edit proposed in chat shows at its cell in the open notebook, side by side: Reject there
    leaves the file as it was and the chat card says so; Accept there (another proposal) writes
    the cell and the notebook shows it."""
    import nbformat

    path = lab.root / "diffs.ipynb"
    before = "label = 'total'\nprint(label, 21)"
    write_notebook(path, nbformat.v4.new_code_cell("total = 21"), nbformat.v4.new_code_cell(before))
    open_saved_notebook(page, "diffs.ipynb", "print(label, 21)")
    errors: list[str] = []

    def on_console(message) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    cell = page.locator(".jp-Notebook:visible .jp-Cell").nth(1)

    def propose(new_source: str, message: str):
        panel = open_side_panel(page, "direng-chat")
        cards = panel.locator(".direng-edit-proposal")
        seen = cards.count()
        with FakeModelServer() as fake, route_chat_to(lab, fake):
            propose_cell_edit(fake, "diffs.ipynb", 1, new_source)
            ask_panel(page, message)
            cards.nth(seen).wait_for(timeout=60_000)
        pid = cards.nth(seen).get_attribute("data-proposal-id")
        diff = cell.locator(f".direng-cell-diff[data-proposal-id='{pid}']")
        diff.locator(".cm-mergeView").wait_for(timeout=30_000)  # at the cell, in CodeMirror's MergeView
        return (lambda state: panel.locator(f".direng-edit-proposal[data-proposal-id='{pid}'][data-state='{state}']"),
                diff)

    try:
        card_in, diff = propose("label = 'total'\nprint(label, 21 * 2)", "double the printed total in diffs.ipynb")
        current, proposed = diff.locator(".cm-mergeViewEditor .cm-content").all_inner_texts()
        assert "print(label, 21)" in current and "21 * 2" not in current and "print(label, 21 * 2)" in proposed
        assert diff.locator(".cm-changedText").count() >= 1  # the change is marked, not just two texts
        shot(page, "cell-diff")
        diff.locator(".direng-cell-diff-reject").click()
        diff.wait_for(state="detached", timeout=30_000)
        card_in("rejected").wait_for(timeout=30_000)  # the chat card follows
        assert nbformat.read(path, as_version=4).cells[1].source == before
        assert card_in("rejected").locator(".direng-edit-accept").is_disabled()

        card_in, diff = propose("label = 'total'\nprint(label, 21 * 3)", "triple the printed total in diffs.ipynb")
        diff.locator(".direng-cell-diff-accept").click()
        card_in("applied").wait_for(timeout=30_000)
        assert nbformat.read(path, as_version=4).cells[1].source == "label = 'total'\nprint(label, 21 * 3)"
        cell.locator(".jp-InputArea-editor", has_text="21 * 3").wait_for(timeout=30_000)  # reloaded
        assert "reloaded" in card_in("applied").inner_text()
        assert page.locator(".jp-Notebook:visible .direng-cell-diff").count() == 0
    finally:
        page.remove_listener("console", on_console)
    assert not [e for e in errors if "codemirror" in e.lower() or "instances of @codemirror" in e], errors


def test_a_pending_edit_shows_at_its_cell_when_the_notebook_is_opened_later(lab, page):
    """A cell edit proposed while its notebook is closed shows at the cell when it is opened. The
    cell changed on disk since, so Accept is refused: the reason shows at the cell and Reject
    still works; then the palette finds no pending edit left."""
    import nbformat

    path = lab.root / "later.ipynb"
    write_notebook(path, nbformat.v4.new_code_cell("rate = 0.2"), nbformat.v4.new_code_cell("price = 10"))
    with FakeModelServer() as fake, route_chat_to(lab, fake):
        propose_cell_edit(fake, "later.ipynb", 1, "price = 12")
        status, answer = lab.post("chat", {"message": "raise the price in later.ipynb", "session": "later"})
    assert status == 200 and answer["proposals"], answer
    proposal_id = answer["proposals"][0]["id"]
    write_notebook(path, nbformat.v4.new_code_cell("rate = 0.2"), nbformat.v4.new_code_cell("price = 11"))

    open_path(page, "later.ipynb")
    diff = page.locator(".jp-Notebook:visible .jp-Cell").nth(1).locator(
        f".direng-cell-diff[data-proposal-id='{proposal_id}']")
    diff.locator(".cm-mergeView").wait_for(timeout=30_000)
    assert diff.locator(".direng-cell-diff-stale").is_visible()  # the cell is not what the edit was made for
    diff.locator(".direng-cell-diff-accept").click()
    refusal = diff.locator(".direng-error")
    refusal.wait_for(timeout=30_000)
    assert "changed since the proposal" in refusal.inner_text()
    assert nbformat.read(path, as_version=4).cells[1].source == "price = 11"
    assert diff.locator(".direng-cell-diff-reject").is_enabled()
    diff.locator(".direng-cell-diff-reject").click()
    diff.wait_for(state="detached", timeout=30_000)
    assert lab.get(f"proposals/{proposal_id}")[1]["state"] == "rejected"
    run_palette(page, "Show Pending Edits for This Notebook")
    page.get_by_text("DirEng: no pending edits for later.ipynb.").first.wait_for(timeout=10_000)
