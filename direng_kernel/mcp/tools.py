"""The DirEng MCP tools, defined once: typed arguments, typed results, the scopes each one needs.

Every transport (stdio, the server extension's Streamable HTTP endpoint) serves this one table
through `server.build_server`. A tool is a `ToolDef`: its arguments are a pydantic model (the
tool's JSON Schema `inputSchema` is generated from it, and a call's arguments are validated by
it), its result is a pydantic model (`outputSchema`; the reply carries it as `structuredContent`
and, for older clients, as JSON text), and `run` calls the one application API,
`client.Client` — the `Engine` in-process or `HttpClient` over REST — never the index directly.

Scopes are those of the REST API, operation for operation, so MCP is never a way around them:

    search, graph, read_range, repo_map, status   index:read
    task_new, task_estimate                       tasks:write
    task_approve                                  tasks:write + runs:execute (approving runs code,
                                                  like POST /tasks/{id}/approve)
    task_status                                   tasks:write + tasks:read

The task tools form one group that only a caller with `tasks:write` sees; `task_approve` and
`task_status` also need the scope their REST operation needs. A tool whose scopes the caller
lacks is not listed, and calling it anyway is an error result naming the missing scope.

Failures are results, never crashes: bad arguments, an unknown symbol or task, a path outside
the root come back as `CallToolResult(isError=True)` whose text is a JSON object with the
engine error's stable `code` (the same codes as the REST API's error replies), a one-line
`message` and its details (e.g. `suggestions` for an unknown symbol).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Optional, TypeVar

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..client import Client
from ..errors import DirEngError
from ..models import (DEFAULT_GRAPH_DIRECTION, DEFAULT_SEARCH_MODE, GraphDirection, GraphEdge, GraphNode, GraphResult,
                      IndexStatus, SearchMode, Task, TaskEvent)
from ..security.tokens import InsufficientScope

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Bounds shared with the REST API (server/handlers/search.py, graph.py), so a tool accepts what
#: the same query accepts over REST, and nothing an engine call could choke on.
MAX_K = 200
MAX_DEPTH = 10
MAX_NODES = 5000
MIN_TOKENS, MAX_TOKENS = 16, 1_000_000
MAX_READ_LINES = 400  # what the tool layer reads at most (direng/tools.py MAX_READ_LINES)
DEFAULT_READ_LINES = 80
MAX_EVENTS = 100  # task_status returns at most the latest this many events

#: The error `code` of a call the caller's scopes do not allow (the REST API's 403 code).
MISSING_SCOPE_CODE = InsufficientScope.error_code
BAD_ARGUMENTS_CODE = "bad_arguments"
INTERNAL_CODE = "internal"


async def to_thread(fn: Callable[[], T]) -> T:
    """Run a blocking engine call on a worker thread (the engine is synchronous; the MCP loop is not)."""
    return await anyio.to_thread.run_sync(fn)


@dataclass(frozen=True)
class Caller:
    """Who is calling, as its transport established it: the application API to call on their
    behalf, the scopes they hold, and how blocking calls leave the event loop.

    Over stdio the caller is the user who started the process (every scope, or what `--scopes`
    kept); over HTTP the server extension builds one per request from the DirEng token (or
    Jupyter login) that `DirEngHandler` verified.
    """

    client: Client
    scopes: frozenset[str]
    run_blocking: Callable[[Callable[[], Any]], Awaitable[Any]] = to_thread
    subject: str | None = None
    #: What an audit record of this caller's refusals says about them (transport, client address,
    #: the token's `jti`/`kid`): never token material.
    identity: Mapping[str, str] = field(default_factory=dict)

    def missing(self, needed: Iterable[str]) -> list[str]:
        return [s for s in needed if s not in self.scopes]


class ToolFailure(DirEngError):
    """A tool call that cannot be carried out, with the `code` its error result carries."""

    def __init__(self, message: str, code: str = BAD_ARGUMENTS_CODE, **details: Any):
        super().__init__(message)
        self.code = code
        self._details = details

    def details(self) -> dict[str, Any]:
        return dict(self._details)


# -- arguments --------------------------------------------------------------------------------------

class _Args(BaseModel):
    # Unknown arguments are refused, not ignored: a misspelt `depht` must not silently mean depth 1.
    model_config = ConfigDict(extra="forbid")


class SearchArgs(_Args):
    query: str = Field(min_length=1, max_length=2000, description="What to look for, in words or identifiers.")
    k: int = Field(10, ge=1, le=MAX_K, description="How many hits, best first.")
    mode: SearchMode = Field(DEFAULT_SEARCH_MODE, description="hybrid (default: lexical + vectors + graph), "
                             "bm25, dense (MiniLM) or static (the static embedding model).")


class GraphArgs(_Args):
    symbol: str = Field(min_length=1, max_length=1000,
                        description="A symbol (`charge_card`, `Session.request`, `path/to/file.py::Name`) or a file.")
    direction: GraphDirection = Field(DEFAULT_GRAPH_DIRECTION,
                                      description="callers, callees, or both (all neighbours).")
    depth: int = Field(1, ge=0, le=MAX_DEPTH, description="Hops to follow from the symbol.")
    max_nodes: int = Field(150, ge=1, le=MAX_NODES, description="Cap on the nodes returned.")


class ReadRangeArgs(_Args):
    path: str = Field(min_length=1, max_length=1000, description="A file path relative to the repository root.")
    start: int = Field(1, ge=1, description="First line (1-based).")
    end: Optional[int] = Field(None, ge=1, description=f"Last line, inclusive (default start+{DEFAULT_READ_LINES - 1}; "
                               f"at most {MAX_READ_LINES} lines are read).")
    cell: Optional[int] = Field(None, ge=0, description="For a .ipynb notebook: the 0-based cell (lines count "
                                "within it), as in a `path:cell N:start-end` citation.")


class RepoMapArgs(_Args):
    tokens: int = Field(1024, ge=MIN_TOKENS, le=MAX_TOKENS, description="Token budget of the outline.")
    focus: list[str] = Field(default_factory=list, max_length=50,
                             description="Files or symbols to centre the ranking on.")


class NoArgs(_Args):
    pass


class TaskNewArgs(_Args):
    title: str = Field(min_length=1, max_length=500, description="What the task is, in one line.")
    brief: str = Field("", max_length=20_000, description="Details for the lane.")
    lane: Optional[str] = Field(None, max_length=100, description="A lane id (code-impl, code-api-design, "
                                "data-schema, vector-ops, graph-ops, narrative, or a user lane); routed from the "
                                "wording when absent.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="The lane's parameters.")
    idempotency_key: Optional[str] = Field(None, max_length=200,
                                           description="Repeating a key returns the task it created.")
    rehearsal: bool = Field(False, description="A rehearsal run never calibrates PLMS.")


class TaskIdArgs(_Args):
    task_id: str = Field(min_length=1, max_length=200, description="The task's id (from task_new).")


class TaskStatusArgs(TaskIdArgs):
    events_after: int = Field(0, ge=0, description="Only events with a sequence number above this "
                              f"(at most the latest {MAX_EVENTS}).")


# -- results -------------------------------------------------------------------------------------

class CitedHit(BaseModel):
    """A search hit with its citation: `path:start-end`, or `path:cell N:start-end` in a notebook."""

    path: str
    symbol: Optional[str] = None
    kind: str
    start_line: int
    end_line: int
    cell: Optional[int] = None
    score: float
    signature: str = ""
    snippet: str = ""
    citation: str


class SearchResult(BaseModel):
    hits: list[CitedHit]


class GraphToolResult(BaseModel):
    """`GraphResult` without its code excerpts (read them with read_range)."""

    center: str
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    truncated: bool = False


class ReadRangeResult(BaseModel):
    path: str
    cell: Optional[int] = None
    start_line: int
    end_line: int
    text: str = Field(description="The lines, without line numbers (secrets and PII redacted).")
    citation: str


class RepoMapResult(BaseModel):
    map: str
    tokens: int


class TaskStatusResult(BaseModel):
    task: Task
    events: list[TaskEvent]


# -- the tools -----------------------------------------------------------------------------------

Runner = Callable[[Caller, Any], Awaitable[BaseModel]]


@dataclass(frozen=True)
class ToolDef:
    """One MCP tool: name, arguments model, result model, the scopes it needs, what it does."""

    name: str
    title: str
    description: str
    args: type[_Args]
    result: type[BaseModel]
    scopes: tuple[str, ...]
    run: Runner = field(repr=False)
    read_only: bool = True

    @cached_property
    def input_schema(self) -> dict[str, Any]:
        return self.args.model_json_schema()

    @cached_property
    def output_schema(self) -> dict[str, Any]:
        return self.result.model_json_schema(mode="serialization")

    def allowed(self, scopes: Iterable[str]) -> bool:
        granted = set(scopes)
        return all(s in granted for s in self.scopes)


def _cited(hit) -> CitedHit:
    return CitedHit(path=hit.path, symbol=hit.symbol, kind=hit.kind, start_line=hit.start_line,
                    end_line=hit.end_line, cell=hit.cell, score=hit.score, signature=hit.signature,
                    snippet=hit.snippet, citation=hit.citation)


async def _search(caller: Caller, a: SearchArgs) -> SearchResult:
    hits = await caller.run_blocking(lambda: caller.client.search(a.query, k=a.k, mode=a.mode))
    return SearchResult(hits=[_cited(h) for h in hits])


async def _graph(caller: Caller, a: GraphArgs) -> GraphToolResult:
    result: GraphResult = await caller.run_blocking(
        lambda: caller.client.graph(a.symbol, direction=a.direction, depth=a.depth, max_nodes=a.max_nodes))
    data = result.model_dump(mode="json", exclude={"code"})
    return GraphToolResult.model_validate(data)


def _strip_numbers(numbered: str, start: int) -> list[str]:
    """Invert the tool layer's `f"{n:5d}  {line}"` rendering, line by line (its output is the one
    confined, notebook-aware read; MCP returns the lines bare, with the range alongside)."""
    lines = numbered.split("\n") if numbered else []
    out = []
    for i, line in enumerate(lines):
        prefix = f"{start + i:5d}  "
        if not line.startswith(prefix):  # never expected: the format is the tool layer's contract
            raise ToolFailure("unexpected output from the file reader", code=INTERNAL_CODE)
        out.append(line[len(prefix):])
    return out


def _read_range_sync(client: Client, a: ReadRangeArgs) -> ReadRangeResult:
    from ..direng.tools import ToolBox
    from ..security.scrub import scrub

    if getattr(client, "root", None) is None:
        raise ToolFailure("read_range needs the repository root, which this client does not know",
                          code="unavailable")
    end = a.end if a.end is not None else a.start + DEFAULT_READ_LINES - 1
    if end < a.start:
        raise ToolFailure(f"end ({end}) is before start ({a.start})")
    # The DirEng tool layer owns confinement (no `..`, absolute paths or symlinks out of the root)
    # and the notebook rule (a .ipynb is read one cell at a time). It only reads `.root` from what
    # it is given, which both transports of the Client API have.
    numbered = ToolBox(client).read_file_range(a.path, a.start, end, cell=a.cell)
    lines = _strip_numbers(numbered, a.start)
    if not lines:
        where = f"cell {a.cell} of {a.path}" if a.cell is not None else a.path
        raise ToolFailure(f"{where} has no line {a.start}")
    last = a.start + len(lines) - 1
    # Read straight from disk, unlike the index's text: redact before it leaves, as DirEng does
    # with tool output (a redacted text keeps its line count, so the range stays true).
    text = scrub("\n".join(lines), a.path)
    cell = f"cell {a.cell}:" if a.cell is not None else ""
    return ReadRangeResult(path=a.path, cell=a.cell, start_line=a.start, end_line=last, text=text,
                           citation=f"{a.path}:{cell}{a.start}-{last}")


async def _read_range(caller: Caller, a: ReadRangeArgs) -> ReadRangeResult:
    return await caller.run_blocking(lambda: _read_range_sync(caller.client, a))


async def _repo_map(caller: Caller, a: RepoMapArgs) -> RepoMapResult:
    text = await caller.run_blocking(lambda: caller.client.repo_map(a.tokens, [f for f in a.focus if f.strip()]))
    return RepoMapResult(map=text, tokens=a.tokens)


async def _status(caller: Caller, a: NoArgs) -> IndexStatus:
    return await caller.run_blocking(caller.client.status)


async def _task_new(caller: Caller, a: TaskNewArgs) -> Task:
    return await caller.run_blocking(lambda: caller.client.new_task(
        a.title, a.brief, a.lane, a.parameters, a.idempotency_key, a.rehearsal))


def _action(action: str) -> Runner:
    async def run(caller: Caller, a: TaskIdArgs) -> Task:
        def act() -> Task:
            caller.client.task(a.task_id)  # an unknown id is "unknown task", whatever the action would say
            return caller.client.task_action(a.task_id, action)

        return await caller.run_blocking(act)

    return run


async def _task_status(caller: Caller, a: TaskStatusArgs) -> TaskStatusResult:
    def status() -> TaskStatusResult:
        task = caller.client.task(a.task_id)
        events = caller.client.task_events(a.task_id, a.events_after)
        return TaskStatusResult(task=task, events=events[-MAX_EVENTS:])

    return await caller.run_blocking(status)


TOOLS: tuple[ToolDef, ...] = (
    ToolDef("search", "Search the code index",
            "Hybrid search (lexical + vectors + call graph) over the indexed repository. Each hit has path, "
            "symbol, kind, 1-based inclusive start/end lines, the notebook cell if any, score, snippet and a "
            "`citation` (`path:start-end`, or `path:cell N:start-end`) that read_range can open. Questions like "
            "'what calls X?' are answered from the call graph.",
            SearchArgs, SearchResult, ("index:read",), _search),
    ToolDef("graph", "Call/import graph around a symbol",
            "Nodes and edges around a symbol: its callers, callees or both, up to `depth` hops. Edges are "
            "contains, imports, calls, inherits, implements, references; unresolved ones are flagged. An unknown "
            "symbol is an error listing close names.",
            GraphArgs, GraphToolResult, ("index:read",), _graph),
    ToolDef("read_range", "Read lines of a file",
            f"Read lines start..end (1-based, inclusive, at most {MAX_READ_LINES}) of a file in the repository. "
            "Paths are relative to the root and cannot leave it. A notebook needs `cell`, as its citations give.",
            ReadRangeArgs, ReadRangeResult, ("index:read",), _read_range),
    ToolDef("repo_map", "Ranked outline of the repository",
            "An outline of the repository's files and symbols ranked by importance (PageRank over the graph), "
            "within a token budget, optionally centred on files or symbols.",
            RepoMapArgs, RepoMapResult, ("index:read",), _repo_map),
    ToolDef("status", "Index status",
            "Files, symbols and chunks indexed, the indexed and HEAD commits, how fresh the index is, skipped "
            "files by reason.",
            NoArgs, IndexStatus, ("index:read",), _status),
    ToolDef("task_new", "Create a delegated task",
            "Create a DirEng task (PEX) for a lane; the lane is routed from the wording unless given. The task "
            "starts in state `new`: estimate it, then approve it to run.",
            TaskNewArgs, Task, ("tasks:write",), _task_new, read_only=False),
    ToolDef("task_estimate", "Estimate a task",
            "PLMS estimate of a task's duration (p50/p90 from the lane's calibrated history, or the prior).",
            TaskIdArgs, Task, ("tasks:write",), _action("estimate"), read_only=False),
    ToolDef("task_approve", "Approve a task",
            "Approve an estimated task so that it can run (needs runs:execute: approved tasks execute code).",
            TaskIdArgs, Task, ("tasks:write", "runs:execute"), _action("approve"), read_only=False),
    ToolDef("task_status", "A task's state and events",
            "A task's state, estimate, run id and error, with its event log after `events_after`.",
            TaskStatusArgs, TaskStatusResult, ("tasks:write", "tasks:read"), _task_status),
)
TOOLS_BY_NAME: dict[str, ToolDef] = {t.name: t for t in TOOLS}


def visible_tools(scopes: Iterable[str]) -> list[ToolDef]:
    """The tools a caller holding `scopes` may see and call, in table order."""
    granted = frozenset(scopes)
    return [t for t in TOOLS if t.allowed(granted)]


# -- calling -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What a tool call produced: the structured result, or an error object (`code`, `message`, ...)."""

    data: dict[str, Any]
    is_error: bool = False

    def text(self) -> str:
        return json.dumps(self.data, ensure_ascii=False)


def _error(code: str, message: str, **details: Any) -> Outcome:
    return Outcome({"code": code, "message": message, **details}, is_error=True)


def _validation_message(tool: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return f"bad arguments for {tool}: " + "; ".join(parts)


async def call_tool(tool: ToolDef, caller: Caller, arguments: dict[str, Any] | None) -> Outcome:
    """Check the caller's scopes, validate the arguments, run the tool: a result or an error
    `Outcome`, never an exception (unexpected ones are logged with their traceback and answered
    with a generic `internal` error, like the REST API's 500s)."""
    missing = caller.missing(tool.scopes)
    if missing:
        return _error(MISSING_SCOPE_CODE, f"{tool.name} needs scope {missing[0]!r}, which this caller lacks",
                      missing_scope=missing[0])
    try:
        args = tool.args.model_validate(arguments or {})
    except ValidationError as exc:
        return _error(BAD_ARGUMENTS_CODE, _validation_message(tool.name, exc))
    try:
        result = await tool.run(caller, args)
    except ToolFailure as exc:
        return _error(exc.code, str(exc), **exc.details())
    except DirEngError as exc:
        return _error(exc.error_code, str(exc), **exc.details())
    except Exception as exc:  # noqa: BLE001 — a tool call never takes the server down
        log.exception("DirEng MCP: tool %s failed", tool.name)
        return _error(INTERNAL_CODE, f"internal error in {tool.name}: {type(exc).__name__}")
    return Outcome(result.model_dump(mode="json"))
