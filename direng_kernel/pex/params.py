"""Lane parameters given as `KEY=VALUE` on a command line: the one rule the CLI and the magics share.

The value is JSON when it parses as JSON (`n=3` is the number 3, `dry=true` a boolean,
`paths=["a.py"]` a list, `name="42"` the string "42"), and otherwise the text as written
(`title=fix the bug`). A repeated key keeps its last value. `--params-json` gives them all as one
JSON object; `KEY=VALUE` items then override its keys.
"""

from __future__ import annotations

import json

from ..errors import DirEngError


class ParameterError(DirEngError):
    """A lane parameter that is not `KEY=VALUE`, or a parameters object that is not one."""


def parse_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_params(items: list[str], json_object: str | None = None) -> dict:
    params: dict = {}
    if json_object:
        try:
            params = json.loads(json_object)
        except ValueError as exc:
            raise ParameterError(f"--params-json is not valid JSON: {exc}") from None
        if not isinstance(params, dict):
            raise ParameterError("--params-json must be a JSON object")
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"--param {item!r}: expected KEY=VALUE")
        params[key.strip()] = parse_value(value)
    return params
