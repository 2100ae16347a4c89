"""DirEngKernel: an IPython kernel where prose is a message to DirEng.

A cell is Python when it starts with `%`, `%%` or `!` (IPython syntax) or is marked by a
first line `%%python`; any other cell is prose and becomes `%%direng` — so users mix chat
and code in one notebook. Completion after `@` offers symbol names from the index
(`@Session.req` → `@Session.request`); Shift+Tab on a symbol shows its signature, docstring,
location and callers.
"""

from __future__ import annotations

import re

from ipykernel.ipkernel import IPythonKernel

from .._version import __version__

SYMBOL_AT = re.compile(r"@([A-Za-z_][\w.:]*)?$")
WORD = re.compile(r"[@A-Za-z_][\w.:]*")


def is_python(code: str) -> bool:
    stripped = code.lstrip()
    return not stripped or stripped.startswith(("%", "!"))


def to_python(code: str) -> str:
    """The code the IPython machinery should run for a cell."""
    first, _, rest = code.lstrip().partition("\n")
    if first.strip() == "%%python":
        return rest
    if is_python(code):
        return code
    return "%%direng\n" + code


class DirEngKernel(IPythonKernel):
    implementation = "direng"
    implementation_version = __version__
    banner = "DirEng — ask about your codebase in plain words; start a cell with %%python for Python."
    help_links = []

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.shell.run_line_magic("load_ext", "direng_kernel")
        self._magics = self.shell.magics_manager.registry["DirEngMagics"]

    async def do_execute(self, code, silent, store_history=True, user_expressions=None, allow_stdin=False,
                         **kwargs):
        return await super().do_execute(to_python(code), silent, store_history, user_expressions, allow_stdin,
                                         **kwargs)

    # -- completion and inspection from the index -------------------------------
    def _client(self):
        return self._magics.client

    def do_complete(self, code, cursor_pos):
        cursor_pos = len(code) if cursor_pos is None else cursor_pos
        m = SYMBOL_AT.search(code[:cursor_pos])
        if m:
            prefix = m.group(1) or ""
            try:
                matches = self._client().complete(prefix, 30)
            except Exception:  # noqa: BLE001 — completion must never break typing
                matches = []
            return {"status": "ok", "matches": matches, "cursor_start": cursor_pos - len(prefix),
                    "cursor_end": cursor_pos, "metadata": {}}
        if is_python(code) or code.lstrip().startswith("%%python"):
            return super().do_complete(code, cursor_pos)
        return {"status": "ok", "matches": [], "cursor_start": cursor_pos, "cursor_end": cursor_pos, "metadata": {}}

    def _word_at(self, code: str, pos: int) -> str:
        for m in WORD.finditer(code):
            if m.start() <= pos <= m.end():
                return m.group(0).lstrip("@").rstrip(".:")
        return ""

    def do_inspect(self, code, cursor_pos, detail_level=0, omit_sections=()):
        word = self._word_at(code, len(code) if cursor_pos is None else cursor_pos)
        python = is_python(code) or code.lstrip().startswith("%%python")
        if word and not (python and not code[max(0, cursor_pos - len(word) - 1):].startswith("@")):
            try:
                info = self._client().inspect(word)
            except Exception:  # noqa: BLE001 — unknown symbol: fall through to Python or nothing
                info = None
            if info:
                loc = f"{info['path']}:{info['start_line']}-{info['end_line']}" if info.get("path") else "unresolved"
                callers = ", ".join(info.get("callers", [])[:10]) or "none found"
                text = (f"{info['symbol']} ({info['kind']}) — {loc}\n{info.get('signature') or ''}\n\n"
                        f"{info.get('docstring') or '(no docstring)'}\n\ncallers: {callers}")
                md = (f"**`{info['symbol']}`** ({info['kind']}) — `{loc}`\n\n```\n{info.get('signature') or ''}\n```\n\n"
                      f"{info.get('docstring') or '*(no docstring)*'}\n\n**callers:** {callers}")
                return {"status": "ok", "found": True, "data": {"text/plain": text, "text/markdown": md},
                        "metadata": {}}
        if python:
            return super().do_inspect(code, cursor_pos, detail_level, omit_sections)
        return {"status": "ok", "found": False, "data": {}, "metadata": {}}

    def do_is_complete(self, code):
        if is_python(code) or code.lstrip().startswith("%%python"):
            return super().do_is_complete(to_python(code))
        # Prose is complete when it ends with a blank line or a sentence end; else keep typing.
        if code.endswith("\n\n") or code.rstrip().endswith((".", "?", "!")):
            return {"status": "complete"}
        return {"status": "incomplete", "indent": ""}
