"""DirEng under a real JupyterHub: the documented example config, Hub custom scopes mapped onto
DirEng's eight, per-user servers and stores, a lane run headless in a user's server, restarts.

The fast tests read `docs/deploy/jupyterhub_config.py` with traitlets' own config loader and
decide Hub users' scopes with JupyterHub's own `check_scopes` (`server/hub.py`). The slow ones
start `jupyterhub` (tests/hub_server.py: configurable-http-proxy, `SimpleLocalProcessSpawner`,
`DummyAuthenticator`, loopback ports, everything in tmp) with two users, alice and bob, each
with a tiny git repository of their own, and call DirEng through the proxy at
`/user/NAME/direng/api/` with Hub tokens of chosen scopes, DirEng JWTs and a browser login.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from traitlets.config.loader import PyFileConfigLoader

from conftest import FIXTURES, MODEL_CACHE, git
from direng_kernel.models import SCOPES
from direng_kernel.security.scopes import HUB_CUSTOM_SCOPE_RE, from_hub_scope, hub_custom_scopes, hub_scope
from direng_kernel.security.tokens import mint
from direng_kernel.server.hub import UnknownHubScopeError, hub_granted_scopes
from hub_server import EXAMPLE_CONFIG, Hub

pytestmark = pytest.mark.timeout(300)

USERS = ("alice", "bob")
#: Each user's repository: one function whose name only that user's index knows.
REPOS = {
    "alice": {"greet.py": 'def alice_greeting(name):\n    """Greet a colleague by name."""\n    return f"hello {name}"\n',
              "main.py": "from greet import alice_greeting\n\n\ndef run():\n    return alice_greeting('bob')\n"},
    "bob": {"ledger.py": 'def bob_balance(entries):\n    """Sum the ledger entries."""\n    return sum(entries)\n',
            "main.py": "from ledger import bob_balance\n\n\ndef run():\n    return bob_balance([1, 2])\n"},
}
QUERY = {"alice": "greet a colleague", "bob": "sum the ledger entries"}
TARGET = {"alice": "greet.py", "bob": "ledger.py"}
WORK_SCOPES = ("index:read", "tasks:read", "tasks:write", "runs:execute")
#: A custom scope inside DirEng's namespace that is none of DirEng's scopes (the Hub allows it: an
#: admin defined it); alice holds it, so the Hub will put it in her tokens.
UNKNOWN = "custom:direng:index:admin"
EXTRA_CONFIG = f"""
c.JupyterHub.custom_scopes[{UNKNOWN!r}] = {{"description": "not a DirEng scope"}}
c.JupyterHub.load_roles = [*c.JupyterHub.load_roles,
                           {{"name": "odd-grant", "users": ["alice"], "scopes": [{UNKNOWN + "!user"!r}]}}]
"""


# -- the example config and the mapping (no Hub) ------------------------------------------------------

def test_the_example_config_defines_one_hub_scope_per_direng_scope():
    config = PyFileConfigLoader(EXAMPLE_CONFIG.name, path=str(EXAMPLE_CONFIG.parent)).load_config()
    custom = config.JupyterHub.custom_scopes
    assert set(custom) == {f"custom:direng:{scope}" for scope in SCOPES} and custom == hub_custom_scopes()
    assert all(HUB_CUSTOM_SCOPE_RE.match(name) for name in custom)
    assert "custom:direng:index:read" in custom and "custom:direng:tasks:write" in custom
    user_role = next(role for role in config.JupyterHub.load_roles if role["name"] == "user")
    assert {f"{hub_scope(s)}!user" for s in SCOPES} <= set(user_role["scopes"]) and "self" in user_role["scopes"]
    assert sorted(config.Spawner.oauth_client_allowed_scopes) == sorted(custom)  # the browser session's
    assert Path(config.ConfigurableHTTPProxy.command[0]).name == "configurable-http-proxy"
    assert Path(config.Spawner.cmd[0]).name == "jupyterhub-singleuser"


def test_hub_scopes_map_one_to_one():
    for scope in SCOPES:
        assert hub_scope(scope) == f"custom:direng:{scope}"
        assert from_hub_scope(hub_scope(scope)) == scope == from_hub_scope(hub_scope(scope) + "!user=alice")
    assert from_hub_scope("custom:direng:index-read") is None and from_hub_scope("read:users") is None


ALICE_HERE = {"access:servers!server=alice/", "access:servers!user=alice"}  # $JUPYTERHUB_OAUTH_ACCESS_SCOPES


def test_a_hub_user_holds_the_direng_scopes_granted_for_this_server():
    model = {"name": "alice", "scopes": [
        "access:servers!user=alice", "custom:direng:index:read!user=alice", "custom:direng:tasks:read!server=alice/",
        "custom:direng:runs:execute",  # unfiltered: on every server
        "custom:direng:policy:admin!user=bob", "custom:direng:tasks:write!server=alice/other",
        "custom:direng:runs:replay!group=admins",  # groups are not resolved on a single-user server
    ]}
    assert hub_granted_scopes(model, ALICE_HERE) == {"index:read", "tasks:read", "runs:execute"}
    assert hub_granted_scopes({"name": "alice", "scopes": ["access:servers!user=alice"]}, ALICE_HERE) == frozenset()
    assert hub_granted_scopes(model, set()) == frozenset()  # no access scopes: nothing is "here"


def test_an_unknown_direng_hub_scope_is_refused_whatever_its_filter():
    for odd in ("custom:direng:index:admin!user=alice", "custom:direng:index-read", "custom:direng:*!user=bob"):
        with pytest.raises(UnknownHubScopeError) as info:
            hub_granted_scopes({"name": "alice", "scopes": ["custom:direng:index:read", odd]}, ALICE_HERE)
        assert odd.split("!")[0] in str(info.value) and "custom:direng:index:read" in str(info.value)


# -- a real Hub -------------------------------------------------------------------------------------

def write_repo(root: Path, files: dict[str, str]) -> None:
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")


def scopes_for(user: str, *direng: str) -> list[str]:
    return [f"access:servers!user={user}", *(f"{hub_scope(s)}!user={user}" for s in direng)]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    work = tmp_path_factory.mktemp("hub")
    env = {"DIRENG_LANES_PATH": str(FIXTURES / "test_lanes"), "DIRENG_CACHE_DIR": str(MODEL_CACHE),
           "DIRENG_KERNEL_POOL": "0"}
    with Hub(work, server_env=env, server_args=("--DirEngExtension.watch=False",), extra_config=EXTRA_CONFIG) as hub:
        hub.tokens = {}
        for user in USERS:
            write_repo(hub.home(user) / "repo", REPOS[user])
            hub.add_user(user)
            hub.tokens[user] = {"reader": hub.token(user, scopes_for(user, "index:read")),
                                "plain": hub.token(user, scopes_for(user)),
                                "worker": hub.token(user, scopes_for(user, *WORK_SCOPES))}
        for user in USERS:  # both servers start at once
            hub.api("POST", f"users/{user}/server", expect=(201, 202))
        for user in USERS:
            hub.wait_server(user, ready=True, timeout=150)
            hub.wait_indexed(user, hub.tokens[user]["reader"])
        yield hub


def keys_dir(hub: Hub, user: str) -> Path:
    """Where `user`'s server keeps its signing keys: the default, under the user's own HOME."""
    return hub.home(user) / ".local" / "share" / "jupyter" / "direng" / "keys"


@pytest.mark.slow
@pytest.mark.parametrize("user", USERS)
def test_health_and_search_need_custom_direng_index_read(hub, user):
    tokens = hub.tokens[user]
    status, health = hub.call(user, "GET", "health", tokens["reader"])
    assert status == 200 and health["indexed"] is True, health
    assert Path(health["root"]) == (hub.home(user) / "repo").resolve()  # the user's own folder and store
    assert health["kernel_env"]["DIRENG_TOKEN_SET"] is True  # kernels keep their own narrow JWT
    status, hits = hub.call(user, "GET", f"search?q={QUERY[user]}&k=3", tokens["reader"])
    assert status == 200 and hits["hits"][0]["path"] == TARGET[user], hits
    other = TARGET["bob" if user == "alice" else "alice"]
    assert all(hit["path"] != other for hit in hits["hits"])  # one store per user

    for path in ("health", f"search?q={QUERY[user]}"):
        status, reply = hub.call(user, "GET", path, tokens["plain"])
        assert status == 403, reply
        assert reply["missing_scope"] == "index:read" and "custom:direng:index:read" in reply["message"], reply
    status, reply = hub.call(user, "POST", "tasks", tokens["reader"], body={"title": "x", "lane": "narrative"})
    assert status == 403 and reply["missing_scope"] == "tasks:write", reply
    assert hub.call(user, "GET", "health", None)[0] == 403  # no credentials at all


@pytest.mark.slow
def test_a_users_credentials_are_refused_on_another_users_server(hub):
    for token in hub.tokens["alice"].values():
        status, reply = hub.call("bob", "GET", "health", token)
        assert status == 403, reply  # JupyterHub's own access check: alice holds nothing on bob's server
    jwt = mint("alice", ["index:read"], ttl_s=300, keys_dir=keys_dir(hub, "alice"))
    assert hub.call("alice", "GET", "health", jwt, scheme="Bearer")[0] == 200
    status, reply = hub.call("bob", "GET", "health", jwt, scheme="Bearer")
    assert status == 401 and "invalid token" in reply["message"], reply  # bob's server has bob's keys


@pytest.mark.slow
def test_direng_tokens_keep_working_under_the_hub(hub):
    jwt = mint("bob", ["index:read"], ttl_s=300, keys_dir=keys_dir(hub, "bob"))
    status, hits = hub.call("bob", "GET", f"search?q={QUERY['bob']}", jwt, scheme="Bearer")
    assert status == 200 and hits["hits"][0]["path"] == TARGET["bob"], hits
    status, reply = hub.call("bob", "GET", "tasks", jwt, scheme="Bearer")
    assert status == 403 and reply["missing_scope"] == "tasks:read", reply
    assert "JupyterHub" not in reply["message"]  # a JWT's scopes come from its claim, not the Hub


@pytest.mark.slow
def test_a_hub_token_with_an_unknown_direng_scope_is_refused(hub):
    token = hub.token("alice", scopes_for("alice", "index:read") + [f"{UNKNOWN}!user=alice"])
    status, reply = hub.call("alice", "GET", "health", token)
    assert status == 403 and reply["code"] == "unknown_hub_scope", reply
    assert UNKNOWN in reply["message"] and reply["unknown_scopes"] == [UNKNOWN], reply


@pytest.mark.slow
def test_mcp_follows_the_hub_tokens_direng_scopes(hub):
    def tools(token: str) -> tuple[int, dict]:
        reply = hub.client.post(f"{hub.url}/user/alice/direng/mcp",
                                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
                                headers={"Authorization": f"token {token}", "MCP-Protocol-Version": "2025-11-25",
                                         "Accept": "application/json, text/event-stream"})
        return reply.status_code, reply.json()

    status, reply = tools(hub.tokens["alice"]["reader"])
    names = {tool["name"] for tool in reply["result"]["tools"]}
    assert status == 200 and "search" in names and "task_new" not in names, reply  # index:read only
    status, reply = tools(hub.tokens["alice"]["worker"])
    assert status == 200 and "task_new" in {tool["name"] for tool in reply["result"]["tools"]}, reply
    status, reply = tools(hub.tokens["alice"]["plain"])
    assert status == 403 and reply["missing_scope"] == "index:read", reply


@pytest.mark.slow
def test_the_owners_browser_session_holds_every_direng_scope_on_their_own_server(hub):
    """Log in at the Hub (DummyAuthenticator), open the server (the OAuth round trip sets the
    server's cookie), then call DirEng with that cookie alone."""
    with httpx.Client(follow_redirects=True, timeout=60) as browser:
        page = browser.get(f"{hub.url}/hub/login")
        xsrf = re.search(r'name="_xsrf"\s+value="([^"]+)"', page.text)
        assert xsrf, page.text[:500]
        login = browser.post(f"{hub.url}/hub/login", data={"username": "alice", "password": "any", "_xsrf": xsrf[1]})
        assert login.status_code == 200, login.text[:300]
        lab = browser.get(f"{hub.url}/user/alice/lab")  # JupyterLab, the example's default_url
        assert lab.status_code == 200 and str(lab.url) == f"{hub.url}/user/alice/lab", lab.url
        health = browser.get(hub.direng_url("alice", "health"))
        assert health.status_code == 200 and health.json()["indexed"] is True, health.text[:300]
        hits = browser.get(hub.direng_url("alice", "search"), params={"q": QUERY["alice"]})
        assert hits.status_code == 200 and hits.json()["hits"][0]["path"] == TARGET["alice"]
        assert browser.get(f"{hub.url}/user/alice/direng/api/tasks").status_code == 200
        assert browser.get(hub.direng_url("bob", "health")).status_code == 403  # not alice's server


def wait_task(hub: Hub, user: str, token: str, task_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, task = hub.call(user, "GET", f"tasks/{task_id}", token)
        assert status == 200, task
        if task["state"] in ("succeeded", "failed", "cancelled", "escalated") or time.monotonic() > deadline:
            return task
        time.sleep(0.3)


@pytest.mark.slow
def test_a_lane_runs_headless_in_the_users_server_and_everything_survives_a_restart(hub):
    token = hub.tokens["alice"]["worker"]

    def ok(method: str, path: str, body=None, expect: int = 200) -> dict:
        status, data = hub.call("alice", method, path, token, body=body)
        assert status == expect, (method, path, status, data, hub.log_tail(20))
        return data

    task = ok("POST", "tasks", {"title": "a lane run under the hub", "lane": "narrative",
                                "parameters": {"mode": "quick"}}, expect=201)
    assert ok("POST", f"tasks/{task['id']}/estimate")["state"] == "estimated"
    assert ok("POST", f"tasks/{task['id']}/approve")["state"] == "approved"
    ok("POST", f"tasks/{task['id']}/start")
    done = wait_task(hub, "alice", token, task["id"])
    assert done["state"] == "succeeded" and done["run_id"], done
    passport = ok("GET", f"runs/{done['run_id']}")
    assert passport["status"] == "succeeded" and passport["kpis"] == {"done": 1.0}, passport
    events = ok("GET", f"tasks/{task['id']}/events")["events"]
    assert any("test lane in mode quick" in e["message"] for e in events), events
    index_before = ok("GET", "index/status")
    assert (hub.home("alice") / "repo" / ".direng").is_dir()  # the store lives in the user's folder

    hub.stop("alice")
    down = hub.client.get(hub.direng_url("alice", "health"), headers={"Authorization": f"token {token}"})
    assert down.status_code == 302 and down.headers["location"].startswith("/hub/user/alice/")  # the Hub's page now
    hub.start("alice")
    hub.wait_indexed("alice", token)
    assert ok("GET", f"tasks/{task['id']}")["state"] == "succeeded"
    assert ok("GET", f"runs/{done['run_id']}") == passport
    index_after = ok("GET", "index/status")
    assert (index_after["files"], index_after["symbols"], index_after["indexed_commit"]) == \
        (index_before["files"], index_before["symbols"], index_before["indexed_commit"])
    hits = ok("GET", f"search?q={QUERY['alice']}")["hits"]
    assert hits[0]["path"] == TARGET["alice"]
