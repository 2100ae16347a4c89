"""Refusals are audited: 401s (bad DirEng tokens), 403s (no or wrong Jupyter login, missing
scopes) and the first use of a token signed by a rotated-out key, through a real Jupyter server.

The server and this test share a keys directory and an audit log (their own, per module), so
tokens minted here are the server's and the records it writes are read back here with
`direng_kernel.security.audit`. Records are rate-limited per (client, reason); the window is
long here (an hour), so every burst below is exactly one record. How held-back refusals are
counted into the next record is shown in process, with a clock under the test's control.
"""

from __future__ import annotations

import base64
import json
import secrets
import sys
import time

import jwt
import pytest

from conftest import run_cli
from direng_kernel.security import audit
from direng_kernel.security.scopes import ALL_SCOPES, LANE_SCOPES
from direng_kernel.security.tokens import current_username, mint
from test_server import running_server
from test_server_scopes import call

pytestmark = pytest.mark.timeout(180)

USER = current_username()
SENT: list[str] = []  # every credential this module sends: none may reach the log


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("refusal-audit")
    with pytest.MonkeyPatch.context() as mp:  # the server inherits both
        mp.setenv("DIRENG_KEYS_DIR", str(base / "keys"))
        mp.setenv("DIRENG_AUDIT_LOG", str(base / "audit.jsonl"))
        yield {"keys": base / "keys", "log": base / "audit.jsonl"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, env):
    with running_server(tmp_path_factory.mktemp("refusal-server"), "--DirEngExtension.watch=False",
                        "--DirEngExtension.run_tasks=False", "--DirEngExtension.index_on_start=False",
                        "--DirEngExtension.audit_refusal_window=3600", indexed=False) as srv:
        yield srv


def token(scopes=ALL_SCOPES, subject: str = USER, **kw) -> str:
    value = mint(subject, list(scopes), ttl_s=kw.pop("ttl_s", 600), **kw)
    SENT.append(value)
    return value


def b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def last_seq() -> int:
    recs = audit.read_records()
    return recs[-1]["seq"] if recs else 0


def records_since(seq: int, event: str | None = None) -> list[dict]:
    return [r for r in audit.read_records() if r["seq"] > seq and (event is None or r["event"] == event)]


def send(server, auth: str | None, path: str = "health", method: str = "GET", times: int = 3) -> int:
    if auth is not None:
        SENT.append(auth)
    statuses = {call(server, method, path, auth=auth)[0] for _ in range(times)}
    assert len(statuses) == 1, statuses
    return statuses.pop()


def assert_no_token_material(recs: list[dict]) -> None:
    text = json.dumps(recs)
    for value in SENT:
        for part in {value, *value.replace("Bearer ", "").replace("token ", "").split(".")}:
            if len(part) >= 16:
                assert part not in text, f"token material in the audit log: {part[:24]}…"


# -- 401: tokens that fail verification --------------------------------------------------------------

def test_bad_tokens_are_audited_once_per_reason_with_no_token_text_and_no_unverified_claims(server, env):
    start = last_seq()
    good = token()
    kid = jwt.get_unverified_header(good)["kid"]
    header, _, signature = good.split(".")
    forged_claims = {"sub": "mallory-unverified", "jti": "jti-never-verified-7f3a", "scope": " ".join(ALL_SCOPES),
                     "iss": "direng-workbench", "aud": "direng", "iat": int(time.time()), "nbf": int(time.time()),
                     "exp": int(time.time()) + 600}
    cases = {
        "bad_signature": [good[:-6] + "AAAAAA", f"{header}.{b64(forged_claims)}.{signature}"],
        "expired": [token(ttl_s=60, now=time.time() - 3600)],
        "not_a_jwt": ["not-a-jwt-" + secrets.token_hex(12)],
        "unknown_kid": [f"{b64({'alg': 'RS256', 'kid': '../../etc/passwd'})}.{b64(forged_claims)}.{signature}"],
        "wrong_user": [token(subject="someone-else-entirely")],
    }
    for reason, values in cases.items():
        for value in values:
            assert send(server, f"Bearer {value}") == 401, reason
    assert send(server, None) == 403  # no credentials at all: Jupyter's refusal
    assert send(server, "token not-the-jupyter-token-" + secrets.token_hex(8)) == 403

    recs = records_since(start, "auth.failed")
    by_reason = {}
    for rec in recs:
        by_reason.setdefault(rec["data"]["reason"], []).append(rec)
    assert set(by_reason) == {*cases, "no_credentials", "bad_credentials"}
    for reason, found in by_reason.items():
        assert len(found) == 1, (reason, found)  # 3 requests (6 for bad_signature), one record: rate-limited
        data = found[0]["data"]
        assert found[0]["actor"] == "anonymous"
        assert data["client"] == "127.0.0.1" and data["path"] == "/direng/api/health" and data["method"] == "GET"
        assert data["status"] == (401 if reason in cases else 403)
        assert "jti" not in data and "scope" not in data  # nothing from unverified claims
        assert "suppressed" not in data  # the first of its burst
    assert by_reason["bad_signature"][0]["data"]["kid"] == kid  # a well-formed key id is recorded
    assert "kid" not in by_reason["unknown_kid"][0]["data"]     # a garbage one is not
    text = json.dumps(recs)
    for unverified in ("mallory-unverified", "jti-never-verified-7f3a", "someone-else-entirely", "etc/passwd"):
        assert unverified not in text
    assert_no_token_material(records_since(0))


# -- 403: valid tokens without the scope ---------------------------------------------------------------

def test_scope_refusals_are_audited_with_the_verified_token_ids(server, env):
    start = last_seq()
    lane = token(LANE_SCOPES)
    claims = jwt.decode(lane, options={"verify_signature": False})
    assert send(server, f"Bearer {lane}", "index/refresh", "POST") == 403
    assert send(server, f"Bearer {lane}", "policy", "POST") == 403
    assert send(server, f"Bearer {lane}", "health") == 200  # allowed: not a refusal

    recs = records_since(start, "auth.denied")
    assert sorted(r["data"]["scope"] for r in recs) == ["index:write", "policy:admin"]  # one per (client, scope)
    for rec in recs:
        data = rec["data"]
        assert rec["actor"] == USER and data["reason"] == "missing_scope" and data["status"] == 403
        assert data["jti"] == claims["jti"] and data["kid"] == jwt.get_unverified_header(lane)["kid"]
    assert not records_since(start, "auth.failed")
    assert_no_token_material(records_since(0))


# -- rotation: the first use of an old token is recorded, once -------------------------------------------

def test_first_use_of_a_token_after_key_rotation_is_audited_once(server, env):
    from direng_kernel.security.keys import rotate_keys

    old = token(["index:read"])
    assert send(server, f"Bearer {old}", times=1) == 200
    start = last_seq()
    new_kid = rotate_keys()
    new = token(["index:read"])
    assert send(server, f"Bearer {old}") == 200 and send(server, f"Bearer {new}") == 200

    recs = records_since(start, "token.retired_key_use")
    assert len(recs) == 1, recs
    data = recs[0]["data"]
    assert recs[0]["actor"] == USER
    assert data["jti"] == jwt.decode(old, options={"verify_signature": False})["jti"]
    assert data["kid"] == jwt.get_unverified_header(old)["kid"] != new_kid and data["active_kid"] == new_kid
    assert send(server, f"Bearer {old}", times=1) == 200 and not records_since(recs[0]["seq"], "token.retired_key_use")
    assert_no_token_material(records_since(0))


def test_the_chain_still_verifies(server, env):
    assert records_since(0, "auth.failed") and records_since(0, "auth.denied")
    report = audit.verify()
    assert report.ok, report
    assert report.records == len(audit.read_records()) > 5
    result = run_cli("audit", "verify", "--log", str(env["log"]))
    assert result.returncode == 0 and result.stdout.startswith("ok:"), result.stderr


# -- rate limiting, in process, with a controlled clock --------------------------------------------------

def refuse(limit, exc, ip: str = "203.0.113.9", path: str = "/direng/api/health") -> int:
    """Send `exc` the way a DirEng handler does (tornado's send_error path, no server)."""
    from unittest.mock import MagicMock

    from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine
    from tornado.web import Application

    from direng_kernel.server.handlers.base import DirEngHandler

    conn = MagicMock()
    request = HTTPServerRequest(start_line=RequestStartLine("GET", path, "HTTP/1.1"),
                                headers=HTTPHeaders({"Host": "127.0.0.1"}), connection=conn)
    request.remote_ip = ip
    handler = DirEngHandler(Application(direng_audit_limit=limit), request)
    handler._transforms = []
    try:
        raise exc
    except BaseException:
        handler.send_error(exc.status_code, exc_info=sys.exc_info())
    return conn.write_headers.call_args.args[0].code


@pytest.fixture
def own_log(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    monkeypatch.setenv("DIRENG_AUDIT_LOG", str(path))
    return path


def test_held_back_refusals_are_counted_into_the_next_record(own_log):
    from direng_kernel.server.handlers.base import ApiError

    now = [1000.0]
    limit = audit.RateLimit(30, clock=lambda: now[0])

    def expired():
        return ApiError(401, "invalid token: expired", audit={"reason": "expired", "kid": "k1"})

    for _ in range(4):
        assert refuse(limit, expired()) == 401
    assert refuse(limit, expired(), ip="198.51.100.1") == 401  # another client: its own record
    assert refuse(limit, ApiError(401, "invalid token: bad signature", audit={"reason": "bad_signature"})) == 401
    now[0] += 29
    assert refuse(limit, expired()) == 401  # still inside the window: held back
    now[0] += 2
    assert refuse(limit, expired()) == 401  # the window is over: recorded, with the count
    recs = audit.read_records()
    got = [(r["data"]["client"], r["data"]["reason"], r["data"].get("suppressed")) for r in recs]
    assert got == [("203.0.113.9", "expired", None), ("198.51.100.1", "expired", None),
                   ("203.0.113.9", "bad_signature", None), ("203.0.113.9", "expired", 4)]
    assert all(r["event"] == "auth.failed" and r["data"]["kid"] == "k1" for r in recs if r["data"]["reason"] == "expired")
    assert audit.verify().ok


def test_rate_limit_window_zero_and_bounded_keys():
    limit = audit.RateLimit(0)
    assert [limit.admit("k") for _ in range(3)] == [0, 0, 0]
    now = [0.0]
    small = audit.RateLimit(60, max_keys=2, clock=lambda: now[0])
    assert small.admit("a") == 0 and small.admit("a") is None
    assert small.admit("b") == 0 and small.admit("c") == 0  # "a" (the stalest) is forgotten
    assert small.admit("a") == 0 and small.admit("c") is None  # now "b" is the one forgotten
    assert small.admit("b") == 0


def test_an_unwritable_log_never_changes_the_refusal(tmp_path, monkeypatch):
    from direng_kernel.server.handlers.base import ApiError

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("DIRENG_AUDIT_LOG", str(blocker / "audit.jsonl"))
    assert refuse(audit.RateLimit(0), ApiError(403, "missing scope 'x'", audit={"reason": "missing_scope"})) == 403
