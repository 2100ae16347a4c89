"""DirEng as an MCP server, driven by the official SDK's own client.

* In process: the SDK `Client` connected to `build_server` on a real engine over the indexed
  sample repository — the tool table, scopes (what is listed, what is refused and why), and
  bad arguments as MCP error results, never crashes.
* Over stdio: `python -m direng_kernel.cli.main mcp --root ROOT` in a subprocess, as Claude Code
  or Codex would start it: list the tools, search, check that a citation points at the real
  `charge_card` definition, read the cited range back; `--scopes` hides the task tools.
* Over HTTP: a real `jupyter server` with the extension (one per module) at `/direng/mcp`, with
  DirEng tokens minted here (the server shares this session's keys directory): the tool list
  follows the token's scopes, a token without `index:read` (or no credentials) is the REST
  API's 403, and Jupyter's own token gets every tool.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import anyio
import pytest

from conftest import make_repo, run_cli
from direng_kernel.mcp.tools import TOOLS, Caller
from direng_kernel.security import audit
from direng_kernel.security.scopes import ALL_SCOPES, KERNEL_SCOPES
from direng_kernel.security.tokens import current_username, mint

pytestmark = pytest.mark.timeout(240)

INDEX_TOOLS = {"search", "graph", "read_range", "repo_map", "status"}
TASK_TOOLS = {"task_new", "task_estimate", "task_approve", "task_status"}
CITATION = re.compile(r"^(?P<path>[^:]+):(?:cell (?P<cell>\d+):)?(?P<start>\d+)-(?P<end>\d+)$")


# -- fixtures ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A git copy of the sample repository, indexed (static vectors: no MiniLM pass needed)."""
    from direng_kernel.workbench import Workbench

    path = make_repo(tmp_path_factory.mktemp("mcp") / "repo")
    wb = Workbench(path)
    wb.index()
    wb.close()
    return path


@pytest.fixture(scope="module")
def engine(root):
    from direng_kernel.engine import Engine

    eng = Engine(root)
    yield eng
    eng.stop()


def in_process(engine, scopes=ALL_SCOPES):
    """An SDK client connected in process to DirEng's MCP server for a caller with `scopes`."""
    from mcp import Client

    from direng_kernel.mcp.server import build_server

    return Client(build_server(Caller(client=engine, scopes=frozenset(scopes))))


def run(fn, *args):
    return anyio.run(fn, *args)


def error_of(result) -> dict:
    assert result.is_error, result
    return json.loads(result.content[0].text)


def check_charge_card_citation(root: Path, hits: list[dict]) -> tuple[str, int, int]:
    """The `charge_card` hit cites its real definition: (path, start, end)."""
    hit = next(h for h in hits if h["symbol"] == "charge_card")
    match = CITATION.match(hit["citation"])
    assert match and match["cell"] is None, hit
    path, start, end = match["path"], int(match["start"]), int(match["end"])
    assert (path, start, end) == (hit["path"], hit["start_line"], hit["end_line"]) == ("shop/payment.py", start, end)
    lines = (root / path).read_text().splitlines()
    assert lines[start - 1].lstrip().startswith("def charge_card("), lines[start - 1]
    assert start <= end <= len(lines)
    return path, start, end


# -- the tool table ----------------------------------------------------------------------------------

def test_every_tool_has_schemas_and_known_scopes():
    assert {t.name for t in TOOLS} == INDEX_TOOLS | TASK_TOOLS
    for tool in TOOLS:
        assert tool.input_schema["type"] == "object" and tool.output_schema["type"] == "object", tool.name
        assert tool.input_schema.get("additionalProperties") is False, tool.name  # misspelt arguments fail
        assert set(tool.scopes) <= set(ALL_SCOPES) and tool.scopes, tool.name
        assert ("tasks:write" in tool.scopes) == (tool.name in TASK_TOOLS)
    by_name = {t.name: t for t in TOOLS}
    # the REST API's scope of the same operation comes with it: MCP is no way around it
    assert set(by_name["task_approve"].scopes) == {"tasks:write", "runs:execute"}
    assert set(by_name["task_status"].scopes) == {"tasks:write", "tasks:read"}
    assert by_name["search"].input_schema["properties"]["k"]["maximum"] == 200


# -- in process: scopes and bad arguments ---------------------------------------------------------

def test_in_process_search_graph_map_status(engine, root):
    async def go():
        async with in_process(engine) as client:
            listed = {t.name: t for t in (await client.list_tools()).tools}
            assert set(listed) == INDEX_TOOLS | TASK_TOOLS
            assert listed["search"].annotations.read_only_hint is True
            assert listed["task_new"].annotations.read_only_hint is False

            found = await client.call_tool("search", {"query": "charge the card", "k": 5, "mode": "bm25"})
            assert not found.is_error
            assert json.loads(found.content[0].text) == found.structured_content  # text for older clients
            check_charge_card_citation(root, found.structured_content["hits"])

            graph = await client.call_tool("graph", {"symbol": "charge_card", "direction": "callers"})
            assert not graph.is_error
            names = {n["name"] for n in graph.structured_content["nodes"]}
            assert "checkout" in names, names

            outline = await client.call_tool("repo_map", {"tokens": 128, "focus": ["shop/payment.py"]})
            assert not outline.is_error and "payment" in outline.structured_content["map"]

            status = await client.call_tool("status", {})
            assert not status.is_error and status.structured_content["files"] > 0
            assert Path(status.structured_content["root"]) == root.resolve()

    run(go)


def test_bad_arguments_are_mcp_errors_not_crashes(engine):
    from mcp.shared.exceptions import MCPError

    async def go():
        async with in_process(engine) as client:
            err = error_of(await client.call_tool("search", {"query": "card", "k": 0}))
            assert err["code"] == "bad_arguments" and "k" in err["message"]
            err = error_of(await client.call_tool("search", {"query": "card", "k": 201}))
            assert err["code"] == "bad_arguments"
            err = error_of(await client.call_tool("search", {"query": "card", "mode": "telepathy"}))
            assert err["code"] == "bad_arguments" and "mode" in err["message"]
            err = error_of(await client.call_tool("search", {"query": "card", "kk": 3}))  # misspelt
            assert err["code"] == "bad_arguments" and "kk" in err["message"]
            err = error_of(await client.call_tool("graph", {"symbol": "charge_cardd"}))
            assert err["code"] == "unknown_symbol" and "charge_card" in err["suggestions"]
            for path in ("../outside.py", "/etc/passwd", "shop/../../x"):
                err = error_of(await client.call_tool("read_range", {"path": path}))
                assert "path" in err["message"] and err["code"] == "tool", err
            err = error_of(await client.call_tool("read_range", {"path": "shop/payment.py", "start": 9, "end": 3}))
            assert err["code"] == "bad_arguments"
            err = error_of(await client.call_tool("read_range", {"path": "shop/payment.py", "start": 100000}))
            assert "no line 100000" in err["message"]
            err = error_of(await client.call_tool("task_status", {"task_id": "task-nope"}))
            assert err["code"].endswith("not_found"), err
            with pytest.raises(MCPError, match="unknown tool 'nope'"):
                await client.call_tool("nope", {})
            # and the server is still there
            assert not (await client.call_tool("status", {})).is_error

    run(go)


def test_scopes_decide_what_is_listed_and_what_is_refused(engine):
    async def go():
        async with in_process(engine, ["index:read"]) as client:
            assert {t.name for t in (await client.list_tools()).tools} == INDEX_TOOLS
            err = error_of(await client.call_tool("task_new", {"title": "not allowed"}))
            assert err["code"] == "insufficient_scope" and err["missing_scope"] == "tasks:write"
            assert "tasks:write" in err["message"]
        async with in_process(engine, ["index:read", "tasks:write"]) as client:
            listed = {t.name for t in (await client.list_tools()).tools}
            assert listed == INDEX_TOOLS | {"task_new", "task_estimate"}
            err = error_of(await client.call_tool("task_approve", {"task_id": "whatever"}))
            assert err["missing_scope"] == "runs:execute"  # approving runs code, as over REST
        async with in_process(engine, ["tasks:write"]) as client:
            err = error_of(await client.call_tool("search", {"query": "card"}))
            assert err["missing_scope"] == "index:read"

    before = len(audit.read_records())
    run(go)
    # each refusal is audited like a REST 403: who, which tool, which scope
    denied = [r for r in audit.read_records()[before:] if r["event"] == "auth.denied"]
    assert {(r["data"]["tool"], r["data"]["scope"]) for r in denied} == {
        ("task_new", "tasks:write"), ("task_approve", "runs:execute"), ("search", "index:read")}
    assert all(r["data"]["transport"] == "mcp" and r["data"]["reason"] == "missing_scope" for r in denied)


def test_task_tools_create_estimate_approve(engine):
    async def go():
        async with in_process(engine, KERNEL_SCOPES) as client:
            made = await client.call_tool("task_new", {"title": "map the payment module", "lane": "graph-ops",
                                                       "idempotency_key": "mcp-test-1"})
            assert not made.is_error, made.content[0].text
            task = made.structured_content
            assert task["state"] == "new" and task["lane"] == "graph-ops"
            again = await client.call_tool("task_new", {"title": "map the payment module", "lane": "graph-ops",
                                                        "idempotency_key": "mcp-test-1"})
            assert again.structured_content["id"] == task["id"]  # the idempotency key holds
            estimated = await client.call_tool("task_estimate", {"task_id": task["id"]})
            assert not estimated.is_error and estimated.structured_content["estimate"]["lane"] == "graph-ops"
            approved = await client.call_tool("task_approve", {"task_id": task["id"]})
            assert not approved.is_error and approved.structured_content["state"] == "approved"
            status = await client.call_tool("task_status", {"task_id": task["id"]})
            assert status.structured_content["task"]["state"] == "approved"
            assert [e["seq"] for e in status.structured_content["events"]] == sorted(
                e["seq"] for e in status.structured_content["events"])
            err = error_of(await client.call_tool("task_approve", {"task_id": task["id"]}))  # not twice
            assert err["message"]

    run(go)


# -- over stdio: `direng mcp` -----------------------------------------------------------------------------

def stdio_client(root: Path, errlog, *extra: str):
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=sys.executable, args=["-m", "direng_kernel.cli.main", "mcp", "--root",
                                                                 str(root), *extra],
                                   env=dict(os.environ), cwd=str(root))
    from mcp.client.stdio import stdio_client as transport

    return Client(transport(params, errlog=errlog), read_timeout_seconds=120)


@pytest.mark.e2e("direng mcp")
def test_stdio_search_cites_a_real_symbol_and_reads_it(root, tmp_path):
    errlog = open(tmp_path / "stderr.txt", "w+")

    async def go():
        async with stdio_client(root, errlog) as client:
            assert client.server_info.name == "direng"
            assert {t.name for t in (await client.list_tools()).tools} == INDEX_TOOLS | TASK_TOOLS
            found = await client.call_tool("search", {"query": "where is the customer's card charged?", "k": 5})
            assert not found.is_error, found.content[0].text
            path, start, end = check_charge_card_citation(root, found.structured_content["hits"])

            read = await client.call_tool("read_range", {"path": path, "start": start, "end": end})
            assert not read.is_error, read.content[0].text
            data = read.structured_content
            assert data["citation"] == f"{path}:{start}-{end}"
            expected = (root / path).read_text().splitlines()[start - 1:end]
            assert data["text"].splitlines() == expected and "def charge_card(" in data["text"]

            err = error_of(await client.call_tool("graph", {"symbol": "no_such_symbol_anywhere"}))
            assert err["code"] == "unknown_symbol"

    try:
        run(go)
    finally:
        errlog.seek(0)
        log = errlog.read()
        errlog.close()
    assert "Traceback" not in log, log


@pytest.mark.e2e("direng mcp")
def test_stdio_scopes_restrict_the_tools_and_watch_keeps_the_index_fresh(tmp_path):
    """`--scopes` hides and refuses the task tools (the refusal audited); `--watch` runs the refresh
    daemon, so a function saved while the server runs is found without re-indexing."""
    from direng_kernel.workbench import Workbench

    fresh = make_repo(tmp_path / "repo")
    wb = Workbench(fresh)
    wb.index()
    wb.close()
    errlog = open(tmp_path / "stderr.txt", "w+")
    before = len(audit.read_records())

    async def go():
        async with stdio_client(fresh, errlog, "--scopes", "index:read", "--watch") as client:
            assert {t.name for t in (await client.list_tools()).tools} == INDEX_TOOLS
            err = error_of(await client.call_tool("task_new", {"title": "refused"}))
            assert err["missing_scope"] == "tasks:write"
            (fresh / "vouchers.py").write_text(
                'def issue_goodwill_voucher(customer_id, cents):\n'
                '    """Give a customer a goodwill voucher worth `cents`."""\n'
                '    return {"customer": customer_id, "voucher_cents": cents}\n')
            deadline = time.monotonic() + 90
            while True:
                found = await client.call_tool("search", {"query": "goodwill voucher for a customer", "k": 5})
                hits = found.structured_content["hits"]
                if any(h["path"] == "vouchers.py" for h in hits):
                    break
                assert time.monotonic() < deadline, f"the saved file never reached the index: {hits}"
                await anyio.sleep(0.5)

    try:
        run(go)
    finally:
        errlog.close()
    denied = [r for r in audit.read_records()[before:] if r["data"].get("transport") == "mcp"]
    assert [(r["event"], r["data"]["tool"], r["data"]["channel"]) for r in denied] == [
        ("auth.denied", "task_new", "stdio")]


def test_stdio_bad_options_are_one_line(tmp_path):
    res = run_cli("mcp", "--root", str(tmp_path / "missing"))
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.strip().count("\n") == 0 and "does not exist" in res.stderr
    res = run_cli("mcp", "--root", str(tmp_path), "--scopes", "index:reed")
    assert res.returncode == 1 and res.stdout == "" and "unknown scope 'index:reed'" in res.stderr


# -- over HTTP: /direng/mcp on a real jupyter server ----------------------------------------------------------

USER = current_username()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from test_server import running_server

    with running_server(tmp_path_factory.mktemp("mcp-server"), "--DirEngExtension.watch=False",
                        "--DirEngExtension.run_tasks=False") as srv:
        yield srv


def token(scopes) -> str:
    return mint(USER, list(scopes), ttl_s=600)


def http_client(server, auth: str, mode: str = "auto"):
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(headers={"Authorization": auth}, timeout=httpx2.Timeout(60, read=120))
    return Client(streamable_http_client(f"{server.url}/direng/mcp", http_client=http), mode=mode)


def raw_post(server, auth: str | None, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(f"{server.url}/direng/mcp", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Accept": "application/json, text/event-stream"})
    if auth is not None:
        req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_http_with_a_scoped_token(server, mode):
    async def go():
        async with http_client(server, f"Bearer {token(KERNEL_SCOPES)}", mode) as client:
            # "auto" speaks the 2026-07-28 protocol (one self-contained POST per request), "legacy" the
            # initialize handshake of earlier revisions (what most clients speak today): both are served
            assert (client.protocol_version >= "2026") == (mode == "auto"), client.protocol_version
            assert {t.name for t in (await client.list_tools()).tools} == INDEX_TOOLS | TASK_TOOLS
            found = await client.call_tool("search", {"query": "charge card", "k": 5, "mode": "bm25"})
            assert not found.is_error, found.content[0].text
            path, start, end = check_charge_card_citation(server.root, found.structured_content["hits"])
            read = await client.call_tool("read_range", {"path": path, "start": start, "end": end})
            assert "def charge_card(" in read.structured_content["text"]
            err = error_of(await client.call_tool("search", {"query": "card", "k": 1000}))
            assert err["code"] == "bad_arguments"

    run(go)


def test_http_without_tasks_write_has_no_task_tools(server):
    async def go():
        async with http_client(server, f"Bearer {token(['index:read', 'tasks:read'])}") as client:
            assert {t.name for t in (await client.list_tools()).tools} == INDEX_TOOLS
            err = error_of(await client.call_tool("task_new", {"title": "refused over HTTP"}))
            assert err["code"] == "insufficient_scope" and err["missing_scope"] == "tasks:write"
            err = error_of(await client.call_tool("task_status", {"task_id": "x"}))
            assert err["missing_scope"] == "tasks:write"

    before = len(audit.read_records())
    run(go)
    denied = [r["data"] for r in audit.read_records()[before:]
              if r["event"] == "auth.denied" and r["data"].get("transport") == "mcp"]
    assert {d["tool"] for d in denied} == {"task_new", "task_status"}, denied
    assert all(r["actor"] == USER for r in audit.read_records()[before:] if r["data"].get("transport") == "mcp")
    assert all(d["channel"] == "http" and d["client"] == "127.0.0.1" and d["jti"] and d["kid"] for d in denied)
    status, data = server.get("tasks")  # the refused create created nothing
    assert status == 200 and not any(t["title"] == "refused over HTTP" for t in data["tasks"])


def test_http_without_index_read_is_refused(server):
    ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    status, data = raw_post(server, f"Bearer {token(['tasks:write', 'tasks:read'])}", ping)
    assert status == 403 and data["code"] == "insufficient_scope" and data["missing_scope"] == "index:read", data
    status, data = raw_post(server, None, ping)
    assert status == 403, data
    status, data = raw_post(server, "Bearer not-a-jwt", ping)
    assert status == 401 and data["code"] == "invalid_token", data


def test_http_is_stateless(server):
    """No session: a GET event stream or a DELETE has nothing to act on — 405, as the spec allows."""
    auth = f"Bearer {token(['index:read'])}"
    for method in ("GET", "DELETE"):
        req = urllib.request.Request(f"{server.url}/direng/mcp", method=method,
                                     headers={"Authorization": auth, "Accept": "text/event-stream"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=30)
        assert info.value.code == 405 and info.value.headers["Allow"] == "POST"
        assert json.loads(info.value.read())["code"] == "method_not_allowed"
    # a plain JSON-RPC POST gets one JSON reply, and no session id
    req = urllib.request.Request(
        f"{server.url}/direng/mcp", method="POST",
        data=json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}}).encode(),
        headers={"Authorization": auth, "Content-Type": "application/json",
                 "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.headers["Content-Type"].startswith("application/json")
        assert "Mcp-Session-Id" not in resp.headers
        reply = json.loads(resp.read())
    assert reply["id"] == 7 and {t["name"] for t in reply["result"]["tools"]} == INDEX_TOOLS


def test_http_with_jupyters_own_token_gets_every_tool(server):
    async def go():
        async with http_client(server, f"token {server.token}") as client:
            assert {t.name for t in (await client.list_tools()).tools} == INDEX_TOOLS | TASK_TOOLS
            made = await client.call_tool("task_new", {"title": "from the MCP endpoint", "lane": "graph-ops"})
            assert not made.is_error and made.structured_content["state"] == "new"

    run(go)
