"""models.py is the one list of modes, directions, states, actions, kinds, lanes and scopes.

docs/api.yaml, the CLI's argparse choices, the REST handlers and the magics are checked against
it, so a list that drifts on any surface fails here rather than as a 400 or a 500 for a user.
Every string enum in docs/api.yaml must name its source in models.py with `x-models`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from direng_kernel import models

SPEC = yaml.safe_load((Path(__file__).resolve().parents[1] / "docs" / "api.yaml").read_text())


def _enums(node, where="api.yaml"):
    """Every mapping in the spec that carries an `enum` (or `x-builtin`: the built-in values of an
    open list, such as lanes, which users extend), with where it sits."""
    if isinstance(node, dict):
        if "enum" in node or "x-builtin" in node:
            yield where, node
        for key, value in node.items():
            yield from _enums(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _enums(value, f"{where}[{i}]")


def _values(name: str) -> tuple:
    value = getattr(models, name)
    return tuple(value) if not isinstance(value, dict) else tuple(value.keys())


def test_every_string_enum_in_the_spec_is_a_models_list():
    checked = 0
    for where, node in _enums(SPEC):
        values = node.get("enum", node.get("x-builtin"))
        if not all(isinstance(v, str) for v in values):
            continue  # e.g. code: [0, 1]
        source = node.get("x-models")
        assert source, f"{where}: enum {values} names no models.py list (x-models)"
        assert hasattr(models, source), f"{where}: x-models {source!r} is not in models.py"
        assert tuple(values) == _values(source), f"{where} drifted from models.{source}"
        if "default" in node:
            assert node["default"] == _values(source)[0], f"{where}: the default is not models' first"
        checked += 1
    assert checked >= 10  # the walk reached the spec's enums


def test_the_final_states_in_the_spec_are_the_models_final_states():
    state = SPEC["components"]["schemas"]["Task"]["properties"]["state"]
    assert tuple(state["x-final"]) == models.FINAL_STATES
    assert set(models.FINAL_STATES) == {s.value for s in models.TERMINAL_STATES}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _choices(parser: argparse.ArgumentParser, flag: str) -> tuple:
    return tuple(next(a for a in parser._actions if flag in a.option_strings).choices)


def test_the_cli_takes_its_choices_from_models():
    from direng_kernel.cli.main import build_parser

    commands = _subparsers(build_parser())
    assert _choices(commands["search"], "--mode") == models.SEARCH_MODES
    task = _subparsers(commands["task"])
    assert set(models.TASK_ACTIONS) <= set(task), "every task action is a `direng task` subcommand"


def test_the_magic_takes_its_choices_from_models():
    from direng_kernel.magics import PARSERS

    assert _choices(PARSERS["search"], "--mode") == models.SEARCH_MODES


def test_the_handlers_take_their_lists_from_models():
    import re

    from direng_kernel.server.handlers import routes
    from direng_kernel.server.handlers.tasks import ACTION_SCOPES

    assert set(ACTION_SCOPES) == set(models.TASK_ACTIONS), "every task action needs exactly one scope"
    assert set(ACTION_SCOPES.values()) <= set(models.SCOPE_NAMES)
    from direng_kernel.server.handlers.tasks import TaskActionHandler

    (pattern,) = [pattern for pattern, handler in routes() if handler is TaskActionHandler]
    for action in models.TASK_ACTIONS:
        assert re.fullmatch(pattern, f"/direng/api/tasks/t1/{action}"), action
    assert not re.fullmatch(pattern, "/direng/api/tasks/t1/explode")


def test_the_scopes_module_uses_the_models_scopes():
    from direng_kernel.security import scopes

    assert scopes.ALL_SCOPES == models.SCOPE_NAMES
    for name in models.SCOPE_NAMES:
        assert scopes.validate_scope(name) == name
