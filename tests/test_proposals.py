"""Edits as proposals: a cell's new source or a file patch, applied only when the user says so.

Real engine and notebooks on disk; a patch runs through the real Code-Impl lane (papermill, a git
worktree, the sample repository's tests and pyflakes) before it is offered for the working tree.
The generative provider is the FAKE OpenAI-protocol server (tests/fake_providers.py)."""

from __future__ import annotations

import json
import subprocess

import nbformat
import pytest

from conftest import commit_all, make_repo
from direng_kernel.direng.proposals import ProposalError, ProposalNotFound
from direng_kernel.engine import Engine
from direng_kernel.security import audit
from fake_providers import FakeModelServer, FakeReply
from test_direng import generative


@pytest.fixture()
def engine(tmp_path):
    root = make_repo(tmp_path / "repo")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from shop.payment import charge_card"),
                nbformat.v4.new_code_cell("charge_card('4242', 100)"),
                nbformat.v4.new_markdown_cell("# Notes")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "pay.ipynb")
    commit_all(root, "a notebook")
    e = Engine(root, watch=False)
    e.index()
    yield e
    e.stop()


def test_a_cell_edit_applies_with_its_provenance_and_only_once(engine):
    store = engine.proposal_store
    p = store.propose_cell("pay.ipynb", 1, "receipt = charge_card('4242', 250)", provider="fake-openai",
                           model="m", contract_version="2026-12-02-001")
    assert p.state == "proposed" and "-charge_card('4242', 100)" in p.diff and "+receipt =" in p.diff
    nb_before = (engine.root / "pay.ipynb").read_text()
    assert engine.proposals()[0].id == p.id and nb_before == (engine.root / "pay.ipynb").read_text()  # untouched

    applied = engine.proposal_action(p.id, "apply")
    cell = nbformat.read(engine.root / "pay.ipynb", as_version=4).cells[1]
    assert applied.state == "applied" and cell.source == "receipt = charge_card('4242', 250)"
    assert cell.metadata["direng"]["proposal"] == p.id and cell.metadata["direng"]["provider"] == "fake-openai"
    assert cell.metadata["direng"]["contract_version"] == "2026-12-02-001" and cell.metadata["direng"]["applied_at"]
    with pytest.raises(ProposalError, match="was applied already"):
        engine.proposal_action(p.id, "apply")
    assert any(r["event"] == "proposal.apply" and r["data"]["proposal_id"] == p.id for r in audit.read_records())


def test_a_cell_that_moved_since_the_proposal_is_refused_and_bad_input_is_clear(engine):
    store = engine.proposal_store
    p = store.propose_cell("pay.ipynb", 0, "import shop")
    nb = nbformat.read(engine.root / "pay.ipynb", as_version=4)
    nb.cells[0].source = "from shop import payment"  # the user edited the cell meanwhile
    nbformat.write(nb, engine.root / "pay.ipynb")
    with pytest.raises(ProposalError, match="cell 0 of pay.ipynb changed since the proposal"):
        engine.proposal_action(p.id, "apply")
    assert engine.proposal_action(p.id, "reject").state == "rejected"
    with pytest.raises(ProposalError, match="has no cell 9"):
        store.propose_cell("pay.ipynb", 9, "x")
    with pytest.raises(ProposalError, match="not a notebook"):
        store.propose_cell("shop/payment.py", 0, "x")
    with pytest.raises(ProposalError, match=r"contains '\.\.'"):  # confined to the root
        store.propose_cell("../elsewhere.ipynb", 0, "x")
    with pytest.raises(ProposalNotFound):
        engine.proposal_action("prop-000000000000", "apply")


def test_a_generative_provider_proposes_a_cell_edit_through_its_tool(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_OPENAI_KEY", "k")
    with FakeModelServer() as server, generative(engine.direng, server) as d:
        server.reply(FakeReply(content="", tool_calls=[{"id": "e1", "name": "propose_cell_edit", "arguments": {
                         "notebook": "pay.ipynb", "cell": 1, "new_source": "charge_card('4242', 100)  # checked"}}]),
                     FakeReply(content="I proposed an edit of cell 1."))
        answer = d.chat("add a comment to the charge in pay.ipynb", session="edit")
        offered = {t["function"]["name"] for t in server.requests[0].body["tools"]}
    assert {"propose_cell_edit", "propose_file_patch"} <= offered
    (p,) = answer.proposals
    assert answer.intent == "edit" and (p.kind, p.path, p.cell, p.provider) == ("cell", "pay.ipynb", 1, "fake-openai")
    assert p.id in answer.markdown and "%direng apply" in answer.markdown
    assert nbformat.read(engine.root / "pay.ipynb", as_version=4).cells[1].source == "charge_card('4242', 100)"


def test_the_local_provider_generates_no_edit_and_says_so(engine):
    answer = engine.chat("edit the cell 1 of pay.ipynb to charge twice")
    assert answer.proposals == [] and "generates no edits" in answer.markdown


def test_a_cell_diff_the_user_gives_proposes_the_cell_edit_and_a_stale_one_names_its_hunk(engine):
    """The format DirEng shows a cell edit in (`+++ b/NB.ipynb cell N`) is one the local provider takes."""
    diff = ("--- a/pay.ipynb cell 1\n+++ b/pay.ipynb cell 1\n@@ -1 +1,2 @@\n"
            "-charge_card('4242', 100)\n+receipt = charge_card('4242', 100)\n+print(receipt)\n")
    answer = engine.chat(f"please apply\n```diff\n{diff}```")
    (p,) = answer.proposals
    assert (p.kind, p.path, p.cell, p.provider) == ("cell", "pay.ipynb", 1, "local")
    assert p.new_source == "receipt = charge_card('4242', 100)\nprint(receipt)"  # no newline added to the cell
    assert answer.proposed_task is None and "%direng apply" in answer.markdown
    assert nbformat.read(engine.root / "pay.ipynb", as_version=4).cells[1].source == "charge_card('4242', 100)"
    engine.proposal_action(p.id, "apply")
    assert nbformat.read(engine.root / "pay.ipynb", as_version=4).cells[1].source == p.new_source

    store = engine.proposal_store
    with pytest.raises(ProposalError, match=r"does not apply to pay.ipynb cell 1: the hunk `@@ -1`"):
        store.propose_cell_diff(diff)  # the cell moved: its old line is gone
    with pytest.raises(ProposalError, match="has no cell 7"):
        store.propose_cell_diff(diff.replace("cell 1", "cell 7"))
    with pytest.raises(ProposalError, match="file patches in a diff of their own"):
        store.propose_cell_diff(diff + PATCH)
    with pytest.raises(ProposalError, match=r"contains '\.\.'"):
        store.propose_cell_diff(diff.replace("pay.ipynb", "../pay.ipynb"))
    assert len(engine.proposals()) == 1  # nothing refused was stored


PATCH = """--- a/shop/shipping.py
+++ b/shop/shipping.py
@@ -1,3 +1,3 @@
-\"\"\"Shipping cost estimates by destination zone.\"\"\"
+\"\"\"Shipping cost estimates by destination zone (in cents).\"\"\"
 
 from shop import payment
"""


@pytest.mark.slow
def test_a_patch_runs_through_code_impl_before_it_may_touch_the_working_tree(engine):
    shipping = engine.root / "shop" / "shipping.py"
    head = shipping.read_text().splitlines()[0]
    first, second = (engine.chat(f"please apply this\n```diff\n{PATCH}```", session=f"patch-{n}") for n in (1, 2))
    (p,) = first.proposals
    task = first.proposed_task
    assert first.intent == "patch" and p.kind == "file" and p.paths == ["shop/shipping.py"]
    assert (task.lane, task.state.value, task.id) == ("code-impl", "estimated", p.task_id)
    with pytest.raises(ProposalError, match="Code-Impl task .* is estimated"):
        engine.proposal_action(p.id, "apply")  # not before the lane checked it
    for answer in (first, second):
        engine.task_action(answer.proposed_task.id, "approve")
        done = engine.run_task(answer.proposed_task.id)
        assert done.state.value == "succeeded", done.error
    assert shipping.read_text().splitlines()[0] == head  # the lane worked in a worktree

    assert engine.proposal_action(p.id, "apply").state == "applied"
    assert shipping.read_text().splitlines()[0] == '"""Shipping cost estimates by destination zone (in cents)."""'
    status = subprocess.run(["git", "status", "--porcelain"], cwd=engine.root, capture_output=True, text=True).stdout
    assert "shop/shipping.py" in status
    # the same change again: the working tree moved since that proposal, so it is refused, naming the file
    with pytest.raises(ProposalError, match="working tree moved since the proposal: the patch does not apply to "
                                            "shop/shipping.py"):
        engine.proposal_action(second.proposals[0].id, "apply")
    assert second.proposals[0].id in json.dumps([x.model_dump(mode="json") for x in engine.proposals()])
