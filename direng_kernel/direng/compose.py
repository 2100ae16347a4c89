"""Answers composed from the index alone: the embedded `local` provider's way of speaking.

No generative model: an answer is the best hits with their code and graph context, laid out
as Markdown a person can act on — each claim carries a `path:start-end` citation, the code is
quoted from the current file, and the call graph says who uses the best hit and what it uses.
Inside a notebook a citation is `path:cell N:start-end` and the code quoted is that cell's, never
the notebook's JSON.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .. import confined
from ..discovery import NOTEBOOK_SUFFIX
from ..index.intent import TYPE_KINDS, asks_how, chunk_role
from ..index.notebooks import cell_source
from ..index.tokens import code_terms, query_terms
from ..models import GraphResult, Hit, NotebookContext, Task

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_QUOTED = re.compile(r"""[`'"]([^`'"\n]{1,80})[`'"]""")

FENCE = {"python": "python", "typescript": "typescript", "tsx": "tsx", "javascript": "javascript",
         "rust": "rust", "go": "go"}
EXCERPT_LINES = 14


def _echo(question: str, limit: int = 120) -> str:
    """The question as the answer repeats it: its first line, shortened, and without Markdown
    that would swallow the answer (a code fence opening inside the bold, stray emphasis)."""
    first = next((line.strip() for line in question.splitlines() if line.strip()), "")
    first = re.sub(r"([*_])", r"\\\1", first.replace("`", ""))
    return first if len(first) <= limit else first[:limit - 1].rstrip() + "…"


def lead_first(hits: list[Hit], window: int = 5, question: str = "") -> list[Hit]:
    """`hits` with the answer to open with first: when the best hit is a data constant, a test,
    a benchmark, an example, prose or a notebook's top-level cell, the first definition (or
    file summary) within `window` hits leads instead. For a "how…" question a type definition
    (the data, not what acts on it) gives way to a function or method among the first three."""
    def minor(h: Hit) -> bool:
        return h.kind in ("constant", "text", "cell") or chunk_role(h.path, True, h.cell) != "code"  # not text: parsed

    if hits and not minor(hits[0]) and hits[0].kind in TYPE_KINDS and asks_how(question):
        acts = next((i for i, h in enumerate(hits[:3]) if h.kind in ("function", "method") and not minor(h)), None)
        if acts is not None:
            return [hits[acts], *hits[:acts], *hits[acts + 1:]]
    if not hits or not minor(hits[0]):
        return hits
    lead = next((i for i, h in enumerate(hits[:window]) if not minor(h)), None)
    return hits if lead is None else [hits[lead], *hits[:lead], *hits[lead + 1:]]


def evidence(question: str, hit: Hit, docstring: str = "") -> str:
    """Why `hit` answers `question`, in a clause: the graph edge that found it, the question's
    words in its name, in its docstring, or else in its code."""
    if hit.sources == ["graph"] and hit.snippet:  # a relation answer: the snippet is its edge
        return f"it {hit.snippet} (from the call graph)"
    words = list(dict.fromkeys(query_terms(question)))
    named = _shared(words, hit.symbol or "")
    doc = docstring.splitlines()[0].strip() if docstring else ""
    in_doc = _shared(words, doc)
    parts = []
    if named:
        parts.append("its name says " + ", ".join(f"*{w}*" for w in named[:4]))
    if in_doc and len(in_doc) >= len(named):
        parts.append(f"its docstring reads “{doc[:140]}”")
    if not parts:
        seen = _shared(words, hit.snippet or "")
        if seen:
            parts.append("its code mentions " + ", ".join(f"*{w}*" for w in seen[:4]))
    return ", and ".join(parts)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[:-len(suffix)]
    return word


def _shared(words: list[str], text: str) -> list[str]:
    """The query's words that `text` also uses, up to plural and tense."""
    stems = {_stem(t) for t in code_terms(text)}
    return [w for w in words if _stem(w) in stems]


def _by_file(hits: list[Hit]) -> list[tuple[str, list[tuple[int, Hit]]]]:
    """(path, [(rank, hit)]) in the order each file first appears."""
    groups: dict[str, list[tuple[int, Hit]]] = {}
    for i, hit in enumerate(hits):
        groups.setdefault(hit.path, []).append((i, hit))
    return list(groups.items())


class Composer:
    def __init__(self, workbench, link_base: str | None = None):
        self.wb = workbench
        self.root = Path(workbench.root)
        self.link_base = link_base  # directory the citations' links are relative to (the notebook's)

    # -- pieces -----------------------------------------------------------------
    def link(self, hit_path: str, start: int, end: int, cell: int | None = None) -> str:
        target = self.root / hit_path
        rel = os.path.relpath(target, self.link_base) if self.link_base else hit_path
        if cell is not None:  # a notebook opens as a notebook: no line anchor to give
            return f"[`{hit_path}:cell {cell}:{start}-{end}`]({rel.replace(os.sep, '/')})"
        # JupyterLab's file editor understands `#line=N` (0-based) and puts the cursor there.
        return f"[`{hit_path}:{start}-{end}`]({rel.replace(os.sep, '/')}#line={max(0, start - 1)})"

    def excerpt(self, path: str, start: int, end: int, limit: int = EXCERPT_LINES, cell: int | None = None) -> str:
        # The file may have changed since it was indexed, even into a link to /etc/passwd.
        try:
            text = confined.read_text(self.root, path)
        except (confined.ConfinementError, OSError):
            return ""
        if path.endswith(NOTEBOOK_SUFFIX):  # the cell's code, never the notebook's JSON
            text = cell_source(text, cell) if cell is not None else None
            if text is None:
                return ""
        lines = text.splitlines()
        body = lines[start - 1:min(end, start - 1 + limit)]
        more = "\n    …" if end - start + 1 > limit else ""
        return "\n".join(body) + more

    def fence(self, path: str, code: str, cell: int | None = None) -> str:
        if code and cell is not None:  # a notebook cell: its own language (markdown, sql, python…)
            lang = (self.wb.store.cell_language(path, cell) or "") if self.wb.is_indexed else ""
            return f"```{FENCE.get(lang, lang)}\n{code}\n```"
        lang = FENCE.get((self.wb.store.file_language(path) or "") if self.wb.is_indexed else "", "") if code else ""
        return f"```{lang}\n{code}\n```" if code else ""

    def docstring(self, path: str, symbol: str | None) -> str:
        if not symbol:
            return ""
        return self.wb.store.symbol_docstring(path, symbol).strip().split("\n\n")[0]

    def neighbours(self, hit: Hit) -> str:
        if not hit.symbol:
            return ""
        try:
            callers = self.wb.graph(f"{hit.path}::{hit.symbol}", direction="callers", max_nodes=8)
            callees = self.wb.graph(f"{hit.path}::{hit.symbol}", direction="callees", max_nodes=8)
        except Exception:  # noqa: BLE001 — graph context is a bonus, never a failure
            return ""
        parts = []
        for label, g in (("called by", callers), ("calls", callees)):
            names = [self._node_ref(g, n) for n in g.nodes if n.id != g.center and n.kind != "file"]
            if names:
                parts.append(f"{label}: " + ", ".join(names[:6]))
        return "; ".join(parts)

    def _node_ref(self, g: GraphResult, n) -> str:
        if n.path and n.start_line:
            cell = f"cell {n.cell}:" if n.cell is not None else ""
            return f"`{n.name}` ({n.path}:{cell}{n.start_line})"
        return f"`{n.name}` (unresolved)"

    # -- answers ----------------------------------------------------------------
    def answer_namespace(self, question: str, context: NotebookContext) -> str:
        """What the user's own variables say about the question: each variable it names (type,
        shape, columns), and any quoted name that such a DataFrame lacks — the usual cause of a
        KeyError. Empty when the question names none of them."""
        named = [v for v in (context.variable(w) for w in dict.fromkeys(_IDENT.findall(question))) if v]
        frames = [v for v in named if v.columns]
        if not frames and context.error and context.error.startswith("KeyError"):
            frames = [v for v in context.namespace if v.columns]
        lines = []
        asked = dict.fromkeys(_QUOTED.findall(question + "\n" + (context.error or "")))
        for frame in frames:
            for col in asked:
                if col not in frame.columns and col != frame.name and not context.variable(col):
                    where = f" (cell [{context.cell}] of `{context.path}`)" if context.path else ""
                    lines.append(f"`{frame.name}` has no column `{col}`{where}; its columns are "
                                 + ", ".join(f"`{c}`" for c in frame.columns) + ".")
        lines += [f"- {context.describe(v)}" for v in named]
        return ("**In your notebook:**\n" + "\n".join(lines)) if lines else ""

    def answer_hits(self, question: str, hits: list[Hit], detail: int = 3) -> str:
        """The hits as an answer: one sentence naming the symbol that answers and why, then the
        hits grouped by file — the first `detail` with their code and graph context, the rest
        as links. It opens with a definition whenever one is among the first hits, never with a
        constant, a test or prose that merely shares the question's words."""
        asked = _echo(question)
        if not hits:
            return (f"I found nothing in the index for **{asked}**. Try other words, or check "
                    "`%direng status` to see whether the index covers the code you mean.")
        hits = lead_first(hits, question=question)
        top = hits[0]
        where = f"`{top.symbol}`" if top.symbol else f"`{top.path}`"
        kind = f" ({top.kind})" if top.symbol else ""
        reason = evidence(question, top, self.docstring(top.path, top.symbol))
        out = [f"For **{asked}**, look at {where}{kind} in "
               f"{self.link(top.path, top.start_line, top.end_line, top.cell)}" + (f": {reason}." if reason else ".")]
        for path, group in _by_file(hits):
            block = [f"### `{path}`"]
            links = []
            for i, hit in group:
                if i >= detail:
                    links.append(f"{self.link(hit.path, hit.start_line, hit.end_line, hit.cell)}"
                                 + (f" `{hit.symbol}`" if hit.symbol else ""))
                    continue
                title = f"**`{hit.symbol}`** ({hit.kind})" if hit.symbol else f"**{hit.kind}**"
                block.append(f"{title} — {self.link(hit.path, hit.start_line, hit.end_line, hit.cell)}")
                doc = self.docstring(hit.path, hit.symbol)
                if doc:
                    block.append(f"> {doc.splitlines()[0]}")
                context = self.neighbours(hit)
                if context:
                    block.append(context)
                block.append(self.fence(hit.path, self.excerpt(hit.path, hit.start_line, hit.end_line, cell=hit.cell),
                                        hit.cell))
            if links:
                block.append(("Also here: " if len(block) > 1 else "") + ", ".join(links))
            out.append("\n\n".join(b for b in block if b))
        return "\n\n".join(out)

    def answer_graph(self, symbol: str, g: GraphResult, direction: str) -> str:
        center = next(n for n in g.nodes if n.id == g.center)
        head = f"`{center.name}`"
        if center.path:
            head += f" ({center.kind}) at {self.link(center.path, center.start_line, center.end_line, center.cell)}"
        verb = {"callers": "is called by", "callees": "calls", "both": "is connected to"}[direction]
        rows = []
        nodes = {n.id: n for n in g.nodes}
        for e in g.edges:
            other = nodes[e.source] if e.target == g.center else nodes[e.target] if e.source == g.center else None
            if other is None or other.kind == "file" and e.kind == "contains":
                continue
            where = self.link(other.path, other.start_line or 1, other.end_line or 1, other.cell) \
                if other.path else "unresolved"
            arrow = "←" if e.target == g.center else "→"
            rows.append(f"- {arrow} **{e.kind}** `{other.name}` — {where}" + ("" if e.resolved else " *(unresolved)*"))
        if not rows:
            return f"{head} has no {direction if direction != 'both' else 'neighbours'} in the index."
        note = f"\n\n*(capped at {len(g.nodes)} nodes)*" if g.truncated else ""
        return f"{head} {verb}:\n\n" + "\n".join(rows) + note

    def answer_explain(self, symbol: str, g: GraphResult) -> str:
        center = next(n for n in g.nodes if n.id == g.center)
        if not center.path:
            return f"`{symbol}` is not defined in this repository (it is {center.kind})."
        qual = center.name
        doc = self.docstring(center.path, qual) or "(no docstring)"
        out = [f"**`{qual}`** is a {center.kind} defined at "
               f"{self.link(center.path, center.start_line, center.end_line, center.cell)}.",
               f"Signature: `{center.signature}`" if center.signature else "",
               f"> {doc}",
               self.neighbours(Hit(path=center.path, symbol=qual, kind=center.kind, start_line=center.start_line or 1,
                                   end_line=center.end_line or 1, score=0.0, cell=center.cell)),
               self.fence(center.path, self.excerpt(center.path, center.start_line or 1, center.end_line or 1, 30,
                                                    cell=center.cell), center.cell)]
        return "\n\n".join(o for o in out if o)


# -- delegated work: proposals and results ---------------------------------------------------------

_DONE_MARK = {"succeeded": "✅", "failed": "❌", "cancelled": "⏹"}


def estimate_line(task: Task) -> str:
    """PLMS's estimate for a task, in one line of Markdown."""
    e = task.estimate
    if e is None:
        return "No estimate yet."
    basis = "prior: fewer than the minimum runs" if e.prior_only else f"{e.n_history} calibrated runs"
    drift = " — **drift**: recent runs left the calibrated band" if e.drift else ""
    cost = f", cost p90 {e.cost_p90:.4f}" if e.cost_p90 else ""
    if e.model == "size":
        basis += ", scaled by task size"
    why = f". Why: {e.explanation}" if e.explanation else ""  # what drove it (plms/scaling.py)
    return (f"Estimate: p50 **{e.duration_p50_s:.1f} s**, p90 **{e.duration_p90_s:.1f} s**{cost} ({basis}){drift}"
            f"{why}")


def task_proposal(task: Task) -> str:
    """What DirEng says when it hands work to PEX: what would run, the estimate, how to approve
    (or, when the estimate itself escalated, why and what the user may choose)."""
    if task.escalation is not None:
        return (f"This is work for a lane, so I propose a task for PEX:\n\n**Task `{task.id}`** → lane "
                f"**{task.lane}**: {task.title}\n\n{estimate_line(task)}.\n\n{escalation_text(task)}")
    return (f"This is work for a lane rather than a quick answer, so I propose a task for PEX:\n\n"
            f"**Task `{task.id}`** → lane **{task.lane}**: {task.title}\n\n{estimate_line(task)}.\n\n"
            f"Nothing runs until you approve it: **Approve** in the DirEng panel or under this answer in a "
            f"notebook, or `direng task approve {task.id}` then `direng task start {task.id}`. "
            f"Ask `task {task.id}` for its progress.")


_CHOICE_TEXT = {
    "retry": ("retry", "direng task retry {id}"),
    "change_lane": ("change the lane", "direng task change_lane {id} --lane LANE"),
    "raise_budget": ("raise the budget", "direng task raise_budget {id} --factor 2"),
    "cancel": ("cancel", "direng task cancel {id}"),
}


def escalation_text(task: Task) -> str:
    """Why PEX escalated the task, its evidence, and the choices (each a command)."""
    esc = task.escalation
    ev = esc.evidence or {}
    facts = []
    if esc.kind == "gate_failed":
        facts = [f"failing: {f}" for f in ev.get("failures", [])] + [f"attempt {ev.get('attempt')} of "
                                                                    f"{(ev.get('retries') or 0) + 1} allowed"]
    elif esc.kind == "denied":
        facts = [f"denied: `{' '.join(map(str, ev.get('argv') or []))}` by {ev.get('rule')}"]
    elif esc.kind == "budget":
        facts = [*map(str, ev.get("refusals", [])), f"budgets: {ev.get('budgets')}"]
    elif esc.kind == "estimate":
        est = ev.get("estimate") or {}
        facts = [f"p90 {est.get('duration_p90_s', 0):.1f} s against the lane's threshold {ev.get('escalate_p90_s')} s"
                 + (f" (x{ev['budget_factor']:g})" if ev.get("budget_factor", 1) != 1 else "")]
    choices = "; ".join(f"{_CHOICE_TEXT[c][0]} (`{_CHOICE_TEXT[c][1].format(id=task.id)}`)"
                        for c in esc.options if c in _CHOICE_TEXT)
    return (f"**Escalated** ({esc.kind}): {esc.message}\n\n" + "".join(f"- {f}\n" for f in facts if f)
            + f"\nWhat next? {choices}.")


def task_report(task: Task, run: dict | None, store: Path, root: Path, link_base: str | None = None) -> str:
    """A task's state and, once it ran, its KPIs, duration, cost and links to the output notebook
    and the passport (relative to `link_base`, the directory the reader's links start from, else
    to the root, as JupyterLab opens paths)."""
    state = task.state.value if hasattr(task.state, "value") else str(task.state)
    head = f"**Task `{task.id}`** → lane **{task.lane}**: {task.title}\n\n" \
           f"State: **{state}** {_DONE_MARK.get(state, '')}".rstrip()
    if task.error:
        head += f" — {task.error}"
    lines = [head]
    if state in ("new", "estimated"):
        lines.append(estimate_line(task) + ". Waiting for approval.")
    if task.escalation is not None:
        lines.append(escalation_text(task))
    if run:
        kpis = ", ".join(f"{k} = {v:g}" if isinstance(v, (int, float)) else f"{k} = {v}"
                         for k, v in sorted((run.get("kpis") or {}).items()))
        cost = run.get("cost")
        lines.append(f"Run `{run['id']}`: {run.get('state')}, {(run.get('duration_s') or 0):.1f} s"
                     + (f", cost {cost:.4f}" if isinstance(cost, (int, float)) else "")
                     + f", sandbox {run.get('sandbox') or '-'}. KPIs: {kpis or 'none'}.")
        if state in _DONE_MARK:
            links = []
            for label, path in (("output notebook", store / "runs" / run["id"] / "output.ipynb"),
                                ("passport", store / "passports" / f"{run['id']}.json")):
                rel = os.path.relpath(path, link_base or root)
                links.append(f"- {label}: [{path.name}]({rel.replace(os.sep, '/')})")
            lines += ["\n".join(links), f"Replay it: `direng replay {run['id']}`"]
    return "\n\n".join(lines)
