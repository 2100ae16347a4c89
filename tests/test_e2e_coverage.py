"""Every command of README's CLI table and every operation of `docs/api.yaml` has an end-to-end
test marked for it: `@pytest.mark.e2e("direng map")`, `@pytest.mark.e2e("GET /tasks")` (several
names per marker are fine). The names are read from the two documents; the markers are found
statically (AST) in tests/*.py, on test functions, test classes and module `pytestmark`s.

Naming: `direng` plus the command words of a table row (`direng task estimate|approve|cancel ID`
gives `direng task estimate`, `direng task approve`, `direng task cancel`); for the API the
method and the path as api.yaml writes it (`POST /tasks/{id}/{action}` gives one name per
documented action: `POST /tasks/{id}/cancel`, ...). A marker may also spell an operation with the
API's prefix, as served: `GET /direng/api/tasks` is `GET /tasks`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
API_PREFIX = "/direng/api"
_WORD = re.compile(r"^[a-z][a-z0-9_-]*(\|[a-z][a-z0-9_-]*)*$")


def readme_cli_commands(text: str) -> set[str]:
    """`direng …` command names from the table(s) of README's `direng` CLI section."""
    section = re.search(r"^## The `direng` CLI\n(.*?)(?=^## )", text, re.M | re.S)
    assert section, "README has no '## The `direng` CLI' section"
    names: set[str] = set()
    for line in section.group(1).splitlines():
        if not line.startswith("|") or re.match(r"^\|\s*-", line):
            continue
        first_cell = re.split(r"(?<!\\)\|", line)[1]
        for span in re.findall(r"`(direng [^`]*)`", first_cell):
            words: list[list[str]] = []
            for token in span.replace("\\|", "|").split()[1:]:
                if not _WORD.match(token):
                    break
                words.append(token.split("|"))
            expanded = [""]
            for alternatives in words:
                expanded = [f"{prefix} {w}".strip() for prefix in expanded for w in alternatives]
            names.update(f"direng {name}" for name in expanded if name)
    return names


def api_operations(spec: dict) -> set[str]:
    """`METHOD /path` for every operation of api.yaml; `{action}` paths once per documented action."""
    names: set[str] = set()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method not in HTTP_METHODS:
                continue
            actions = [p for p in op.get("parameters", []) if p.get("name") == "action" and p.get("in") == "path"]
            if "{action}" in path and actions:
                names.update(f"{method.upper()} {path.replace('{action}', a)}" for a in actions[0]["schema"]["enum"])
            else:
                names.add(f"{method.upper()} {path}")
    return names


def documented() -> set[str]:
    return readme_cli_commands((REPO / "README.md").read_text()) | \
        api_operations(yaml.safe_load((REPO / "docs" / "api.yaml").read_text()))


def canonical(name: str) -> str:
    """`GET /direng/api/tasks` → `GET /tasks`; runs of spaces → one."""
    words = name.split()
    if len(words) == 2 and words[0].lower() in HTTP_METHODS and words[1].startswith(API_PREFIX + "/"):
        words = [words[0].upper(), words[1][len(API_PREFIX):]]
    return " ".join(words)


def _e2e_names(expr: ast.AST) -> list[str]:
    """The string arguments of every `pytest.mark.e2e(...)` / `mark.e2e(...)` call inside `expr`."""
    found = []
    for node in ast.walk(expr):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "e2e":
            owner = node.func.value
            if isinstance(owner, ast.Attribute) and owner.attr == "mark" or \
                    isinstance(owner, ast.Name) and owner.id == "mark":
                found += [canonical(a.value) for a in node.args
                          if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return found


def e2e_markers(folder: Path = TESTS) -> dict[str, list[str]]:
    """Marker name → the tests (`file::name`) that carry it."""
    where: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        module_names = [n for stmt in tree.body if isinstance(stmt, ast.Assign)
                        and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in stmt.targets)
                        for n in _e2e_names(stmt.value)]
        for name in module_names:
            where.setdefault(name, []).append(path.name)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test") or \
                    isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                for deco in node.decorator_list:
                    for name in _e2e_names(deco):
                        where.setdefault(name, []).append(f"{path.name}::{node.name}")
    return where


def test_the_documents_are_read():
    cli = readme_cli_commands((REPO / "README.md").read_text())
    api = api_operations(yaml.safe_load((REPO / "docs" / "api.yaml").read_text()))
    # a format change that hid the commands or operations would otherwise let the real test pass
    assert {"direng index", "direng map", "direng task cancel", "direng task list", "direng secrets delete",
            "direng keys rotate", "direng plms calibration", "direng artifacts export"} <= cli, sorted(cli)
    assert not any(n.endswith(("ROOT", "ID", "QUERY")) or "[" in n or "--" in n for n in cli), sorted(cli)
    assert len(cli) >= 25, sorted(cli)
    assert {"GET /health", "GET /tasks", "POST /tasks/{id}/cancel", "POST /runs/{id}/replay",
            "GET /.well-known/jwks.json"} <= api, sorted(api)
    assert not any("{action}" in n for n in api) and len(api) >= 20, sorted(api)


def test_the_extraction_rules():
    row = ("| `direng task estimate\\|approve\\|cancel ID` / `direng runs [export --format csv\\|parquet]` | x |\n"
           "| `direng search \"QUERY\" --root ROOT -k 10 [--mode hybrid\\|bm25]` | y \\| z |\n")
    text = f"## The `direng` CLI\n\n| command | what |\n| --- | --- |\n{row}\n## Next\n| `direng nope` | |\n"
    assert readme_cli_commands(text) == {"direng task estimate", "direng task approve", "direng task cancel",
                                         "direng runs", "direng search"}
    spec = {"paths": {"/t/{id}/{action}": {"post": {"parameters": [
        {"name": "id", "in": "path"}, {"name": "action", "in": "path", "schema": {"enum": ["go", "stop"]}}]}},
        "/h": {"get": {}, "parameters": []}}}
    assert api_operations(spec) == {"POST /t/{id}/go", "POST /t/{id}/stop", "GET /h"}
    assert canonical("GET /direng/api/tasks/{id}") == canonical("GET  /tasks/{id}") == "GET /tasks/{id}"
    assert canonical("direng  task list") == "direng task list"


def test_every_documented_command_and_operation_has_an_e2e_test():
    markers = e2e_markers()
    missing = sorted(documented() - set(markers))
    assert not missing, ("no end-to-end test is marked with @pytest.mark.e2e(NAME) for: "
                         + ", ".join(missing))


def test_every_e2e_marker_names_a_documented_command_or_operation():
    known = documented()
    unknown = {name: tests for name, tests in e2e_markers().items() if name not in known}
    assert not unknown, "e2e markers naming nothing in README's CLI table or docs/api.yaml: " + "; ".join(
        f"{name!r} on {', '.join(tests)}" for name, tests in sorted(unknown.items()))
