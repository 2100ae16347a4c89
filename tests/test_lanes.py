"""The six PAS lanes, run for real: each lane run is a task in PEX's real task store, approved,
queued and executed by PAS's `Executor` (papermill in its own process under the lane's limits and
environment, outputs scrubbed, gates evaluated, a passport written), on a git copy of
`fixtures/lane_repo` indexed with the real indexer; commands go through the real allowlists and
sandbox. Also the lane helper API (`pas.lane`, in process) and the quality gates.

The fixture project (`inventory`) has an import cycle (core ↔ pricing), an unreferenced
function (`report.legacy_format`), 16 public symbols of which 12 have docstrings, three pydantic
models, sample JSON under `data/`, and two passing tests
(`tests/check_core.py`; named so that this suite does not collect them).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

from conftest import FIXTURES, commit_all, expected_sandbox_mode, git, make_repo
from direng_kernel.models import TaskState

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
LANES = REPO / "lanes"
LANE_IDS = ("code-impl", "code-api-design", "data-schema", "vector-ops", "graph-ops", "narrative")
LANE_ENV = ("DIRENG_ROOT", "DIRENG_STORE", "DIRENG_RUN_DIR", "DIRENG_LANE", "DIRENG_RUN_ID", "DIRENG_TASK_ID",
            "DIRENG_REPLAY", "DIRENG_RECORDED_RESPONSES", "DIRENG_POLICY")


# -- running a lane through PEX and PAS's executor ---------------------------------------------

@dataclass
class LaneRun:
    run_dir: Path
    kpis: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    commands: list[dict] = field(default_factory=list)
    state: str = ""  # the task's final state, as the executor left it
    error: str | None = None
    task_events: list[str] = field(default_factory=list)

    def text(self, name: str) -> str:
        return self.outputs[name].read_text(encoding="utf-8")

    def digests(self) -> dict[str, str]:
        return {name: hashlib.sha256(p.read_bytes()).hexdigest() for name, p in self.outputs.items()}


class LaneFailed(Exception):
    """The lane's notebook failed (not just a quality gate): the run's error and papermill's log."""

    def __init__(self, run: LaneRun, log: str):
        super().__init__(f"{run.error}\n{log}")
        self.run = run


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def collect(run_dir: Path) -> LaneRun:
    return LaneRun(
        run_dir=run_dir,
        kpis={r["name"]: r["value"] for r in _jsonl(run_dir / "kpis.jsonl")},
        outputs={r["name"]: run_dir / r["path"] for r in _jsonl(run_dir / "outputs.jsonl")},
        events=[r["message"] for r in _jsonl(run_dir / "events.jsonl")],
        commands=_jsonl(run_dir / "commands.jsonl"),
    )


@contextmanager
def lane_env(values: dict[str, str]):
    saved = {k: os.environ.get(k) for k in (*LANE_ENV, *values)}
    for k in LANE_ENV:
        os.environ.pop(k, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_lane(lane: str, root: Path, parameters: dict | None = None, *,
             notebook: Path | None = None, env: dict[str, str] | None = None) -> LaneRun:
    """Run a lane as PAS does: a task in the store under `root`, estimated, approved and queued,
    then claimed and executed by `Executor` in this process. Returns the run (the task failed
    only on a quality gate, if at all); raises LaneFailed when the lane itself failed."""
    from direng_kernel.pas.executor import Executor
    from direng_kernel.pex.store import TaskStore
    from direng_kernel.workbench import Workbench

    store_dir = root / ".direng"
    tasks = TaskStore.for_store(store_dir)
    task, _ = tasks.create_task(title=f"test {lane}", brief="", lane=lane, parameters=parameters or {})
    tasks.transition(task.id, TaskState.estimated)
    tasks.transition(task.id, TaskState.approved)
    run_id = tasks.enqueue(task.id)
    env = dict(env or {})
    executor = Executor(root, store_dir, tasks, policy_path=env.get("DIRENG_POLICY"), extra_env=env,
                        notebooks={lane: notebook} if notebook else None, workbench=Workbench(root, store_dir))
    executor.drain(until_task=task.id, timeout=900)
    done = tasks.get_task(task.id)
    assert done.run_id == run_id and done.state in (TaskState.succeeded, TaskState.failed, TaskState.escalated), done
    run = collect(store_dir / "runs" / run_id)
    run.state, run.error = done.state.value, done.error
    run.task_events = [e.message for e in tasks.events(task.id)]
    passport = json.loads((store_dir / "passports" / f"{run_id}.json").read_text())
    # an escalated task's run failed (the passport records the run, and the escalation)
    assert passport["status"] == (run_state := tasks.get_run(run_id)["state"]) and passport["lane"] == lane
    assert run_state == done.state.value or (done.state == TaskState.escalated and passport["escalation"])
    assert passport["sandbox"] == expected_sandbox_mode()  # bubblewrap wherever it is required
    if done.state in (TaskState.failed, TaskState.escalated) and not (done.error or "").startswith(
            "quality gate failed: "):
        raise LaneFailed(run, (run.run_dir / "papermill.log").read_text(errors="replace"))
    return run


def tree_state(root: Path) -> tuple[str, str, dict[str, str]]:
    """What must not change in the user's repository: status, worktrees, file contents."""
    files = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(root.rglob("*")) if p.is_file() and ".git" not in p.parts and ".direng" not in p.parts}
    return git(root, "status", "--porcelain"), git(root, "worktree", "list", "--porcelain"), files


@pytest.fixture(scope="module")
def lane_repo(tmp_path_factory) -> Path:
    """A git copy of fixtures/lane_repo (one commit), indexed (no dense vectors)."""
    from direng_kernel.workbench import Workbench

    root = make_repo(tmp_path_factory.mktemp("lanes") / "repo", source=FIXTURES / "lane_repo")
    wb = Workbench(root)
    wb.index()
    wb.close()
    return root


@pytest.fixture
def fresh_repo(tmp_path) -> Path:
    """A git copy of fixtures/lane_repo of one's own, indexed."""
    from direng_kernel.workbench import Workbench

    root = make_repo(tmp_path / "repo", source=FIXTURES / "lane_repo")
    wb = Workbench(root)
    wb.index()
    wb.close()
    return root


# -- the lane files --------------------------------------------------------------------------

def test_every_lane_has_a_notebook_with_parameters_an_allowlist_and_gates():
    from direng_kernel.pas.allowlist import load_lane_allowlist
    from direng_kernel.pas.gates import load_gates

    for lane in LANE_IDS:
        nb = nbformat.read(LANES / f"{lane}.ipynb", as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), lane
        assert "root = None" in code[0].source and "run_dir = None" in code[0].source
        assert all(not c.outputs for c in code), f"{lane}.ipynb is committed with outputs"
        assert load_lane_allowlist(lane).lane == lane
        gates = load_gates(lane)
        assert gates.lane == lane and gates.gates and gates.source.endswith(f"gates/{lane}.yaml")


# -- gates -----------------------------------------------------------------------------------

def test_gates_evaluate_and_a_missing_kpi_fails_its_gate():
    from direng_kernel.pas.gates import load_gates

    gates = load_gates("code-impl")
    assert gates.evaluate({"tests_failed": 0, "lint_errors": 0, "files_changed": 2, "license_violations": 0}).passed
    bad = gates.evaluate({"tests_failed": 1, "lint_errors": 0})
    assert not bad.passed
    assert any("tests_failed == 0" in f and "got tests_failed = 1" in f for f in bad.failures)
    assert any("'files_changed' was not reported" in f for f in bad.failures)
    assert load_gates("no-such-lane").evaluate({}).passed  # no gates file: nothing to fail


def test_gates_files_are_validated(tmp_path, monkeypatch):
    from direng_kernel.pas.gates import GatesError, load_gates, parse_gates

    with pytest.raises(GatesError, match="op"):
        parse_gates("lane: x\ngates:\n  - {kpi: a, op: '=~', value: 1}\n", "x", "x.yaml")
    with pytest.raises(GatesError, match="is for lane 'y'"):
        parse_gates("lane: y\ngates: []\n", "x", "x.yaml")
    (tmp_path / "gates").mkdir()
    (tmp_path / "gates" / "graph-ops.yaml").write_text("lane: graph-ops\ngates:\n  - {kpi: cycles_found, op: '==', value: 0}\n")
    monkeypatch.setenv("DIRENG_LANES_PATH", str(tmp_path))  # an extra lanes folder comes first
    gates = load_gates("graph-ops")
    assert gates.source == str(tmp_path / "gates" / "graph-ops.yaml")
    assert gates.evaluate({"cycles_found": 1}).failures == ["cycles_found == 0: got cycles_found = 1"]


# -- the helper API, in-process ----------------------------------------------------------------

def test_lane_helpers_outside_and_inside_a_run(tmp_path, lane_repo):
    from direng_kernel.pas import lane as pas

    with lane_env({}):
        with pytest.raises(pas.LaneContextError, match="not inside a lane run"):
            pas.context()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with lane_env({"DIRENG_ROOT": str(lane_repo), "DIRENG_RUN_DIR": str(run_dir), "DIRENG_LANE": "narrative"}):
        ctx = pas.context()
        assert ctx.root == lane_repo.resolve() and ctx.store == (lane_repo / ".direng").resolve() and not ctx.replay
        for bad in ("Bad-Name", "a b", ""):
            with pytest.raises(pas.LaneError, match="bad KPI name"):
                pas.kpi(bad, 1)
        for bad in (float("nan"), float("inf"), "many"):
            with pytest.raises(pas.LaneError):
                pas.kpi("x", bad)
        assert pas.kpi("ok_1", 3) == 3.0
        outside = tmp_path / "elsewhere.txt"
        outside.write_text("x")
        with pytest.raises(pas.LaneError, match="outside the run folder"):
            pas.artifact(outside)
        (run_dir / "link.txt").symlink_to(outside)
        with pytest.raises(pas.LaneError, match="outside the run folder"):
            pas.artifact("link.txt")
        with pytest.raises(pas.LaneError, match="outside the run folder"):
            pas.artifact(run_dir / ".." / "elsewhere.txt")
        (run_dir / "sub").mkdir()
        (run_dir / "sub" / "a.txt").write_text("a")
        assert pas.artifact("sub/a.txt") == run_dir / "sub" / "a.txt"
        assert pas.complete("anything") is None  # default policy: the local provider, no model call
        res = pas.run_command(["git", "log", "--oneline"])  # narrative may read history
        assert res.returncode == 0 and "initial" in res.stdout
        from direng_kernel.pas.sandbox import CommandDenied

        with pytest.raises(CommandDenied, match="default-deny"):
            pas.run_command(["git", "push"])
        pas.log("hello")
    run = collect(run_dir)
    assert run.kpis == {"ok_1": 3.0} and run.outputs == {"sub/a.txt": run_dir / "sub" / "a.txt"}
    assert run.events == ["hello"]
    assert [c["argv"] for c in run.commands] == [["git", "log", "--oneline"], ["git", "push"]]
    assert "default-deny" in run.commands[1]["denied"]
    assert not (run_dir / "provider_responses").exists()


def test_a_denied_command_fails_the_run_naming_the_rule(tmp_path, lane_repo):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("root = None\nrun_dir = None"),
                nbformat.v4.new_code_cell("from direng_kernel.pas import lane as pas\n"
                                          "pas.run_command(['curl', 'http://127.0.0.1:9'])")]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "adhoc.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(LaneFailed) as err:
        run_lane("graph-ops", lane_repo, notebook=path)
    assert "CommandDenied" in err.value.run.error and "deny:curl" in err.value.run.error
    (record,) = err.value.run.commands
    assert record["argv"] == ["curl", "http://127.0.0.1:9"] and "deny:curl" in record["denied"]


# -- vector-ops --------------------------------------------------------------------------------

def test_vector_ops_refreshes_the_index_and_reports_freshness(fresh_repo):
    from direng_kernel.pas.gates import load_gates

    (fresh_repo / "inventory" / "stock_io.py").write_text('"""Load and save stock."""\n\n\ndef load(path):\n    return {}\n')
    commit_all(fresh_repo, "add stock_io")
    head = git(fresh_repo, "rev-parse", "HEAD")
    run = run_lane("vector-ops", fresh_repo)
    # PAS refreshes the index before every lane run (a lane sees the code it is about), so the
    # new commit is already indexed when the lane looks: nothing is left for its own refresh.
    assert "index refreshed: 1 changed file(s)" in run.task_events
    report = json.loads(run.text("freshness.json"))
    assert report["indexed_commit_before"] == report["indexed_commit"] == report["head_commit"] == head
    assert report["fresh"] and report["changed_paths"] == [] and report["changes"]["added"] == 0
    assert report["files"] == 15 and report["languages"]["python"] == 8
    assert run.kpis["files"] == 15 and run.kpis["changed_files"] == 0 and run.kpis["freshness_lag_commits"] == 0
    assert run.kpis["fresh"] == 1 and load_gates("vector-ops").evaluate(run.kpis).passed and run.state == "succeeded"
    assert all(c["argv"][0] == "git" and "denied" not in c for c in run.commands)


# -- graph-ops ---------------------------------------------------------------------------------

def test_graph_ops_finds_the_cycle_central_symbols_and_dead_code(lane_repo):
    from direng_kernel.pas.gates import load_gates

    run = run_lane("graph-ops", lane_repo)
    assert set(run.outputs) == {"graph_report.md", "graph.html", "graph_analysis.json"}
    analysis = json.loads(run.text("graph_analysis.json"))
    assert analysis["cycles"] == [["inventory/core.py", "inventory/pricing.py"]]
    dead = {u["symbol"] for u in analysis["unreferenced"]}
    assert "legacy_format" in dead
    assert not dead & {"format_money", "summary", "add_item", "price_of", "discount", "main", "total_value"}
    assert not any(u["path"].startswith("tests/") or u["symbol"].endswith("__init__") for u in analysis["unreferenced"])
    central = [c["symbol"] for c in analysis["central"]]
    assert central[0] == "price_of" and {"Item", "discount", "total_value"} <= set(central[:5])
    report = run.text("graph_report.md")
    assert "`inventory/core.py` → `inventory/pricing.py` → `inventory/core.py`" in report
    assert "`legacy_format` | function | inventory/report.py:11-12" in report
    html = run.text("graph.html")
    assert "<html" in html and "price_of" in html and "https://" not in html
    assert run.kpis["cycles_found"] == 1 and run.kpis["unreferenced_symbols"] == len(dead)
    assert run.kpis["central_symbols"] == len(central) and load_gates("graph-ops").evaluate(run.kpis).passed
    assert run.state == "succeeded"

    again = run_lane("graph-ops", lane_repo)  # same state → same bytes (replay)
    assert again.digests() == run.digests() and again.kpis == run.kpis


def test_graph_ops_locates_notebook_definitions_by_cell_and_counts_calls_from_cells(fresh_repo):
    """A notebook's functions: called from another cell → used; never called → listed with its
    cell. `clean` is defined in cells 3 and 5 and called in between: cell 3's is used, cell 5's not."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                          "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (
        "def helper(x):\n    return x * 2",
        "value = helper(3)",
        "def unused_in_nb(y):\n    return y",
        "def clean(v):\n    return v",
        "cleaned = clean(value)",
        "def clean(v):\n    return None",
    )]
    (fresh_repo / "notebooks").mkdir()
    nbformat.write(nb, fresh_repo / "notebooks" / "explore.ipynb")
    commit_all(fresh_repo, "a notebook")

    run = run_lane("graph-ops", fresh_repo)
    dead = {(u["symbol"], u["path"], u["cell"]) for u in json.loads(run.text("graph_analysis.json"))["unreferenced"]}
    assert {("unused_in_nb", "notebooks/explore.ipynb", 2), ("clean", "notebooks/explore.ipynb", 5),
            ("legacy_format", "inventory/report.py", None)} <= dead
    assert not {d for d in dead if d[0] == "helper" or d[2] == 3}
    report = run.text("graph_report.md")
    assert "| `unused_in_nb` | function | notebooks/explore.ipynb:cell 2:1-2 |" in report
    assert "| `clean` | function | notebooks/explore.ipynb:cell 5:1-2 |" in report
    assert "`legacy_format` | function | inventory/report.py:11-12" in report


# -- code-api-design ---------------------------------------------------------------------------

def test_code_api_design_on_a_single_commit_reports_the_surface_only(lane_repo):
    run = run_lane("code-api-design", lane_repo)
    api = json.loads(run.text("api_surface.json"))
    assert api["base"] is None and api["breaking"] == []
    names = {f"{s['module']}.{s['qualname']}" for s in api["head"]["symbols"]}
    assert {"inventory.core.add_item", "inventory.core.Item", "inventory.core.Item.__init__",
            "inventory.models.Product", "inventory.report.legacy_format"} <= names
    assert not any(".tests." in n or n.startswith("tests.") for n in names)
    add_item = next(s for s in api["head"]["symbols"] if s["qualname"] == "add_item")
    assert [(p["name"], p["required"]) for p in add_item["params"]] == [("stock", True), ("item", True), ("qty", False)]
    init = next(s for s in api["head"]["symbols"] if s["qualname"] == "Item.__init__")
    assert [p["name"] for p in init["params"]] == ["sku", "price", "category"]  # no self
    assert run.kpis["public_symbols"] == len(names) and run.kpis["breaking_changes"] == 0
    assert "does not name a commit" in run.text("breaking_changes.md")


def test_code_api_design_detects_breaking_changes(fresh_repo):
    from direng_kernel.pas.gates import load_gates

    core = fresh_repo / "inventory" / "core.py"
    text = core.read_text()
    text = text.replace("def add_item(stock, item, qty=1):", "def add_item(stock, item, quantity=1, *, strict):")
    text = text.replace("if qty <= 0", "if quantity <= 0").replace("+ qty\n", "+ quantity\n")
    text = text.replace("def remove_item(stock, item, qty=1):\n    stock[item] = max(0, stock.get(item, 0) - qty)\n"
                        "    return stock[item]\n\n\n", "")
    text = text.replace("def total_value(stock):", "def total_value(stock, digits=2):")
    core.write_text(text)
    (fresh_repo / "inventory" / "pricing.py").write_text(
        (fresh_repo / "inventory" / "pricing.py").read_text() + "\n\ndef tax(amount, rate=0.2):\n    return amount * rate\n")
    commit_all(fresh_repo, "rework the stock API")

    run = run_lane("code-api-design", fresh_repo)
    api = json.loads(run.text("api_surface.json"))
    breaking = {b["symbol"]: b["reasons"] for b in api["breaking"]}
    assert breaking == {
        "inventory.core.add_item": ["parameter `qty` renamed to `quantity`", "new required parameter `strict`"],
        "inventory.core.remove_item": ["removed"],
    }
    assert api["added"] == ["inventory.pricing.tax"]
    assert [c["symbol"] for c in api["changed"]] == ["inventory.core.total_value"]
    assert api["base"]["commit"] == git(fresh_repo, "rev-parse", "HEAD~1")
    md = run.text("breaking_changes.md")
    assert "### `inventory.core.add_item`" in md and "- def add_item(stock, item, qty=1)" in md
    assert run.kpis["breaking_changes"] == 2 and run.kpis["removed_symbols"] == 1 and run.kpis["added_symbols"] == 1
    verdict = load_gates("code-api-design").evaluate(run.kpis)
    assert not verdict.passed and "breaking_changes == 0: got breaking_changes = 2" in verdict.failures
    assert run.state == "failed" and run.error == "quality gate failed: " + "; ".join(verdict.failures)

    # Explicit refs, the other way round: dropping `strict`, `digits` and `tax` breaks callers too.
    back = run_lane("code-api-design", fresh_repo, {"base_ref": "HEAD", "head_ref": "HEAD~1"})
    reasons = {b["symbol"]: b["reasons"] for b in json.loads(back.text("api_surface.json"))["breaking"]}
    assert reasons == {"inventory.core.add_item": ["parameter `quantity` renamed to `qty`", "parameter `strict` removed"],
                       "inventory.core.total_value": ["parameter `digits` removed"],
                       "inventory.pricing.tax": ["removed"]}
    assert run_lane("code-api-design", fresh_repo).digests() == run.digests()


# -- data-schema -------------------------------------------------------------------------------

def test_data_schema_infers_validates_and_drafts_model_schemas(lane_repo):
    from jsonschema import Draft202012Validator

    run = run_lane("data-schema", lane_repo)
    assert set(run.outputs) == {"validation_report.md", "schemas/products.schema.json", "schemas/orders.schema.json",
                                "schemas/model.inventory.models.Product.schema.json",
                                "schemas/model.inventory.models.Order.schema.json",
                                "schemas/model.inventory.models.OrderLine.schema.json"}
    products = json.loads(run.text("schemas/products.schema.json"))
    Draft202012Validator.check_schema(products)
    assert products["properties"]["price"] == {"type": "number"}
    assert products["required"] == ["name", "price", "sku", "tags"]  # `discontinued` is in 2 of 3
    order = json.loads(run.text("schemas/model.inventory.models.Order.schema.json"))
    Draft202012Validator.check_schema(order)
    assert order["required"] == ["id", "lines"] and order["properties"]["lines"]["items"] == {"$ref": "#/$defs/OrderLine"}
    assert order["properties"]["customer"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert order["$defs"]["OrderLine"]["required"] == ["sku"]
    product = json.loads(run.text("schemas/model.inventory.models.Product.schema.json"))
    assert product["properties"]["discontinued"] == {"type": "boolean", "default": False}
    assert product["description"] == "One product of the catalogue."
    assert run.kpis == {"samples": 5, "schemas": 5, "validation_errors": 0, "invalid_samples": 0,
                        "models": 3, "model_validation_errors": 0}
    assert "3 of 3 valid" in run.text("validation_report.md")
    assert run_lane("data-schema", lane_repo).digests() == run.digests()


def test_data_schema_flags_a_bad_sample(fresh_repo):
    from direng_kernel.pas.gates import load_gates

    (fresh_repo / "data" / "products" / "p4.json").write_text('{"sku": "D-4", "name": "Drill", "price": "cheap", "tags": []}\n')
    (fresh_repo / "data" / "orders" / "broken.json").write_text('{"id": 3, "lines": [\n')
    commit_all(fresh_repo, "more samples")
    run = run_lane("data-schema", fresh_repo)
    products = json.loads(run.text("schemas/products.schema.json"))
    assert products["properties"]["price"] == {"type": "number"}  # one odd sample does not widen the schema
    report = run.text("validation_report.md")
    assert "- `data/products/p4.json`: **invalid**\n  - /price: 'cheap' is not of type 'number'" in report
    assert "- `data/orders/broken.json`: **invalid**\n  - not valid JSON" in report
    assert run.kpis["samples"] == 7 and run.kpis["invalid_samples"] == 2 and run.kpis["validation_errors"] == 2
    assert run.kpis["model_validation_errors"] == 1  # p4 against the Product model, too
    verdict = load_gates("data-schema").evaluate(run.kpis)
    assert verdict.failures == ["validation_errors == 0: got validation_errors = 2"]
    assert (run.state, run.error) == ("failed", "quality gate failed: validation_errors == 0: got validation_errors = 2")


# -- narrative ---------------------------------------------------------------------------------

def test_narrative_writes_the_api_reference_and_measures_coverage(lane_repo):
    run = run_lane("narrative", lane_repo)
    md = run.text("api_reference.md")
    # 16 public symbols (tests, dunders and nested helpers excluded), 12 with a docstring.
    assert run.kpis["public_symbols"] == 16 and run.kpis["documented_symbols"] == 12
    assert run.kpis["docs_coverage"] == pytest.approx(12 / 16) and run.kpis["modules"] == 5
    assert "## `inventory.core`" in md and "Items and the stock that holds them." in md
    assert "```\ndef add_item(stock, item, qty=1)\n```" in md and "Defined at `inventory/core.py:26-31`." in md
    assert 'Constructor: `Item(sku, price, category="general")`' in md
    undocumented = md.split("## Undocumented", 1)[1]
    for name in ("inventory.core.Item.label", "inventory.core.remove_item", "inventory.models.OrderLine",
                 "inventory.report.legacy_format"):
        assert name in undocumented
    assert "## Overview" not in md and "check_core" not in md
    assert not (run.run_dir / "provider_responses").exists()
    assert run_lane("narrative", lane_repo).digests() == run.digests()


def test_narrative_overview_from_a_provider_is_recorded_and_replayed(tmp_path, lane_repo):
    from fake_providers import FakeModelServer, FakeReply

    from direng_kernel.broker.policy import validate_policy

    with FakeModelServer() as server:
        policy = {"version": 1,
                  "providers": {"local": {"type": "local", "external": False},
                                "fake": {"type": "openai", "base_url": server.url + "/v1", "external": False}},
                  "lanes": {"Narrative": {"primary": {"provider": "fake", "model": "writer"}}}}
        assert validate_policy(policy) == []
        policy_path = tmp_path / "policy.json"
        policy_path.write_text(json.dumps(policy))
        server.reply(FakeReply(content="`inventory` keeps stock and prices it."))
        run = run_lane("narrative", lane_repo, env={"DIRENG_POLICY": str(policy_path)})
        assert len(server.requests) == 1
        assert "inventory.core" in server.requests[0].body["messages"][-1]["content"]
    md = run.text("api_reference.md")
    assert "## Overview\n\n`inventory` keeps stock and prices it.\n" in md
    recorded = run.run_dir / "provider_responses"
    assert [p.name for p in recorded.iterdir()] == ["001.json"]
    assert json.loads((recorded / "001.json").read_text())["response"]["content"].startswith("`inventory`")

    # Replay: the server is gone; the recorded response is served and the output is identical.
    replay = run_lane("narrative", lane_repo,
                      env={"DIRENG_POLICY": str(policy_path), "DIRENG_REPLAY": "1",
                           "DIRENG_RECORDED_RESPONSES": str(recorded)})
    assert replay.digests() == run.digests() and replay.kpis == run.kpis
    assert (replay.run_dir / "provider_responses" / "001.json").read_bytes() == (recorded / "001.json").read_bytes()


# -- code-impl ---------------------------------------------------------------------------------

GOOD_PATCH = '''\
diff --git a/inventory/report.py b/inventory/report.py
--- a/inventory/report.py
+++ b/inventory/report.py
@@ -10,5 +10,6 @@ def format_money(amount):
 
 def legacy_format(amount):
+    """Deprecated: use format_money."""
     return "USD " + str(amount)
 
 
diff --git a/inventory/units.py b/inventory/units.py
new file mode 100644
--- /dev/null
+++ b/inventory/units.py
@@ -0,0 +1,5 @@
+"""Units of measure."""
+
+
+def grams(kg):
+    return kg * 1000
'''

BREAKING_PATCH = '''\
diff --git a/inventory/pricing.py b/inventory/pricing.py
--- a/inventory/pricing.py
+++ b/inventory/pricing.py
@@ -1,5 +1,7 @@
 """Prices and discounts."""
 
+import os
+
 DISCOUNTS = {"clearance": 0.5, "seasonal": 0.2}
 
 
@@ -14,4 +16,4 @@ def price_of(item):
 
     if not isinstance(item, Item):
         raise TypeError("price_of() needs an Item")
-    return item.price * (1 - discount(item.category))
+    return item.price * (1 - 2 * discount(item.category))
'''

STALE_PATCH = '''\
diff --git a/inventory/report.py b/inventory/report.py
--- a/inventory/report.py
+++ b/inventory/report.py
@@ -1,3 +1,3 @@
-"""Reports in plain text, as they were long ago."""
+"""Plain-text reports."""
 
 from .core import total_value
'''


def test_code_impl_applies_a_good_patch_in_a_worktree_and_passes_its_gates(lane_repo):
    from direng_kernel.pas.gates import load_gates

    before = tree_state(lane_repo)
    run = run_lane("code-impl", lane_repo, {"patch": GOOD_PATCH})
    assert tree_state(lane_repo) == before  # the user's tree, status and worktree list untouched
    assert run.kpis["tests_passed"] == 2 and run.kpis["tests_failed"] == 0
    assert run.kpis["files_changed"] == 2 and run.kpis["lines_added"] == 6 and run.kpis["lines_deleted"] == 0
    assert run.kpis["lint_errors"] == 0
    assert load_gates("code-impl").evaluate(run.kpis).passed and run.state == "succeeded"
    patch = run.text("change.patch")
    assert "+++ b/inventory/units.py" in patch and '+    """Deprecated: use format_money."""' in patch
    assert "2 passed" in run.text("tests.txt")
    assert not any(p.name.startswith("worktree") for p in run.run_dir.iterdir())  # removed at the end
    argvs = [c["argv"] for c in run.commands]
    assert argvs[0][:4] == ["git", "worktree", "add", "--detach"] and argvs[-1][:4] == ["git", "worktree", "remove", "--force"]
    assert any(a[1:3] == ["-m", "pytest"] for a in argvs)


def test_code_impl_a_patch_that_breaks_a_test_fails_the_gate(lane_repo):
    from direng_kernel.pas.gates import load_gates

    before = tree_state(lane_repo)
    run = run_lane("code-impl", lane_repo, {"patch": BREAKING_PATCH})
    assert tree_state(lane_repo) == before
    assert run.kpis["tests_failed"] == 1 and run.kpis["tests_passed"] == 1 and run.kpis["files_changed"] == 1
    assert "test_total_value_applies_discounts" in run.text("tests.txt")
    # pyflakes is a test dependency, so the lint step runs: the unused `import os` is a finding.
    assert run.kpis.get("lint_skipped", 0) == 0
    assert run.kpis["lint_errors"] == 1 and "'os' imported but unused" in run.text("lint.txt")
    verdict = load_gates("code-impl").evaluate(run.kpis)
    assert not verdict.passed and "tests_failed == 0: got tests_failed = 1" in verdict.failures
    assert run.state == "failed" and run.error == "quality gate failed: " + "; ".join(verdict.failures)


def test_code_impl_a_patch_that_does_not_apply_fails_clearly(lane_repo):
    before = tree_state(lane_repo)
    with pytest.raises(LaneFailed) as err:
        run_lane("code-impl", lane_repo, {"patch": STALE_PATCH})
    failed = err.value.run
    assert failed.error.startswith("LaneError: ") and "the patch does not apply to HEAD" in failed.error
    assert tree_state(lane_repo) == before
    assert not any(p.name.startswith("worktree") for p in failed.run_dir.iterdir())
    assert failed.commands[-1]["argv"][:3] == ["git", "worktree", "remove"]
    assert failed.kpis == {}

    with pytest.raises(LaneFailed, match="code-impl needs a change"):
        run_lane("code-impl", lane_repo)  # no patch and no model
    assert tree_state(lane_repo) == before
    assert subprocess.run(["git", "-C", str(lane_repo), "worktree", "list"], capture_output=True,
                          text=True).stdout.count("\n") == 1


def test_code_impl_asks_the_lanes_model_for_a_patch_when_none_is_given(tmp_path, lane_repo):
    from fake_providers import FakeModelServer, FakeReply

    with FakeModelServer() as server:
        policy = {"version": 1,
                  "providers": {"local": {"type": "local", "external": False},
                                "fake": {"type": "openai", "base_url": server.url + "/v1", "external": False}},
                  "lanes": {"Code-Impl": {"primary": {"provider": "fake", "model": "coder"}}}}
        policy_path = tmp_path / "policy.json"
        policy_path.write_text(json.dumps(policy))
        server.reply(FakeReply(content="Here it is:\n```diff\n" + GOOD_PATCH + "```\n"))
        run = run_lane("code-impl", lane_repo,
                       {"instructions": "document legacy_format as deprecated and add a grams() helper"},
                       env={"DIRENG_POLICY": str(policy_path)})
        prompt = server.requests[0].body["messages"][-1]["content"]
    assert "document legacy_format as deprecated" in prompt and "inventory/report.py" in prompt
    assert run.kpis["files_changed"] == 2 and run.kpis["tests_failed"] == 0
    assert "patch written by the lane's model" in run.events
    assert [p.name for p in (run.run_dir / "provider_responses").iterdir()] == ["001.json"]


GPL_PATCH = """diff --git a/inventory/vendored.py b/inventory/vendored.py
new file mode 100644
--- /dev/null
+++ b/inventory/vendored.py
@@ -0,0 +1,5 @@
+# SPDX-License-Identifier: GPL-3.0-only
+
+
+def vendored_helper():
+    return 42
"""


def test_code_impl_licence_gate_refuses_forbidden_licences(fresh_repo):
    """Commits a licence policy: into a repository of its own, so no other test sees it."""
    from direng_kernel.pas.gates import load_gates

    (fresh_repo / ".direng-licenses.yaml").write_text("forbidden: ['GPL-*', 'AGPL-*']\n")
    commit_all(fresh_repo, "licence policy")
    run = run_lane("code-impl", fresh_repo, {"patch": GPL_PATCH})
    assert run.kpis["license_violations"] == 1 and run.kpis["tests_failed"] == 0
    verdict = load_gates("code-impl").evaluate(run.kpis)
    assert not verdict.passed and any("license_violations" in f for f in verdict.failures)
    assert run.state == "failed" and run.error == "quality gate failed: " + "; ".join(verdict.failures)
    assert "inventory/vendored.py:1 GPL-3.0-only" in run.text("licenses.txt")
    ok = run_lane("code-impl", fresh_repo, {"patch": GOOD_PATCH})
    assert ok.kpis["license_violations"] == 0 and load_gates("code-impl").evaluate(ok.kpis).passed
    assert ok.state == "succeeded"
