"""Deterministic intent routing: what a message asks for, without a model.

Small tasks (search, graph, explain, status) are recognised by their phrasing and answered
directly from the index; everything else is a question (`ask`). A generative provider, when
the policy configures one, may refine `ask` with tool calls, but routing never needs one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SYMBOL = r"[`'\"]?@?([A-Za-z_][\w.:/-]*)[`'\"]?(?:\(\))?"
PATTERNS: list[tuple[str, re.Pattern]] = [
    ("help", re.compile(r"^\s*(?:help|\?|what can you do\??)\s*$", re.I)),
    ("status", re.compile(r"^\s*(?:status|index status|is the index (?:fresh|up to date)\??)\s*$", re.I)),
    ("callers", re.compile(rf"^\s*(?:what|who|which \w+)\s+(?:calls|invokes|uses)\s+{SYMBOL}\s*\??\s*$", re.I)),
    ("callers", re.compile(rf"^\s*(?:callers|users|call sites)\s+of\s+{SYMBOL}\s*\??\s*$", re.I)),
    ("callees", re.compile(rf"^\s*what\s+does\s+{SYMBOL}\s+call\s*\??\s*$", re.I)),
    ("callees", re.compile(rf"^\s*callees\s+of\s+{SYMBOL}\s*\??\s*$", re.I)),
    ("graph", re.compile(rf"^\s*(?:show\s+(?:the\s+)?)?graph\s+(?:of\s+|for\s+)?{SYMBOL}\s*$", re.I)),
    ("explain", re.compile(rf"^\s*(?:explain|describe|what is|what's)\s+{SYMBOL}\s*\??\s*$", re.I)),
    ("search", re.compile(r"^\s*(?:search|find|grep|look up)\s+(?:for\s+)?(.+?)\s*$", re.I)),
    ("delegate", re.compile(r"^\s*delegate\s*:?\s+(.+?)\s*$", re.I | re.S)),
]


@dataclass
class Intent:
    name: str
    arg: str = ""
    text: str = ""
    extra: dict = field(default_factory=dict)


def route(text: str) -> Intent:
    for name, pattern in PATTERNS:
        m = pattern.match(text)
        if m:
            arg = m.group(m.lastindex or 0) if m.lastindex else ""
            if name == "explain" and not _looks_like_symbol(arg):
                break  # "what is the retry policy" is a question, not a symbol lookup
            return Intent(name, arg.strip(), text)
    return Intent("ask", text.strip(), text)


def _looks_like_symbol(arg: str) -> bool:
    return bool(re.search(r"[._:/]|[a-z][A-Z]|^[A-Z]", arg)) and " " not in arg
