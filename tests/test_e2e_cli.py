"""End to end through the real `direng` entry point: every command of README's CLI table, each
run as a subprocess (`python -m direng_kernel.cli.main`, what the `direng` script calls) on real
stores, with the behaviour its row promises checked on the output.

Shared, module-scoped: the sample repository indexed once (`cli_repo`), and a repository where
two real papermill lane runs (the quick test lane in tests/fixtures/test_lanes; one of them a
rehearsal) were made through the CLI (`history`). MiniLM (`index --dense`) runs only on a
two-file repository. A replay that re-runs a lane is test_delegation's (CLI) and
test_e2e_rest's (REST); here `replay --dry-run` only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import FIXTURES, make_repo

pytestmark = pytest.mark.timeout(300)

LANES_ENV = {"DIRENG_LANES_PATH": str(FIXTURES / "test_lanes")}
EXAMPLE_POLICY = Path(__file__).resolve().parents[1] / "policy" / "model_broker_example.json"


def direng(*args: str, env: dict | None = None, input: str | None = None, cwd: Path | None = None,
           timeout: float = 180) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess; `env` is added to this process's environment."""
    return subprocess.run([sys.executable, "-m", "direng_kernel.cli.main", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, input=input, cwd=cwd, timeout=timeout)


def ok_json(*args: str, **kw):
    proc = direng(*args, "--json", **kw)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0, proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def cli_repo(tmp_path_factory) -> Path:
    root = make_repo(tmp_path_factory.mktemp("e2e-cli") / "repo")
    proc = direng("index", str(root))
    assert proc.returncode == 0, proc.stderr
    return root


# -- index, status ---------------------------------------------------------------------------------

LONG_FUNCTION = "\n".join(["def long_routine(x):", '    """Add the numbers one to a hundred, one line each."""']
                          + [f"    x = x + {i}" for i in range(1, 101)] + ["    return x", ""])


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory) -> Path:
    """Two files, no git: one short function and one of 103 lines."""
    root = tmp_path_factory.mktemp("e2e-tiny") / "tiny"
    root.mkdir()
    (root / "billing.py").write_text('def charge_card(number: str, cents: int) -> str:\n'
                                     '    """Charge a credit card through the payment gateway."""\n'
                                     '    return f"txn-{number[-4:]}-{cents}"\n')
    (root / "long.py").write_text(LONG_FUNCTION)
    return root


@pytest.mark.slow  # --dense loads MiniLM in the subprocess
@pytest.mark.e2e("direng index", "direng status")
def test_index_store_option_and_env_and_dense(tiny_repo, tmp_path):
    root = str(tiny_repo)
    # --store puts the whole index there, not in ROOT/.direng
    by_option = tmp_path / "by-option"
    report = ok_json("index", root, "--store", str(by_option))
    assert report["added"] == 2 and (by_option / "index.sqlite3").is_file()
    assert not (tiny_repo / ".direng").exists()
    st = ok_json("status", "--root", root, "--store", str(by_option))
    assert Path(st["store"]) == by_option.resolve() and st["files"] == 2 and st["chunks"] > 0
    assert st["dense_chunks"] == 0  # without --dense, MiniLM vectors are left to the watcher
    assert "not indexed yet" in one_error_line(direng("search", "charge", "--root", root))  # not in ROOT/.direng
    # DIRENG_STORE does the same for every command; --dense computes every MiniLM vector now
    by_env = {"DIRENG_STORE": str(tmp_path / "by-env")}
    report = ok_json("index", root, "--dense", env=by_env)
    assert report["added"] == 2 and (tmp_path / "by-env" / "index.sqlite3").is_file()
    st = ok_json("status", "--root", root, env=by_env)
    assert Path(st["store"]) == (tmp_path / "by-env").resolve()
    assert st["chunks"] > 0 and st["dense_chunks"] == st["chunks"]
    assert (tmp_path / "by-env" / "chroma").is_dir()  # the MiniLM vectors' collection
    hits = ok_json("search", "charge card", "--root", root, "--mode", "bm25", "-k", "3", env=by_env)
    assert hits[0]["path"] == "billing.py"  # search reads the DIRENG_STORE index too
    assert not (tiny_repo / ".direng").exists()


@pytest.mark.e2e("direng index", "direng status")
def test_chunk_lines_setting_splits_long_symbols(tiny_repo, tmp_path):
    root = str(tiny_repo)
    ok_json("index", root, "--store", str(tmp_path / "s60"))  # the default: 60 lines
    default = ok_json("status", "--root", root, "--store", str(tmp_path / "s60"))
    ok_json("index", root, "--store", str(tmp_path / "s20"), env={"DIRENG_CHUNK_LINES": "20"})
    small = ok_json("status", "--root", root, "--store", str(tmp_path / "s20"))
    assert default["symbols"] == small["symbols"] == 2
    # long_routine (103 lines) is cut into parts of at most N lines: 2 parts at 60, 6 at 20
    assert small["chunks"] - default["chunks"] == math.ceil(103 / 20) - math.ceil(103 / 60)


# -- map --------------------------------------------------------------------------------------------

def repo_map(root: Path, *args: str) -> str:
    proc = direng("map", "--root", str(root), *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.rstrip("\n")


def map_sections(text: str) -> dict[str, list[str]]:
    """The map's files, in order, each with its indented signature lines."""
    sections: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith(" "):
            sections[next(reversed(sections))].append(line.strip())
        elif line:
            sections[line.rstrip(":")] = []
    return sections


def map_files(text: str) -> list[str]:
    return list(map_sections(text))


@pytest.mark.e2e("direng map")
def test_map_fits_the_token_budget(cli_repo):
    full = repo_map(cli_repo, "--tokens", "100000")
    assert {"shop/payment.py", "shop/shipping.py", "shop/models.py", "svc/server.go"} <= set(map_files(full))
    assert "  10: def charge_card(card_number: str, amount_cents: int) -> str" in full.splitlines()
    sizes = {}
    for tokens in (40, 120, 250):
        text = repo_map(cli_repo, "--tokens", str(tokens))
        assert 0 < len(text) <= tokens * 4, (tokens, text)  # ~4 characters a token
        assert set(text.splitlines()) <= set(full.splitlines())  # the best-ranked part of the same map
        sizes[tokens] = len(text)
    assert sizes[40] < sizes[120] < sizes[250] < len(full)


@pytest.mark.e2e("direng map")
def test_map_focus_centres_the_ranking(cli_repo):
    plain = repo_map(cli_repo, "--tokens", "60")
    assert "shipping_cost" not in plain and "charge_card" not in plain
    # a symbol: its file comes first, the symbol among that file's first lines
    for symbol, path in (("charge_card", "shop/payment.py"), ("shipping_cost", "shop/shipping.py")):
        text = repo_map(cli_repo, "--tokens", "60", "--focus", symbol)
        first, lines = next(iter(map_sections(text).items()))
        assert first == path and any(symbol in ln for ln in lines), text
    # a file: its symbols come into the budget, next to what it imports
    text = repo_map(cli_repo, "--tokens", "60", "--focus", "shop/shipping.py")
    assert "shop/shipping.py" in map_files(text) and "shipping_cost" in text, text
    assert set(map_files(text)) <= {"shop/shipping.py", "shop/models.py", "shop/payment.py"}, text


# -- search, graph ------------------------------------------------------------------------------------

@pytest.mark.e2e("direng search")
def test_search_static_mode_uses_the_static_model_alone(cli_repo):
    hits = ok_json("search", "bill the customer's credit card", "--root", str(cli_repo), "--mode", "static", "-k", "5")
    assert 0 < len(hits) <= 5
    assert all(h["sources"] == ["static"] for h in hits), hits
    assert ("shop/payment.py", "charge_card") in [(h["path"], h["symbol"]) for h in hits[:3]]
    hybrid = ok_json("search", "bill the customer's credit card", "--root", str(cli_repo), "-k", "5")
    assert any(len(h["sources"]) > 1 for h in hybrid)  # hybrid fuses several retrievers


def graph_json(root: Path, *args: str) -> dict:
    return ok_json("graph", *args, "--root", str(root))


@pytest.mark.e2e("direng graph")
def test_graph_callees_and_depth(cli_repo):
    one = graph_json(cli_repo, "checkout_with_shipping", "--callees", "--depth", "1")
    ids = {n["id"] for n in one["nodes"]}
    assert one["center"] == "shop/shipping.py::checkout_with_shipping"
    assert {"shop/shipping.py::shipping_cost", "shop/payment.py::checkout"} <= ids
    assert "shop/payment.py::charge_card" not in ids
    assert all(e["source"] == one["center"] and e["kind"] == "calls" for e in one["edges"])
    two = graph_json(cli_repo, "checkout_with_shipping", "--callees", "--depth", "2")
    assert "shop/payment.py::charge_card" in {n["id"] for n in two["nodes"]}  # checkout → charge_card
    assert {"source": "shop/payment.py::checkout", "target": "shop/payment.py::charge_card"}.items() <= \
        next(e for e in two["edges"] if e["target"] == "shop/payment.py::charge_card").items()
    # callees only: checkout's caller is not among them, but is with --callers
    callees = {n["id"] for n in graph_json(cli_repo, "checkout", "--callees")["nodes"]}
    callers = {n["id"] for n in graph_json(cli_repo, "checkout", "--callers")["nodes"]}
    assert "shop/payment.py::charge_card" in callees and "shop/shipping.py::checkout_with_shipping" not in callees
    assert "shop/shipping.py::checkout_with_shipping" in callers and "shop/payment.py::charge_card" not in callers
    text = direng("graph", "checkout", "--callees", "--root", str(cli_repo)).stdout
    assert "-> [calls] charge_card shop/payment.py:10" in text and "<-" not in text


# -- policy ---------------------------------------------------------------------------------------------

@pytest.mark.e2e("direng policy validate")
def test_policy_validate(tmp_path):
    good = direng("policy", "validate", str(EXAMPLE_POLICY))
    assert good.returncode == 0 and "is a valid policy" in good.stdout, good.stderr
    data = json.loads(EXAMPLE_POLICY.read_text())
    data["lanes"]["chat"]["primary"]["provider"] = "ghost"
    bad_file = tmp_path / "bad.json"
    bad_file.write_text(json.dumps(data))
    bad = direng("policy", "validate", str(bad_file), "--json")
    assert bad.returncode == 1
    issues = json.loads(bad.stdout)
    assert [(i["pointer"], i["kind"]) for i in issues] == [("/lanes/chat/primary/provider", "semantic")]
    assert "unknown provider 'ghost'" in issues[0]["message"]


# -- tasks, runs, replay, calibration, artifacts ---------------------------------------------------------

@pytest.fixture(scope="module")
def lane_repo(tmp_path_factory) -> Path:
    return make_repo(tmp_path_factory.mktemp("e2e-lanes") / "repo")


def task_cmd(repo: Path, *args: str, timeout: float = 180):
    return ok_json("task", *args, "--root", str(repo), env=LANES_ENV, timeout=timeout)


def approved_task(repo: Path, *new_args: str) -> dict:
    task = task_cmd(repo, "new", *new_args)
    task_cmd(repo, "estimate", task["id"])
    return task_cmd(repo, "approve", task["id"])


@pytest.fixture(scope="module")
def history(lane_repo) -> dict:
    """Two real lane runs, each seen through by its own `direng task start` (run side by side):
    one calibrating, one a rehearsal."""
    normal = approved_task(lane_repo, "--title", "document the shop package", "--lane", "narrative",
                           "--param", "mode=quick")
    before = ok_json("plms", "calibration", "--root", str(lane_repo))
    rehearsal = approved_task(lane_repo, "--title", "document the shop package again", "--lane", "narrative",
                              "--param", "mode=quick", "--rehearsal")
    starts = [subprocess.Popen([sys.executable, "-m", "direng_kernel.cli.main", "task", "start", t["id"], "--json",
                                "--root", str(lane_repo)], env={**os.environ, **LANES_ENV},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for t in (normal, rehearsal)]
    done = []
    for proc in starts:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        done.append(json.loads(out))
    return {"before": before, "normal": done[0], "rehearsal": done[1]}


def lane_row(report: list[dict], lane: str = "narrative") -> dict:
    return next(r for r in report if r["lane"] == lane)


@pytest.mark.e2e("direng task new")
def test_task_new_brief_params_and_routing(lane_repo):
    task = task_cmd(lane_repo, "new", "--title", "tidy up the shop", "--brief", "find dead code in the shop package",
                    "--param", "mode=quick", "--param", "seconds=2", "--param", "flags=[1, 2]",
                    "--param", "label=two words")
    assert task["state"] == "new" and task["id"].startswith("task-")
    assert task["brief"] == "find dead code in the shop package"
    assert task["lane"] == "graph-ops"  # routed from the brief's wording, the title says nothing
    assert task["parameters"] == {"mode": "quick", "seconds": 2, "flags": [1, 2], "label": "two words"}
    shown = task_cmd(lane_repo, "status", task["id"])
    assert shown["parameters"] == task["parameters"] and shown["brief"] == task["brief"]
    bad = direng("task", "new", "--title", "x", "--param", "novalue", "--root", str(lane_repo), env=LANES_ENV)
    assert "expected KEY=VALUE" in one_error_line(bad)


@pytest.mark.slow
@pytest.mark.e2e("direng task new", "direng task estimate", "direng task approve", "direng task start",
                 "direng plms calibration", "direng runs")
def test_rehearsal_runs_are_left_out_of_calibration(lane_repo, history, tmp_path):
    assert history["normal"]["state"] == "succeeded" and history["rehearsal"]["state"] == "succeeded"
    assert history["normal"]["estimate"]["prior_only"] is True
    assert "no task store at" in one_error_line(direng("plms", "calibration", "--root", str(tmp_path)))
    assert lane_row(history["before"])["n"] == 0
    run_ids = ok_json("runs", "--root", str(lane_repo))
    assert {history["normal"]["run_id"], history["rehearsal"]["run_id"]} <= set(run_ids)
    report = ok_json("plms", "calibration", "--root", str(lane_repo))
    row = lane_row(report)
    assert row["n"] == 1  # the real run calibrates; the rehearsal (and any replay) does not
    assert row["scored"] == 0 and row["prior_only"] is True  # fewer runs than PLMS needs to leave its prior
    assert {r["lane"] for r in report} == {"code-impl", "code-api-design", "data-schema", "vector-ops",
                                           "graph-ops", "narrative"}
    table = direng("plms", "calibration", "--root", str(lane_repo))
    assert table.returncode == 0
    line = next(ln for ln in table.stdout.splitlines() if ln.startswith("narrative"))
    assert line.split()[1:3] == ["1", "0"] and "prior" in line
    text = direng("runs", "--root", str(lane_repo)).stdout
    assert history["normal"]["run_id"] in text and "succeeded" in text and "kpi.done" in text


@pytest.mark.slow
@pytest.mark.e2e("direng plms size")
def test_plms_size_reads_the_real_runs_and_explains_an_estimate(lane_repo, history, tmp_path):
    """The real run's sizes were measured at creation; with one calibrating run the lane stays on
    its prior, and the estimate says so."""
    report = ok_json("plms", "size", "--root", str(lane_repo), "--lane", "narrative", "--size", "repo_files=40")
    assert report["skipped"] == 0
    narrative = next(d for d in report["lanes"] if d["lane"] == "narrative")
    assert narrative["n"] == 1 and narrative["model"] == "lane" and narrative["scored"] == 0
    est = report["estimate"]
    assert est["lane"] == "narrative" and est["model"] == "lane" and est["prior_only"] is True
    assert est["explanation"].startswith("p90 ") and "prior (1 of 5 runs so far)" in est["explanation"]
    table = direng("plms", "size", "--root", str(lane_repo), "--lane", "narrative")
    assert table.returncode == 0 and table.stdout.split()[:5] == ["lane", "n", "scored", "model", "basis"]
    assert f"narrative: p50 {est['duration_p50_s']:.1f}s" in table.stdout
    assert "did you mean 'repo_lines'" in one_error_line(
        direng("plms", "size", "--root", str(lane_repo), "--lane", "narrative", "--size", "repo_line=3"))
    assert "unknown lane" in one_error_line(direng("plms", "size", "--root", str(lane_repo), "--lane", "narativ"))
    assert "no task store at" in one_error_line(direng("plms", "size", "--root", str(tmp_path)))


@pytest.mark.slow
@pytest.mark.e2e("direng replay")
def test_replay_dry_run_verifies_the_passport(lane_repo, history):
    run_id = history["normal"]["run_id"]
    dry = ok_json("replay", run_id, "--dry-run", "--root", str(lane_repo))
    assert dry["run_id"] == run_id and dry["match"] is True and dry["dry_run"] is True
    assert dry["replay_run_id"] is None  # nothing ran
    text = direng("replay", run_id, "--dry-run", "--root", str(lane_repo))
    assert text.returncode == 0 and "passport and artifacts verified" in text.stdout
    assert "no passport for run 'run-nope'" in one_error_line(direng("replay", "run-nope", "--root", str(lane_repo)))


@pytest.mark.slow
@pytest.mark.e2e("direng artifacts verify", "direng artifacts export")
def test_artifacts_verify_and_export(lane_repo, history, tmp_path):
    root = str(lane_repo)
    ok = direng("artifacts", "verify", "--root", root)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: "), ok.stdout + ok.stderr
    objects = sorted(p for p in (lane_repo / ".direng" / "artifacts" / "objects").rglob("*") if p.is_file())
    assert objects and f"ok: {len(objects)} artifacts verified" in ok.stdout
    assert ok_json("artifacts", "verify", "--root", root) == []
    # --all exports every object, named by its SHA-256, with a manifest
    out = tmp_path / "all"
    proc = direng("artifacts", "export", "--all", "--to", str(out), "--root", root)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())["artifacts"]
    assert len(manifest) == len(objects)
    for item in manifest:
        assert hashlib.sha256((out / item["file"]).read_bytes()).hexdigest() == item["sha256"]
    one = manifest[0]["sha256"]
    proc = direng("artifacts", "export", one, "--to", str(tmp_path / "one"), "--root", root)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == sorted([one, "manifest.json"])
    # a changed object is reported by its hash, exit 1 (restored afterwards: other tests read it)
    victim = next(p for p in objects if p.parent.name + p.name == one)
    original = victim.read_bytes()
    victim.chmod(0o644)
    try:
        victim.write_bytes(b"tampered")
        bad = direng("artifacts", "verify", "--root", root, "--json")
        assert bad.returncode == 1
        problems = json.loads(bad.stdout)
        assert any(p["kind"] == "corrupt" and one in p["path"] + p["message"] for p in problems), problems
    finally:
        victim.write_bytes(original)
        victim.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    assert direng("artifacts", "verify", "--root", root).returncode == 0


class LineReader(threading.Thread):
    """Collects a stream's lines as they come (a follower's live event log)."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.lines = stream, []

    def run(self) -> None:
        for line in self.stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in ln for ln in self.lines):
                return True
            if not self.is_alive():
                return False
            time.sleep(0.1)
        return False


@pytest.mark.slow
@pytest.mark.e2e("direng task cancel", "direng task status", "direng task list", "direng task start")
def test_cancel_stops_a_running_lane_while_status_follows(lane_repo):
    root = str(lane_repo)
    task = task_cmd(lane_repo, "new", "--title", "sleepy", "--lane", "narrative", "--param", "mode=sleep",
                    "--param", "seconds=18")  # under the test lane's 20 s limit: only a cancel ends it early
    task_cmd(lane_repo, "estimate", task["id"])
    task_cmd(lane_repo, "approve", task["id"])
    cli = [sys.executable, "-m", "direng_kernel.cli.main"]
    env = {**os.environ, **LANES_ENV}
    follower = subprocess.Popen([*cli, "task", "status", task["id"], "--follow", "--root", root], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    events = LineReader(follower.stderr)
    events.start()
    worker = subprocess.Popen([*cli, "task", "start", task["id"], "--root", root], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # --follow streams the live event log: the lane's own log line says it is inside its sleep
        assert events.wait_for("test lane in mode sleep", 120), events.lines
        assert follower.poll() is None and worker.poll() is None
        cancelled_at = time.monotonic()
        asked = task_cmd(lane_repo, "cancel", task["id"])
        assert asked["id"] == task["id"]
        follower.wait(60)
        took = time.monotonic() - cancelled_at
        worker_out, worker_err = worker.communicate(timeout=60)
        events.join(10)
    finally:
        for proc in (worker, follower):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    out = follower.stdout.read()
    assert follower.returncode == 0 and worker.returncode == 0, (events.lines, worker_err)
    assert out.startswith(f"{task['id']}  cancelled"), out  # the task line once it ended
    assert f"{task['id']}  cancelled" in worker_out
    assert any("cancel requested" in ln for ln in events.lines), events.lines
    assert ["state", "cancelled"] in [ln.split()[1:3] for ln in events.lines], events.lines
    assert took < 15, f"the lane was not stopped: the task ended {took:.1f}s after the cancel"
    status = task_cmd(lane_repo, "status", task["id"])
    assert status["state"] == "cancelled" and status["run_id"]
    # task list: every task of the store, newest first
    listed = ok_json("task", "list", "--root", root)
    ids = [t["id"] for t in listed]
    assert ids[0] == task["id"] and len(ids) == len(set(ids)) >= 2
    assert listed[0]["state"] == "cancelled"
    text = direng("task", "list", "--root", root).stdout
    assert [ln.split()[0] for ln in text.splitlines() if ln.startswith("task-")] == ids
    assert text.startswith(f"{task['id']}  cancelled")


# -- secrets, audit, scan, tokens and keys ------------------------------------------------------------------

@pytest.fixture
def own_security(tmp_path) -> dict:
    """A vault, audit log and keys directory of this test's own (the subprocesses get them)."""
    return {"DIRENG_VAULT_DIR": str(tmp_path / "vault"), "DIRENG_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
            "DIRENG_KEYS_DIR": str(tmp_path / "keys")}


@pytest.mark.e2e("direng secrets set", "direng secrets get", "direng secrets list", "direng secrets delete",
                 "direng audit verify")
def test_secrets_vault_round_trip_is_encrypted_and_audited(own_security):
    env = own_security
    value = "s3cr3t-" + os.urandom(8).hex()
    proc = direng("secrets", "set", "DEPLOY_KEY", input=value + "\n", env=env)  # from stdin, newline dropped
    assert proc.returncode == 0 and "stored secret DEPLOY_KEY" in proc.stderr, proc.stderr
    assert direng("secrets", "set", "OTHER", "--value", "x-1", env=env).returncode == 0
    listed = direng("secrets", "list", "--json", env=env)
    assert json.loads(listed.stdout) == ["DEPLOY_KEY", "OTHER"] and value not in listed.stdout
    assert direng("secrets", "list", env=env).stdout.splitlines() == ["DEPLOY_KEY", "OTHER"]
    got = direng("secrets", "get", "DEPLOY_KEY", env=env)
    assert got.returncode == 0 and got.stdout == value + "\n"
    vault_files = [p for p in Path(env["DIRENG_VAULT_DIR"]).rglob("*") if p.is_file()]
    assert vault_files and not any(value.encode() in p.read_bytes() for p in vault_files)  # encrypted at rest
    proc = direng("secrets", "delete", "DEPLOY_KEY", env=env)
    assert proc.returncode == 0 and "deleted secret DEPLOY_KEY" in proc.stderr
    assert "no secret named 'DEPLOY_KEY'" in one_error_line(direng("secrets", "get", "DEPLOY_KEY", env=env))
    assert direng("secrets", "list", "--json", env=env).stdout.strip() == '["OTHER"]'
    # every access is in the hash-chained audit log, never the value; `audit verify` checks the chain
    log = Path(env["DIRENG_AUDIT_LOG"])
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["event"] for r in records if r["data"].get("name") == "DEPLOY_KEY"][-3:] == \
        ["secret.access", "secret.delete", "secret.access"]
    assert value not in log.read_text()
    check = direng("audit", "verify", "--log", str(log), env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    lines = log.read_text().splitlines()
    forged = json.loads(lines[1])
    forged["actor"] = "mallory"
    lines[1] = json.dumps(forged)
    log.write_text("\n".join(lines) + "\n")
    tampered = direng("audit", "verify", "--log", str(log), env=env)
    assert tampered.returncode == 1 and "2" in tampered.stdout + tampered.stderr


AWS_KEY = "AKIAQ3EGRA7PLANTED7X"


@pytest.mark.e2e("direng scan")
def test_scan_reports_secrets_pii_and_licences(tmp_path):
    tree = tmp_path / "tree"
    (tree / "src").mkdir(parents=True)
    (tree / "src" / "settings.py").write_text(f'AWS_ACCESS_KEY_ID = "{AWS_KEY}"\n')
    (tree / "src" / "contact.py").write_text('def contact():\n    return "jane.doe@corp-mail.net"\n')
    (tree / "src" / "vendored.py").write_text("# SPDX-License-Identifier: GPL-3.0-only\ndef f():\n    pass\n")
    (tree / "src" / "clean.py").write_text("def clean():\n    return 1\n")
    proc = direng("scan", str(tree), "--json")
    assert proc.returncode == 0, proc.stderr  # no --fail-on: a report, exit 0
    report = json.loads(proc.stdout)
    assert report["files_scanned"] == 4 and report["secrets_checked"] is True
    found = {(f["category"], f["path"], f["line"]) for f in report["findings"]}
    assert {("secret", "src/settings.py", 1), ("pii", "src/contact.py", 2), ("license", "src/vendored.py", 1)} <= found
    assert not any(f["path"] == "src/clean.py" for f in report["findings"])
    assert AWS_KEY not in proc.stdout and "jane.doe@" not in proc.stdout  # never the values
    table = direng("scan", str(tree))
    assert "src/settings.py:1" in table.stdout and "4 files scanned" in table.stdout and AWS_KEY not in table.stdout
    for category, code in (("secret", 1), ("pii", 1), ("license", 0)):  # a licence blocks only by policy
        assert direng("scan", str(tree), "--fail-on", category).returncode == code, category
    policy = tmp_path / "licences.yaml"
    policy.write_text("forbidden: [GPL-3.0-only]\n")
    assert direng("scan", str(tree), "--fail-on", "license", "--license-policy", str(policy)).returncode == 1
    assert direng("scan", str(tree / "src" / "clean.py"), "--fail-on", "secret,pii,license").returncode == 0
    assert "unknown category 'viruses'" in one_error_line(direng("scan", str(tree), "--fail-on", "viruses"))


def inspect(token: str, *args: str, env: dict) -> tuple[int, dict]:
    proc = direng("token", "inspect", token, *args, env=env)
    return proc.returncode, json.loads(proc.stdout)


@pytest.mark.e2e("direng token mint", "direng token inspect", "direng keys rotate")
def test_tokens_mint_inspect_and_key_rotation(own_security):
    env = own_security
    minted = direng("token", "mint", "--scope", "index:read", "--scope", "tasks:read", "--ttl", "600", env=env)
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip().splitlines()[-1]  # the last line printed
    code, info = inspect(token, env=env)
    assert code == 0 and info["valid"] is True and info["reason"] is None
    assert info["header"]["alg"] == "RS256" and info["claims"]["scope"] == "index:read tasks:read"
    assert info["claims"]["exp"] - info["claims"]["iat"] == 600
    code, info = inspect(token, "--scope", "policy:admin", env=env)
    assert code == 1 and info["valid"] is False and "policy:admin" in info["reason"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    code, info = inspect(forged, env=env)
    assert code == 1 and info["reason"].startswith("invalid token:")
    old_kid = info["header"]["kid"]
    rotated = direng("keys", "rotate", env=env)
    assert rotated.returncode == 0, rotated.stderr
    new_kid = rotated.stdout.strip().splitlines()[-1]
    assert new_kid and new_kid != old_kid
    code, info = inspect(token, env=env)
    assert code == 0 and info["header"]["kid"] == old_kid  # signed by the old key, still valid until it expires
    fresh = direng("token", "mint", "--scope", "index:read", env=env).stdout.strip().splitlines()[-1]
    code, info = inspect(fresh, env=env)
    assert code == 0 and info["header"]["kid"] == new_kid
    jwks = json.loads(direng("keys", "jwks", env=env).stdout)
    assert {old_kid, new_kid} <= {k["kid"] for k in jwks["keys"]}
    other = {**env, "DIRENG_KEYS_DIR": env["DIRENG_KEYS_DIR"] + "-other"}
    code, info = inspect(token, env=other)  # another machine's keys do not verify it
    assert code == 1 and info["valid"] is False
