"""Deterministic intent routing: what a message asks for, without a model.

Small tasks (search, graph, explain, status) are recognised by their phrasing and answered
directly from the index; everything else is a question (`ask`). A generative provider, when
the policy configures one, may refine `ask` with tool calls, but routing never needs one.

The boundary between small and large (`delegate`, handed to PEX as a proposed task): a request
for work whose result is an artifact — documentation, a patch, a report, a re-index — phrased as
an imperative ("document the shop package", "find dead code", "refactor checkout", "delegate:
…"), is large. A question (it ends with `?` or starts with what/how/where/why/which/who/when/is/
does/can/should) and a lookup (search, callers, callees, graph, explain, status) stay small,
however big the code they are about. `task ID` asks how a delegated task is doing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SYMBOL = r"[`'\"]?@?([A-Za-z_][\w.:/-]*)[`'\"]?(?:\(\))?"
#: Imperatives that ask for an artifact (the lanes' work), at the start of a message.
WORK = (r"(?:please\s+|can you\s+|could you\s+)?(?:document|write\s+(?:up\s+)?(?:the\s+)?(?:docs|documentation|"
        r"reference|api docs)|generate\s+(?:the\s+)?(?:docs|documentation|reference)|implement|refactor|fix|patch|"
        r"apply\s+(?:the\s+|this\s+)?(?:patch|diff)|migrate|find\s+(?:the\s+)?(?:dead|unused|unreferenced)\s+code|"
        r"find\s+(?:import\s+|dependency\s+)?cycles|report\s+(?:the\s+)?(?:breaking\s+)?(?:api\s+)?changes|"
        r"check\s+(?:the\s+)?(?:public\s+)?api\s+for\s+breaking|validate\s+(?:the\s+)?(?:data|schema|json)|"
        r"re-?index|rebuild\s+the\s+index)\b")
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
    ("edit", re.compile(r"^\s*(?:please\s+)?(?:edit|change|rewrite|modify)\s+(?:the\s+|this\s+)?"
                        r"(?:cell|notebook|file|function|code)\b", re.I)),
    ("task", re.compile(r"^\s*(?:(?:status\s+of|how\s+is)\s+)?(?:the\s+)?(?:task\s+)?`?(task-[0-9a-f]{6,})`?"
                        r"(?:\s+going)?\s*\??\s*$", re.I)),
    # after the lookups: "find dead code" is work, "find charge_card" a search — hence the
    # delegate-worthy finds are listed in WORK and matched before "search" below
]
_QUESTION = re.compile(r"^\s*(?:what|how|where|why|which|who|when|is|are|does|do|can|could|should|would)\b", re.I)
_WORK = re.compile(rf"^\s*({WORK}.*?)\s*$", re.I | re.S)


@dataclass
class Intent:
    name: str
    arg: str = ""
    text: str = ""
    extra: dict = field(default_factory=dict)


def route(text: str) -> Intent:
    if is_work(text):
        return Intent("delegate", text.strip(), text)
    for name, pattern in PATTERNS:
        m = pattern.match(text)
        if m:
            arg = m.group(m.lastindex or 0) if m.lastindex else ""
            if name == "explain" and not _looks_like_symbol(arg):
                break  # "what is the retry policy" is a question, not a symbol lookup
            return Intent(name, arg.strip(), text)
    return Intent("ask", text.strip(), text)


def is_work(text: str) -> bool:
    """Is `text` an imperative request for large work (see the module docstring)?"""
    stripped = text.strip()
    if not stripped or stripped.endswith("?"):
        return False
    if _QUESTION.match(stripped) and not re.match(r"^\s*(?:can|could)\s+you\b", stripped, re.I):
        return False
    return bool(_WORK.match(stripped))


def _looks_like_symbol(arg: str) -> bool:
    return bool(re.search(r"[._:/]|[a-z][A-Z]|^[A-Z]", arg)) and " " not in arg
