"""Pydantic types shared across components.

Everything that crosses a component boundary (parser → graph → store → search → surfaces)
is one of these models, or one of the index's records (`records.py`, re-exported here), so the
CLI's JSON, the REST API and the Python API agree. This module imports nothing heavy, but
pydantic itself costs a light command ~120 ms: the index and a one-shot search use records.py.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Callable, Literal, Optional, get_args

from pydantic import BaseModel, ConfigDict, Field

# The index's records are plain dataclasses, so a one-shot search imports no pydantic; as fields
# of the models below pydantic validates and describes them all the same.
from .records import Chunk, ChunkKind, Hit, ParsedFile, RefKind, Reference, Symbol, SymbolKind  # noqa: F401


class GraphNode(BaseModel):
    id: str
    kind: str  # file | module | a SymbolKind value | external
    name: str
    path: Optional[str] = None
    start_line: Optional[int] = None
    end_line: Optional[int] = None
    signature: str = ""
    importance: float = 0.0
    cell: Optional[int] = None  # 0-based notebook cell of a notebook's symbol (lines are within it)


class GraphEdge(BaseModel):
    source: str
    target: str
    kind: str  # contains | imports | calls | inherits | implements | references
    line: Optional[int] = None
    resolved: bool = True


class GraphResult(BaseModel):
    center: str
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    truncated: bool = False
    code: dict[str, str] = Field(default_factory=dict)  # node id → source excerpt, when asked for


#: `GET /health` and `GET /pas/health`: degraded while the policy file or a lane is invalid.
HEALTH_STATUSES: tuple[str, ...] = ("ok", "degraded")


class IndexStatus(BaseModel):
    root: str
    store: str
    files: int
    symbols: int
    chunks: int
    dense_chunks: int = 0  # chunks that also have a MiniLM vector
    indexed_commit: Optional[str] = None
    head_commit: Optional[str] = None
    last_refresh: Optional[datetime] = None
    # How long HEAD has gone unindexed: 0 when the index reflects HEAD, else seconds since
    # the HEAD commit was made; None without git or before the first index.
    lag_seconds: Optional[float] = None
    since_refresh_seconds: Optional[float] = None
    commits_behind: Optional[int] = None
    fresh: bool = False
    skipped: dict[str, int] = Field(default_factory=dict)

    def freshness(self) -> str:
        """The one wording every surface shows: fresh, N commit(s) behind HEAD, or not indexed."""
        if self.last_refresh is None:
            return "not indexed yet"
        if self.fresh:
            return "fresh (index reflects HEAD)" if self.head_commit else "fresh (no git: by content hash)"
        behind = "?" if self.commits_behind is None else self.commits_behind
        lag = f", HEAD unindexed for {self.lag_seconds:.1f}s" if self.lag_seconds is not None else ""
        return f"{behind} commit(s) behind HEAD{lag}"

    def summary(self) -> str:
        """One Markdown line: what is indexed, at which commit, how fresh."""
        return (f"`{self.root}`: {self.files} files, {self.symbols} symbols, {self.chunks} chunks "
                f"({self.dense_chunks} with MiniLM vectors); commit `{(self.indexed_commit or '-')[:12]}`, "
                f"{self.freshness()}; last refresh {self.last_refresh or 'never'}")


class IndexReport(BaseModel):
    """What one `index()` run did."""

    root: str
    added: int = 0
    modified: int = 0
    deleted: int = 0
    unchanged: int = 0
    skipped: dict[str, int] = Field(default_factory=dict)  # reason → count
    syntax_errors: int = 0  # files indexed as far as tree-sitter recovered
    lossy_decoded: int = 0  # files with undecodable bytes, indexed with replacement characters
    chunks_embedded: int = 0
    seconds: float = 0.0
    indexed_commit: Optional[str] = None
    changed_paths: list[str] = Field(default_factory=list)
    # Seconds per stage of this run: read, scrub, parse, chunk, static_vectors, store, graph.
    stages: dict[str, float] = Field(default_factory=dict)


#: A retriever (`SearchEngine.search`): hybrid fuses BM25, MiniLM and the static embedding model,
#: then boosts by the call graph; the others run one retriever (dense adds static at half weight).
SearchMode = Literal["hybrid", "bm25", "dense", "static"]
#: The search modes, default first: the one list the engine's callers, the CLI, the REST API and
#: docs/api.yaml must agree with (tests compare them).
SEARCH_MODES: tuple[str, ...] = get_args(SearchMode)
DEFAULT_SEARCH_MODE: str = SEARCH_MODES[0]

#: Which way a graph query walks from its symbol, default first.
GraphDirection = Literal["both", "callers", "callees"]
GRAPH_DIRECTIONS: tuple[str, ...] = get_args(GraphDirection)
DEFAULT_GRAPH_DIRECTION: str = GRAPH_DIRECTIONS[0]

#: The kinds of graph edge `resolve.py` writes.
EDGE_KINDS: tuple[str, ...] = ("contains", "imports", "calls", "inherits", "implements", "references")


# -- DirEng conversation and the model broker (shared by direng/, broker/, server/, magics) --

#: The built-in lanes as (lane id, broker policy route name): the one list of them. The task
#: queue, the lane registry (pas/lanes.py), PLMS and the API use the ids (`LANE_IDS`), the broker
#: policy the route names (`LANES` = every lane's route, then `chat`, DirEng's own conversation,
#: a route but no lane). User lanes register with pas/lanes.py; the broker takes their routes as
#: `extra_lanes`.
BUILTIN_LANES: tuple[tuple[str, str], ...] = (
    ("code-impl", "Code-Impl"),
    ("code-api-design", "Code-API-Design"),
    ("data-schema", "Data-Schema"),
    ("vector-ops", "Vector-Ops"),
    ("graph-ops", "Graph-Ops"),
    ("narrative", "Narrative"),
)
LANE_IDS: tuple[str, ...] = tuple(lane for lane, _ in BUILTIN_LANES)
LANE_ROUTES: dict[str, str] = dict(BUILTIN_LANES)
CHAT_ROUTE = "chat"
LANES: tuple[str, ...] = (*LANE_ROUTES.values(), CHAT_ROUTE)

#: Where a lane routing record comes from (`plms/corrections.py`): `routed` is the router's own
#: decision that nobody changed; the rest are the user's word, the classifier's labelled examples:
#: `task_new` (`task new --lane X` where the router said Y, or agreed), `asked` (the answer to an
#: uncertain routing), `approval` (a lane change before approval: estimate in another lane),
#: `escalation` (change_lane answering an escalation), `recreated` (a cancelled task re-created
#: in another lane).
RoutingSource = Literal["routed", "task_new", "asked", "approval", "escalation", "recreated"]
ROUTING_SOURCES: tuple[str, ...] = get_args(RoutingSource)
#: The sources that are the user's choice (labelled examples for the lane classifier).
CORRECTION_SOURCES: tuple[str, ...] = ROUTING_SOURCES[1:]


class LaneChoice(BaseModel):
    """One lane the router considered: its probability and why."""

    lane: str
    probability: float
    reasons: list[str] = Field(default_factory=list)


class RoutingDecision(BaseModel):
    """The lane classifier's answer for a brief: its lane, the top two with their reasons, and
    whether the margin between them is below the threshold (then DirEng asks instead of guessing)."""

    lane: str
    candidates: list[LaneChoice]
    margin: float
    threshold: float
    uncertain: bool
    corrections: int = 0  # labelled examples the classifier was fitted on (besides the seeds)
    override: Optional[str] = None  # the id of the policy's lane override that decided, if one did


class LaneOverride(BaseModel):
    """A policy-level lane override (the broker policy's `lane_overrides`, `plms/overrides.py`):
    a brief containing every one of `words` goes to `lane`, before the lane classifier is asked."""

    model_config = ConfigDict(extra="forbid")

    id: str
    words: list[str]
    lane: str
    routed: Optional[str] = None  # the lane the router chose for the briefs that taught it
    corrections: int = 0  # how many corrections taught it
    description: str = ""


class OverrideProposal(BaseModel):
    """A lane override learned from repeated misroutes, with its evidence."""

    override: LaneOverride
    briefs: list[str]  # the corrections' briefs that taught it (scrubbed), oldest first
    conflicts: list[str] = Field(default_factory=list)  # briefs with these words the user put in another lane
    accepted: bool = False  # already in the policy in force


class Usage(BaseModel):
    """What one provider call cost; every call records one."""

    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0  # in the policy's currency
    latency_ms: float = 0.0


class ToolSpec(BaseModel):
    """A tool offered to a generative provider (JSON Schema parameters)."""

    name: str
    description: str
    parameters: dict


class ToolCall(BaseModel):
    id: str
    name: str
    arguments: dict = Field(default_factory=dict)


Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = get_args(Role)


class ChatMessage(BaseModel):
    role: Role
    content: str
    name: Optional[str] = None  # tool name, for role == "tool"
    tool_call_id: Optional[str] = None
    tool_calls: list[ToolCall] = Field(default_factory=list)  # an assistant turn that called tools


class ProviderRequest(BaseModel):
    lane: str = "chat"
    messages: list[ChatMessage]
    tools: list[ToolSpec] = Field(default_factory=list)
    max_output_tokens: int = 1024
    temperature: float = 0.0
    # The live notebook, structured, for providers that answer from it directly (`local`); a
    # generative provider sees it rendered in a system message instead.
    context: Optional["NotebookContext"] = None
    #: The version of the agent contract (contracts.py) whose text is the system prompt; recorded
    #: with the request's usage.
    contract_version: Optional[str] = None


class ProviderResponse(BaseModel):
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage
    finish_reason: str = "stop"
    # A retrieval provider (`local`) returns its evidence with the answer, so the caller never
    # has to read it back from shared state that a concurrent request may have replaced.
    citations: list[Hit] = Field(default_factory=list)


class VariableSummary(BaseModel):
    """One name in the user's namespace, described without its value."""

    name: str
    type: str  # e.g. "DataFrame", "ndarray", "int", "function"
    shape: Optional[list[int]] = None  # arrays and frames
    dtype: Optional[str] = None  # arrays and Series
    length: Optional[int] = None  # sized containers and strings (the length only, never the text)
    columns: dict[str, str] = Field(default_factory=dict)  # DataFrame column → dtype


class NotebookContext(BaseModel):
    """What a notebook tells DirEng along with a message: where the user is and what their
    namespace holds — names, types, shapes, columns and dtypes, never values. Built capped and
    scrubbed by the surface (`context.py`); the broker's data rules apply to it as to the message."""

    path: Optional[str] = Field(None, max_length=1000)  # the notebook, relative to the root when inside it
    cell: Optional[int] = None  # execution count of the active cell
    cell_source: str = Field("", max_length=20_000)
    error: Optional[str] = Field(None, max_length=20_000)  # the previous error: type, message, last frames
    namespace: list[VariableSummary] = Field(default_factory=list, max_length=200)
    truncated: bool = False  # names or columns were left out to stay within the cap

    def variable(self, name: str) -> Optional[VariableSummary]:
        return next((v for v in self.namespace if v.name == name), None)

    def describe(self, v: VariableSummary) -> str:
        parts = [v.type]
        if v.shape is not None:
            parts.append("×".join(map(str, v.shape)))
        if v.dtype:
            parts.append(f"dtype {v.dtype}")
        if v.length is not None and v.shape is None:
            parts.append(f"length {v.length}")
        text = f"`{v.name}`: " + " ".join(parts)
        if v.columns:
            text += ", columns " + ", ".join(f"`{c}` ({d})" for c, d in v.columns.items())
        return text

    def render(self) -> str:
        """The context as plain text for a model's prompt."""
        lines = []
        if self.path:
            lines.append(f"Notebook: {self.path}" + (f", cell [{self.cell}]" if self.cell is not None else ""))
        if self.cell_source:
            lines.append("Active cell:\n" + self.cell_source)
        if self.error:
            lines.append("Previous error:\n" + self.error)
        if self.namespace:
            lines.append("Namespace (no values):\n" + "\n".join("- " + self.describe(v) for v in self.namespace))
        return "\n\n".join(lines)


class Answer(BaseModel):
    """DirEng's reply: Markdown with `path:start-end` citations, and what produced it."""

    markdown: str
    intent: str  # ask | search | explain | graph | status | delegate | help | ...
    citations: list[Hit] = Field(default_factory=list)
    provider: str = "local"
    usages: list[Usage] = Field(default_factory=list)
    notices: list[str] = Field(default_factory=list)  # e.g. "fell back to in-process engine"
    #: Large work handed to PEX: the task created and estimated (state `estimated`), waiting for approval.
    proposed_task: Optional["Task"] = None
    #: Edits DirEng proposes (a cell's new source, a file patch): nothing changes until one is applied.
    proposals: list["Proposal"] = Field(default_factory=list)


#: The events of a streamed chat answer (`POST /chat` with `"stream": true`, server-sent events),
#: in the order they may come: `tool` (the model calls a tool: {name}), `delta` (more of the answer:
#: {text}), `replace` (the answer so far, as a whole: {text}), `reset` (drop the text so far: {}),
#: then exactly one of `answer` (the final `Answer`, which a client shows in place of the streamed
#: text) or `error` ({status, code, message}).
ChatEvent = Literal["tool", "delta", "replace", "reset", "answer", "error"]
CHAT_EVENTS: tuple[str, ...] = get_args(ChatEvent)
#: What receives a streamed answer's events before the final one: (kind, payload).
OnEvent = Callable[[str, dict], None]


# -- Delegation: PEX tasks, PLMS estimates, PAS runs and passports (issue 4) --


class TaskState(str, Enum):
    new = "new"
    estimated = "estimated"
    approved = "approved"
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    interrupted = "interrupted"
    escalated = "escalated"


#: Every task state, in lifecycle order; the final ones end a task (an interrupted run resumes).
TASK_STATES: tuple[str, ...] = tuple(s.value for s in TaskState)
TERMINAL_STATES = frozenset({TaskState.succeeded, TaskState.failed, TaskState.cancelled})
FINAL_STATES: tuple[str, ...] = tuple(s.value for s in TaskState if s in TERMINAL_STATES)
#: The states a finished run can record (the run, not the task: an interrupted run is final).
RUN_FINAL_STATES: tuple[str, ...] = FINAL_STATES + (TaskState.interrupted.value,)
#: Where a task stops moving by itself: ended, or escalated (waiting for the user's choice). What
#: follows a task (streams, `--follow`, the panels) stops here.
SETTLED_STATES: tuple[str, ...] = FINAL_STATES + (TaskState.escalated.value,)

#: What a user can do to a task (`POST /tasks/{id}/{action}`, `direng task ACTION`). The last
#: three answer an escalation (`ESCALATION_CHOICES`).
TaskAction = Literal["estimate", "approve", "start", "cancel", "retry", "change_lane", "raise_budget"]
TASK_ACTIONS: tuple[str, ...] = get_args(TaskAction)

#: Why PEX escalated a task instead of failing it (`Escalation.kind`).
EscalationKind = Literal["gate_failed", "budget", "denied", "estimate"]
ESCALATION_KINDS: tuple[str, ...] = get_args(EscalationKind)
#: What the user may answer an escalation with: each is a legal transition (pex/states.py).
ESCALATION_CHOICES: tuple[str, ...] = ("retry", "change_lane", "raise_budget", "cancel")


class Escalation(BaseModel):
    """Why a task is waiting for the user instead of failing, with the evidence."""

    kind: EscalationKind
    message: str
    #: failing KPIs and gates, the denying rule and argv, budget figures, the estimate and threshold
    evidence: dict = Field(default_factory=dict)
    options: list[str] = Field(default_factory=lambda: list(ESCALATION_CHOICES))
    run_id: Optional[str] = None
    at: Optional[datetime] = None

#: What a task event records.
EventKind = Literal["state", "progress", "log", "kpi", "error", "artifact"]
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)


#: The PLMS models an estimate can come from: the per-lane log-normal one, or scaled by task size.
EstimateModel = Literal["lane", "size"]
ESTIMATE_MODELS: tuple[str, ...] = get_args(EstimateModel)


class Estimate(BaseModel):
    """PLMS's forecast for a task: log-normal posterior quantiles of duration and cost."""

    lane: str
    duration_p50_s: float
    duration_p90_s: float
    tokens_p50: int = 0
    tokens_p90: int = 0
    cost_p50: float = 0.0
    cost_p90: float = 0.0
    n_history: int = 0  # calibrated runs the posterior used
    prior_only: bool = True  # fewer than the minimum N runs: the documented prior
    drift: bool = False  # recent runs left the calibrated band
    model: EstimateModel = "lane"  # which PLMS model answered (plms/scaling.py)
    explanation: str = ""  # what drove it: "p90 240 s: 12k-line repo (×1.9 the usual 3.4k), young lane (7 runs)"


class Task(BaseModel):
    id: str
    title: str
    brief: str = ""
    lane: str
    parameters: dict = Field(default_factory=dict)
    state: TaskState = TaskState.new
    idempotency_key: Optional[str] = None
    estimate: Optional[Estimate] = None
    run_id: Optional[str] = None
    error: Optional[str] = None
    #: Set while the task is escalated: why, with the evidence and the choices.
    escalation: Optional[Escalation] = None
    #: The lane's budgets are multiplied by this for the task (raised by answering an escalation).
    budget_factor: float = 1.0
    created_at: datetime
    updated_at: datetime


#: What an edit proposal changes: a notebook cell's source, or files (a unified diff).
ProposalKind = Literal["cell", "file"]
PROPOSAL_KINDS: tuple[str, ...] = get_args(ProposalKind)
#: A proposal's life: proposed, then applied or rejected by the user (`direng/proposals.py`).
ProposalState = Literal["proposed", "applied", "rejected"]
PROPOSAL_STATES: tuple[str, ...] = get_args(ProposalState)
#: What a user can do to a proposal (`POST /proposals/{id}/{action}`, `%direng apply|reject ID`).
ProposalAction = Literal["apply", "reject"]
PROPOSAL_ACTIONS: tuple[str, ...] = get_args(ProposalAction)


class Proposal(BaseModel):
    """An edit DirEng proposes; the user's files change only when it is applied."""

    id: str
    kind: ProposalKind
    path: str  # the notebook (cell) or, for a patch, the first file it touches; relative to the root
    cell: Optional[int] = None  # 0-based, for a cell edit
    new_source: str = ""  # the cell's proposed source
    old_source: Optional[str] = None  # the cell's source when proposed: applying refuses if it moved
    diff: str = ""  # a file patch (unified diff); for a cell, the diff of old → new, to show
    paths: list[str] = Field(default_factory=list)  # every file a patch touches
    task_id: Optional[str] = None  # a patch's Code-Impl task: it must succeed before the patch is offered
    state: ProposalState = "proposed"
    provider: str = "local"
    model: str = ""
    contract_version: Optional[str] = None
    created_at: datetime
    decided_at: Optional[datetime] = None
    note: str = ""


Answer.model_rebuild()  # its `proposed_task` is a Task and its `proposals` Proposals, defined after it


class TaskEvent(BaseModel):
    task_id: str
    seq: int
    at: datetime
    kind: str  # one of EVENT_KINDS
    message: str = ""
    data: dict = Field(default_factory=dict)


class ArtifactRef(BaseModel):
    sha256: str
    name: str  # a label: the path it was produced at, relative to the run dir
    size: int
    media_type: str = "application/octet-stream"


class Passport(BaseModel):
    """Everything needed to replay a run and compare it (versioned; old versions stay readable)."""

    schema_version: int = 1
    run_id: str
    task_id: str
    lane: str
    lane_notebook_sha256: str
    parameters: dict = Field(default_factory=dict)
    git: dict = Field(default_factory=dict)  # commit, branch, remote, dirty, diff (ArtifactRef sha)
    environment: dict = Field(default_factory=dict)  # python, platform, package lock hash
    policy_sha256: Optional[str] = None
    provider_responses: list[ArtifactRef] = Field(default_factory=list)
    inputs: list[ArtifactRef] = Field(default_factory=list)
    outputs: list[ArtifactRef] = Field(default_factory=list)
    kpis: dict[str, float] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    sandbox: str = "none"  # bubblewrap | rlimits-only | none
    #: Where the lane ran: `{"kind": "local", "host": …}` or `{"kind": "dask", "worker": ADDRESS, …}`
    #: (`pas.backends`); empty in passports written before it was recorded (those ran locally).
    executor: dict = Field(default_factory=dict)
    #: The agent contracts (name → version) a model consulted by the lane worked under.
    contracts: dict[str, str] = Field(default_factory=dict)
    #: Set when the run ended the task in an escalation instead of a failure.
    escalation: Optional[Escalation] = None
    status: str = "running"
    error: Optional[str] = None
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None


# -- Replay: a run re-executed from its passport and compared (pex.Orchestrator.replay) --

class OutputComparison(BaseModel):
    name: str
    original: str | None
    replay: str | None

    @property
    def same(self) -> bool:
        return self.original == self.replay


class ReplayReport(BaseModel):
    run_id: str
    replay_run_id: str | None = None
    dry_run: bool = False
    match: bool = False
    status: str = ""
    error: str | None = None
    kpis_original: dict[str, float] = Field(default_factory=dict)
    kpis_replay: dict[str, float] = Field(default_factory=dict)
    outputs: list[OutputComparison] = Field(default_factory=list)
    report_path: str | None = None

    def summary(self) -> str:
        if self.dry_run:
            return f"run {self.run_id}: passport and artifacts verified; replayable"
        lines = [f"replay of {self.run_id} ({self.replay_run_id}): {'MATCH' if self.match else 'DIFFERENT'}"
                 + (f" — replay {self.status}: {self.error}" if self.error else "")]
        for name in sorted(set(self.kpis_original) | set(self.kpis_replay)):
            a, b = self.kpis_original.get(name), self.kpis_replay.get(name)
            lines.append(f"  kpi {name}: {a} → {b}" + ("" if a == b else "  (differs)"))
        for o in self.outputs:
            lines.append(f"  output {o.name}: {'same' if o.same else f'{o.original} → {o.replay}'}")
        if self.report_path:
            lines.append(f"  report: {self.report_path}")
        return "\n".join(lines)


# -- Authorization: the eight scopes of the REST API (security/scopes.py adds presets and checks) --

SCOPES: dict[str, str] = {
    "index:read": "search, graph, symbols, chat, index status, health and the policy in force",
    "index:write": "refresh the code index",
    "tasks:read": "list and read delegated tasks, their events, runs and passports, PAS health",
    "tasks:write": "create, estimate and cancel delegated tasks",
    "runs:execute": "approve and start delegated tasks (runs that execute code)",
    "runs:replay": "replay a finished run from its passport",
    "policy:admin": "validate and apply a model-broker policy",
    "secrets:use": "use secrets from the vault (resolved server-side, never returned)",
}
SCOPE_NAMES: tuple[str, ...] = tuple(SCOPES)


ProviderRequest.model_rebuild()
