"""Every operation in docs/api.yaml, walked with malformed input against one real Jupyter server.

The operations come from the OpenAPI file itself (never a hand-kept list), and so do their
parameters and bodies: unknown ids and traversal/garbage in path parameters, query parameters
of the wrong type, out of range or outside their enum, missing required ones, bodies that are
not JSON or the wrong JSON type, wrong property types, missing required fields, deeply nested
JSON, huge strings, an oversized body, and a wrong method. Nothing may be a 5xx, and every
error reply must be a JSON object with a `message`. Every enum value the file documents for a
query parameter must be accepted. A DirEng token with every scope is used throughout.

Requests that would legitimately start long work (a valid index refresh, starting a task, a
replay of a real run) are never sent: POSTs without inputs only get the wrong-method case, task
actions only run against unknown ids, and there are no runs on this server.
"""

from __future__ import annotations

import http.client
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import yaml

from direng_kernel.security.scopes import ALL_SCOPES
from direng_kernel.security.tokens import current_username, mint
from test_server import running_server

pytestmark = pytest.mark.timeout(300)

SPEC_PATH = Path(__file__).resolve().parents[1] / "docs" / "api.yaml"
METHODS = ("get", "post", "put", "patch", "delete")
HUGE_QUERY = 20_000      # under tornado's 64 KiB header limit: the handler must see it
HUGE_BODY_STRING = 1_000_000
DEEP = 100_000           # nesting that overflows a recursive parser
OVERSIZED_BODY = 12 * 1024 * 1024


def load_spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text())


def operations(spec: dict) -> list[tuple[str, str]]:
    return [(path, method) for path, ops in spec["paths"].items() for method in ops if method in METHODS]


def resolve(spec: dict, node):
    """Follow `$ref`s (local ones: `#/components/...`)."""
    while isinstance(node, dict) and "$ref" in node:
        target = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def types_of(schema: dict) -> set[str]:
    t = schema.get("type", "object" if "properties" in schema else "string")
    return set(t if isinstance(t, list) else [t]) - {"null"}


@dataclass
class Case:
    op: tuple[str, str]          # (path as documented, method)
    label: str
    method: str
    path: str                    # relative to /direng/api, already percent-encoded
    query: dict[str, str] = field(default_factory=dict)  # values already percent-encoded
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    expect_ok: bool = False      # a documented value: must not be refused as bad input


def valid_value(schema: dict, name: str = ""):
    """A small value that satisfies `schema` (for the parts of a request a case does not break)."""
    schema = schema or {}
    if "example" in schema:
        return schema["example"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    t = types_of(schema)
    if "object" in t:
        return {}
    if "array" in t:
        return []
    if "boolean" in t:
        return False
    if "integer" in t or "number" in t:
        return max(1, schema.get("minimum", 1))
    return f"walker {name}".strip()


def wrong_type(schema: dict):
    t = types_of(schema)
    if "string" in t:
        return 12345
    if "boolean" in t:
        return "yes"
    if "integer" in t or "number" in t:
        return "NaN"
    if "array" in t:
        return {"not": "a list"}
    return ["not", "an", "object"]


def nested_raw(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


# -- query parameter values (already percent-encoded) ----------------------------------------------

def bad_query_values(schema: dict) -> list[tuple[str, str]]:
    t, out = types_of(schema), []
    if "integer" in t or "number" in t:
        out += [("not a number", "many"), ("float", "1.5"), ("hex", "0x1f"), ("exponent", "1e3"),
                ("huge int", "9" * 40), ("huge negative", "-" + "9" * 40), ("bad utf-8", "%ff%fe"),
                ("NUL", "%00")]
        if "minimum" in schema:
            out.append(("below minimum", str(schema["minimum"] - 1)))
        if "maximum" in schema:
            out.append(("above maximum", str(schema["maximum"] + 1)))
    if "enum" in schema:
        out += [("unknown enum value", "not-a-documented-value"), ("enum upper-cased", quote(str(schema["enum"][0]).upper()))]
    if "string" in t:
        out += [("blank", "%20%20"), ("NUL and controls", "%00%01%1b"), ("bad utf-8", "%ff%fe"),
                ("traversal", quote("../../../etc/passwd", safe="")), ("huge", "x" * HUGE_QUERY),
                ("injection", quote("'; DROP TABLE tasks; --", safe="")), ("snowman", quote("☃ ∞ 漢"))]
    return out


# -- path parameter values -------------------------------------------------------------------------

BAD_PATH_VALUES = [
    ("unknown id", "nope-" + "0" * 12),
    ("traversal (encoded)", quote("../../../etc/passwd", safe="")),
    ("traversal (literal)", "../../../etc/passwd"),
    ("NUL", "%00"),
    ("bad utf-8", "%ff%fe"),
    ("huge", "x" * 4000),
    ("injection", quote("'; DROP TABLE tasks; --", safe="")),
    ("snowman", quote("☃", safe="")),
    ("dots", ".."),
]


def build_cases(spec: dict, path_values: dict[str, dict[str, str]]) -> list[Case]:
    """Every malformed request for every operation. `path_values[path][name]` is a valid value of
    a path parameter (else the documented example, else a placeholder)."""
    cases: list[Case] = []
    for doc_path, method in operations(spec):
        op = spec["paths"][doc_path][method]
        params = [resolve(spec, p) for p in spec["paths"][doc_path].get("parameters", []) + op.get("parameters", [])]
        by_in = {where: [p for p in params if p["in"] == where] for where in ("path", "query", "header")}
        key, m = (doc_path, method), method.upper()

        def good_path_value(p):
            return quote(str(path_values.get(doc_path, {}).get(p["name"], valid_value(p.get("schema", {}), p["name"]))),
                         safe="")

        def url(overrides: dict[str, str] | None = None) -> str:
            out = doc_path
            for p in by_in["path"]:
                out = out.replace("{%s}" % p["name"], (overrides or {}).get(p["name"]) or good_path_value(p))
            return out.lstrip("/")

        base_query = {p["name"]: quote(str(valid_value(p.get("schema", {}), p["name"])), safe="")
                      for p in by_in["query"] if p.get("required")}
        body_spec = resolve(spec, op.get("requestBody"))
        body_schema = resolve(spec, ((body_spec or {}).get("content", {}).get("application/json", {})).get("schema"))
        base_body = None
        if body_schema is not None:
            base_body = {name: valid_value(resolve(spec, s), name)
                         for name, s in body_schema.get("properties", {}).items()
                         if name in body_schema.get("required", [])}

        def case(label, **kw):
            kw.setdefault("path", url())
            kw.setdefault("query", dict(base_query))
            if base_body is not None and "body" not in kw and m != "GET":
                kw["body"] = json.dumps(base_body).encode()
            cases.append(Case(key, label, kw.pop("method", m), **kw))

        # the wrong method: every path answers it, as JSON
        case("wrong method", method="PUT" if m != "PUT" else "PATCH", body=b"{}")

        # path parameters: each one broken, the others valid (every value of the enum ones)
        for p in by_in["path"]:
            others = [o for o in by_in["path"] if o is not p]
            combos = [{}]
            for o in others:
                values = o.get("schema", {}).get("enum") or [None]
                combos = [{**c, o["name"]: v} for c in combos for v in values]
            bad = list(BAD_PATH_VALUES)
            if "enum" in p.get("schema", {}):
                bad = [("unknown action", "explode"), ("enum upper-cased", p["schema"]["enum"][0].upper())] + bad[1:4]
            for label, value in bad:
                for combo in combos:
                    overrides = {name: quote(str(v), safe="") for name, v in combo.items() if v is not None}
                    suffix = "".join(f" [{n}={v}]" for n, v in combo.items() if v is not None)
                    case(f"path {p['name']}: {label}{suffix}", path=url({**overrides, p["name"]: value}))

        # query parameters: each one broken (or missing when required); documented enum values work
        for p in by_in["query"]:
            schema = p.get("schema", {})
            for label, value in bad_query_values(schema):
                case(f"query {p['name']}: {label}", query={**base_query, p["name"]: value})
            if p.get("required"):
                case(f"query {p['name']}: missing", query={k: v for k, v in base_query.items() if k != p["name"]})
            for value in schema.get("enum", []):
                case(f"query {p['name']}={value} (documented)", query={**base_query, p["name"]: quote(str(value))},
                     expect_ok=True)
        if m == "GET":  # an unknown parameter, with garbage in it, is ignored or refused
            case("unknown query parameter", query={**base_query, "zz": "%ff%00"})

        # headers
        for p in by_in["header"]:
            case(f"header {p['name']}: huge", headers={p["name"]: "k" * 8000})
            case(f"header {p['name']}: latin-1", headers={p["name"]: "clé-ÿ"})

        # bodies
        if body_schema is None:
            continue
        required_body = bool((body_spec or {}).get("required"))
        for label, raw in [("not JSON", b"{not json"), ("binary", b"\xff\xfe\x00\x01"), ("NUL inside", b'{"a": "\x00"'),
                           ("a list", b"[]"), ("a string", b'"text"'), ("a number", b"42"), ("null", b"null"),
                           ("true", b"true"), ("deep lists", nested_raw(DEEP)),
                           ("deep objects", b'{"a":' * DEEP + b"1" + b"}" * DEEP),
                           ("oversized", b'{"pad": "' + b"x" * OVERSIZED_BODY + b'"}'),
                           ("NaN literal", b'{"x": NaN}'), ("duplicate keys", b'{"a": 1, "a": 2}')]:
            case(f"body: {label}", body=raw)
        if required_body:
            case("body: empty", body=b"")
        case("body: unknown property", body=json.dumps({**base_body, "zz_unknown": {"x": [1]}}).encode())
        for name, prop in body_schema.get("properties", {}).items():
            prop = resolve(spec, prop)
            others = {k: v for k, v in base_body.items() if k != name}
            case(f"body {name}: wrong type", body=json.dumps({**others, name: wrong_type(prop)}).encode())
            case(f"body {name}: null", body=json.dumps({**others, name: None}).encode())
            case(f"body {name}: nested 5000 deep",
                 body=b'{"%s": ' % name.encode() + nested_raw(5000, b"{}") + b"}")
            if "string" in types_of(prop):
                case(f"body {name}: huge string", body=json.dumps({**others, name: "x" * HUGE_BODY_STRING}).encode())
                case(f"body {name}: controls and snowmen", body=json.dumps({**others, name: "\x00\x1b☃" * 50}).encode())
            if "object" in types_of(prop):
                case(f"body {name}: huge object",
                     body=json.dumps({**others, name: {f"k{i}": "v" * 100 for i in range(10_000)}}).encode())
            if name in body_schema.get("required", []):
                case(f"body {name}: missing", body=json.dumps(others).encode())
    return cases


# -- static checks: the walk covers the file -------------------------------------------------------

def test_the_walk_covers_every_operation_in_the_openapi_file():
    spec = load_spec()
    cases = build_cases(spec, {})
    ops = operations(spec)
    assert len(ops) >= 20
    walked = {c.op for c in cases}
    assert walked == set(ops), f"operations not walked: {set(ops) - walked}"
    for op in ops:
        mine = [c for c in cases if c.op == op]
        document = spec["paths"][op[0]][op[1]]
        n_inputs = len(document.get("parameters", [])) + (1 if "requestBody" in document else 0)
        assert len(mine) > n_inputs, (op, [c.label for c in mine])  # the wrong method, and each input broken
    # and the server's routes are the file's operations (test_server checks that both ways)
    from direng_kernel.server.handlers import routes

    assert len(routes()) == len(spec["paths"])


def test_documented_search_modes_are_the_models_modes():
    from direng_kernel.models import SEARCH_MODES

    spec = load_spec()
    mode = next(p for p in spec["paths"]["/search"]["get"]["parameters"] if p["name"] == "mode")
    assert tuple(mode["schema"]["enum"]) == SEARCH_MODES
    assert mode["schema"]["default"] in SEARCH_MODES


def test_every_not_found_error_is_a_404_and_other_engine_errors_are_4xx():
    from direng_kernel.errors import DirEngError, NotFoundError, StoreError
    from direng_kernel.pas.lanes import LaneNotFound
    from direng_kernel.pas.passport import PassportMissing
    from direng_kernel.pex.store import TaskNotFound
    from direng_kernel.security.tokens import InsufficientScope, InvalidToken
    from direng_kernel.security.vault import SecretNotFoundError
    from direng_kernel.server.handlers.base import to_api_error

    for exc in (NotFoundError("x"), TaskNotFound("no task"), PassportMissing("no run"), LaneNotFound("no lane"),
                SecretNotFoundError("no secret")):
        assert to_api_error(exc).status_code == 404, exc
    assert to_api_error(InvalidToken("expired", "expired")).status_code == 401
    api = to_api_error(InsufficientScope("policy:admin"))
    assert api.status_code == 403 and api.extra == {"missing_scope": "policy:admin"}
    for exc in (DirEngError("x"), StoreError("y")):
        assert 400 <= to_api_error(exc).status_code < 500


# -- the walk, against a real server ---------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("malformed"), "--DirEngExtension.watch=False",
                        "--DirEngExtension.run_tasks=False") as srv:
        yield srv


@pytest.fixture(scope="module")
def auth(server) -> str:
    return "Bearer " + mint(current_username(), list(ALL_SCOPES), ttl_s=3600)


@pytest.fixture(scope="module")
def path_values(server, auth) -> dict:
    status, task = send(server, Case(("", ""), "setup", "POST", "tasks",
                                     body=json.dumps({"title": "walker target", "lane": "narrative"}).encode()),
                        auth)[:2]
    assert status == 201, task
    tid = task["id"]
    return {"/tasks/{id}": {"id": tid}, "/tasks/{id}/events": {"id": tid}, "/tasks/{id}/{action}": {"id": tid},
            "/runs/{id}": {"id": "run-" + secrets.token_hex(6)}, "/runs/{id}/replay": {"id": "run-" + secrets.token_hex(6)}}


def send(server, case: Case, auth: str) -> tuple[int, object, str]:
    """(status, parsed JSON or None, content type), over a raw connection (no client-side URL fixing)."""
    target = "/direng/api/" + case.path
    if case.query:
        target += "?" + "&".join(f"{k}={v}" for k, v in case.query.items())
    netloc = urlsplit(server.url).netloc
    conn = http.client.HTTPConnection(netloc, timeout=120)
    try:
        headers = {"Authorization": auth, "Content-Type": "application/json", **case.headers}
        body = case.body if case.body is not None else (b"" if case.method in ("POST", "PUT", "PATCH") else None)
        conn.putrequest(case.method, target, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value.encode("latin-1"))
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        return resp.status, data, resp.getheader("Content-Type", "")
    finally:
        conn.close()


SPEC = load_spec()
WALKED: set = set()


@pytest.mark.parametrize("op", operations(SPEC), ids=[f"{m.upper()} {p}" for p, m in operations(SPEC)])
def test_malformed_input_is_never_a_5xx(server, auth, path_values, op):
    cases = [c for c in build_cases(SPEC, path_values) if c.op == op]
    assert cases
    problems = []
    for case in cases:
        status, data, ctype = send(server, case, auth)
        where = f"{case.method} /{case.path[:80]} ({case.label})"
        if status >= 500:
            problems.append(f"{where} → {status}: {str(data)[:200]}")
        elif status >= 400 and not (isinstance(data, dict) and isinstance(data.get("message"), str) and data["message"]
                                    and "json" in ctype):
            problems.append(f"{where} → {status} without a JSON message: {ctype} {str(data)[:200]}")
        elif case.expect_ok and status in (400, 422):
            problems.append(f"{where} → {status}: a documented value is refused: {data}")
    WALKED.add(op)
    assert not problems, "\n".join(problems)
    assert server.proc.poll() is None


def test_every_operation_was_walked():
    """Last in the module: the parametrized walk above reached every operation of the file."""
    missing = set(operations(SPEC)) - WALKED
    assert not missing, f"not walked (deselected or failed before the end): {sorted(missing)}"
