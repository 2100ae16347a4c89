"""The tool layer DirEng (and any generative provider it consults) works through.

Each tool is a method with a JSON-Schema description; a provider's tool call is dispatched
by name, its arguments validated by the method's signature, and its result returned as
compact text. Paths are confined to the indexed root: `..`, absolute paths and symlinks that
leave it are refused.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import confined
from ..discovery import NOTEBOOK_SUFFIX
from ..errors import DirEngError
from ..index.notebooks import cell_source
from ..models import ToolCall, ToolSpec

MAX_READ_LINES = 400
MAX_OUTPUT = 12_000


class ToolError(DirEngError):
    """A tool call that cannot be carried out (bad path, unknown tool, bad arguments)."""


def confine(root: Path, rel: str) -> Path:
    """Resolve `rel` under `root`, refusing anything that ends up outside it."""
    if not rel or "\x00" in rel:
        raise ToolError("empty or invalid path")
    if Path(rel).is_absolute():
        raise ToolError(f"absolute paths are not allowed: {rel}")
    try:
        return Path(root).resolve().joinpath(*confined.relative_parts(root, rel, follow_links=True))
    except confined.ConfinementError:
        raise ToolError(f"path leaves the repository: {rel}") from None


class ToolBox:
    def __init__(self, workbench):
        self.wb = workbench
        self.root = Path(workbench.root)

    # -- tools ------------------------------------------------------------------
    def search(self, query: str, k: int = 8) -> str:
        hits = self.wb.search(query, k=min(int(k), 20))
        return "\n".join(f"{h.citation} {h.kind} {h.symbol or ''} {h.signature}".strip() for h in hits) or "no hits"

    def read_file_range(self, path: str, start_line: int = 1, end_line: int = 80, cell: int | None = None) -> str:
        target = confine(self.root, path)
        start, end = max(1, int(start_line)), int(end_line)
        end = min(end, start + MAX_READ_LINES - 1)
        try:
            # Opened without following links: the checked path cannot be swapped for one meanwhile.
            text = confined.read_text(self.root, target)
        except confined.ConfinementError as exc:
            raise ToolError(f"cannot read {path}: {exc}") from None
        except OSError:
            raise ToolError(f"no such file: {path}") from None
        if str(path).endswith(NOTEBOOK_SUFFIX):  # a notebook is read a cell at a time, never as JSON
            if cell is None:
                raise ToolError(f"{path} is a notebook: give `cell` (0-based), as its citations do")
            text = cell_source(text, int(cell))
            if text is None:
                raise ToolError(f"{path} has no cell {cell}")
        lines = text.splitlines()[start - 1:end]
        return "\n".join(f"{start + i:5d}  {line}" for i, line in enumerate(lines))

    def graph_neighbours(self, symbol: str, direction: str = "both", depth: int = 1) -> str:
        if direction not in ("both", "callers", "callees"):
            raise ToolError("direction must be both, callers or callees")
        g = self.wb.graph(symbol, direction=direction, depth=min(int(depth), 3), max_nodes=60)
        names = {n.id: f"{n.name} ({n.path}:{'' if n.cell is None else f'cell {n.cell}:'}{n.start_line})"
                 if n.path else n.name for n in g.nodes}
        return "\n".join(f"{names[e.source]} -[{e.kind}{'' if e.resolved else ', unresolved'}]-> {names[e.target]}"
                         for e in g.edges) or f"{symbol}: no edges"

    def git_status(self) -> str:
        return self._git("status", "--short", "--branch")

    def git_diff(self, path: str = "") -> str:
        args = ["diff", "--stat", "--patch"]
        if path:
            args += ["--", str(confine(self.root, path).relative_to(self.root.resolve()))]
        return self._git(*args)

    def git_log(self, n: int = 10) -> str:
        return self._git("log", f"-{min(int(n), 50)}", "--format=%h %ad %an %s", "--date=short")

    def index_status(self) -> str:
        return self.wb.status().model_dump_json(indent=1)

    # -- dispatch ---------------------------------------------------------------
    def _git(self, *args: str) -> str:
        """Run git for a tool call through the `chat` allowlist and the sandbox, like a lane command:
        a model cannot run anything a lane could not."""
        from ..pas.allowlist import AllowlistError, load_lane_allowlist
        from ..pas.sandbox import CommandDenied, SandboxError, run_command

        try:
            result = run_command(["git", *args], cwd=self.root, writable=[], allowlist=load_lane_allowlist("chat"),
                                 env=None)
        except CommandDenied as exc:
            from ..security import audit

            audit.record("command.denied", actor="model-tool", argv=["git", *args], reason=str(exc))
            raise ToolError(str(exc)) from exc
        except (AllowlistError, SandboxError, OSError) as exc:
            raise ToolError(f"git failed: {exc}") from exc
        if result.returncode != 0:
            err = result.stderr.strip()
            raise ToolError(err.splitlines()[-1] if err else "not a git repository")
        return result.stdout[:MAX_OUTPUT] or "(empty)"

    SPECS = [
        ToolSpec(name="search", description="Hybrid search over the code index; returns path:lines, kind, symbol.",
                 parameters={"type": "object", "properties": {"query": {"type": "string"},
                             "k": {"type": "integer", "minimum": 1, "maximum": 20}}, "required": ["query"]}),
        ToolSpec(name="read_file_range", description="Read lines of a file in the repository (max 400 lines).",
                 parameters={"type": "object", "properties": {"path": {"type": "string"},
                             "start_line": {"type": "integer"}, "end_line": {"type": "integer"},
                             "cell": {"type": "integer", "description": "0-based cell, for a .ipynb notebook"}},
                             "required": ["path"]}),
        ToolSpec(name="graph_neighbours", description="Callers, callees or all neighbours of a symbol in the code graph.",
                 parameters={"type": "object", "properties": {"symbol": {"type": "string"},
                             "direction": {"enum": ["both", "callers", "callees"]},
                             "depth": {"type": "integer", "minimum": 1, "maximum": 3}}, "required": ["symbol"]}),
        ToolSpec(name="git_status", description="git status of the repository.",
                 parameters={"type": "object", "properties": {}}),
        ToolSpec(name="git_diff", description="Uncommitted changes (optionally of one path).",
                 parameters={"type": "object", "properties": {"path": {"type": "string"}}}),
        ToolSpec(name="git_log", description="Recent commits.",
                 parameters={"type": "object", "properties": {"n": {"type": "integer", "maximum": 50}}}),
        ToolSpec(name="index_status", description="Freshness of the code index.",
                 parameters={"type": "object", "properties": {}}),
    ]

    def specs(self) -> list[ToolSpec]:
        return list(self.SPECS)

    def call(self, call: ToolCall) -> str:
        """Run a tool call; errors come back as text so the model can recover."""
        if call.name not in {s.name for s in self.SPECS}:
            return f"error: unknown tool {call.name!r}"
        try:
            result = getattr(self, call.name)(**call.arguments)
        except TypeError as exc:
            return f"error: bad arguments for {call.name}: {exc}"
        except DirEngError as exc:
            return f"error: {exc}"
        return result if isinstance(result, str) else json.dumps(result)[:MAX_OUTPUT]
