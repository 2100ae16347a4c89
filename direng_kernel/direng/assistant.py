"""DirEng: route a message, answer small tasks directly, consult the broker for questions.

Small tasks — search, callers/callees, graph, explain, status, help — are answered straight
from the index. Large work (the router's `delegate`, or a generative provider calling the
`delegate` tool) becomes a proposed task for PEX: created and estimated, returned on the answer
as `proposed_task`, and run only once the user approves it; `task ID` relays its progress and
result. A free-form question goes to the broker's `chat` lane: with the embedded
`local` provider that is retrieval composed into an answer; with a generative provider it is
a tool-calling loop over the same tools (search, read a file range, graph neighbours, git,
index status). If the broker fails (provider down, over budget) DirEng still answers from
retrieval and says why. Conversation memory is per session and bounded.

With `on_event`, a generative answer streams as it is written (`stream.RedactedStream`: the
same redaction as the final answer, applied as the text grows); every other answer arrives whole
as the return value, which is also the authority on what the streamed answer finally says.

One `DirEng` serves concurrent requests (the server shares it), so everything about one message
— its data-rule flags, the hits it cites — lives in locals of that call, never on the instance.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from dataclasses import replace

from pathlib import Path
from typing import Any, Callable

from .. import contracts
from ..errors import DirEngError, NotFoundError, UnknownSymbolError
from ..models import (Answer, ChatMessage, Hit, NotebookContext, OnEvent, ProviderRequest, ProviderResponse, Task,
                      ToolCall, ToolSpec, Usage)
from ..security.scrub import learn, scrub
from .compose import Composer, task_proposal, task_report
from .proposals import ProposalStore, is_cell_diff, proposal_summary
from .router import Intent, route
from .stream import RedactedStream
from .tools import ToolBox

log = logging.getLogger(__name__)
MEMORY_TURNS = 20
MAX_TOOL_ROUNDS = 6
TITLE_CHARS = 80
DELEGATE_TOOL = ToolSpec(
    name="delegate",
    description=("Propose a task for PEX, the orchestrator: large work whose result is an artifact (documentation, "
                 "a patch, a report on dead code or breaking API changes, a re-index) runs in a lane, and only after "
                 "the user approves it. Returns the proposed task with its lane and estimate; tell the user what "
                 "will run and that it waits for their approval."),
    parameters={"type": "object", "required": ["brief"], "properties": {
        "brief": {"type": "string", "description": "what the lane should do, in the user's words"},
        "title": {"type": "string", "description": "a short title (at most 80 characters)"},
        "lane": {"type": "string", "description": "a lane id, when one is clearly right; else PEX routes"}}})
CELL_EDIT_TOOL = ToolSpec(
    name="propose_cell_edit",
    description=("Propose a new source for one notebook cell. Nothing changes until the user accepts it; returns "
                 "the proposal's id and its diff."),
    parameters={"type": "object", "required": ["notebook", "cell", "new_source"], "properties": {
        "notebook": {"type": "string", "description": "the .ipynb path, relative to the repository root"},
        "cell": {"type": "integer", "minimum": 0, "description": "the 0-based cell index"},
        "new_source": {"type": "string", "description": "the cell's whole new source"}}})
FILE_PATCH_TOOL = ToolSpec(
    name="propose_file_patch",
    description=("Propose a change to files as a unified diff (as `git diff` writes it). It runs through the "
                 "Code-Impl lane (tests and linter as gates) and is offered to the user only if it passes; nothing "
                 "changes until they apply it. Returns the proposal's id."),
    parameters={"type": "object", "required": ["unified_diff"], "properties": {
        "path": {"type": "string", "description": "the main file the patch changes"},
        "unified_diff": {"type": "string", "description": "the patch"}}})
EDIT_TOOLS = (CELL_EDIT_TOOL.name, FILE_PATCH_TOOL.name)
_DIFF_BLOCK = re.compile(r"```(?:diff|patch)\n(.*?)```", re.S)
HELP = """**DirEng** answers questions about this repository from its code index.

| you type | you get |
| --- | --- |
| a question in plain words | an answer with `path:start-end` citations |
| `search QUERY` | the best hits (also a DataFrame in `_` with `%direng search`) |
| `what calls NAME?` / `what does NAME call?` | callers / callees from the call graph |
| `graph NAME` | the symbol's neighbourhood as an interactive graph |
| `explain NAME` | signature, docstring, location, callers, callees and code |
| `status` | index freshness |

Large work ("document the shop package") comes back as a proposed task, run once you approve it; `task ID`
says how it went. Edits come as proposals (a generative provider's, or a ```diff you give):
`%direng proposals`, `%direng apply ID`, `%direng reject ID`.

Magics: `%direng ask|search|graph|index|status|delegate|proposals|apply|reject|explain-error|context|reset|help`,
`%%direng` for multi-line chat."""


class LocalProvider:
    """The embedded default provider: no network, no generative model; answers by retrieval."""

    name = "local"

    def __init__(self, direng: "DirEng"):
        self.direng = direng

    def complete(self, request: ProviderRequest, on_delta=None) -> ProviderResponse:
        """Retrieval answers at once: there is nothing to stream (`on_delta` is not called)."""
        t0 = time.perf_counter()
        question = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        markdown, hits = self.direng.retrieve_answer(question, request.context)
        chars_in = sum(len(m.content) for m in request.messages)
        usage = Usage(provider="local", model="retrieval", input_tokens=chars_in // 4,
                      output_tokens=len(markdown) // 4, cost=0.0,
                      latency_ms=round((time.perf_counter() - t0) * 1000, 2))
        return ProviderResponse(content=markdown, usage=usage, citations=hits)


class DirEng:
    def __init__(self, workbench, broker=None, link_base: str | None = None,
                 tasks: Callable[[], Any] | None = None, proposals: ProposalStore | None = None):
        """`tasks` returns PEX's orchestrator (new_task, estimate, status, tasks.list_runs); without
        it DirEng answers but cannot delegate. `proposals` keeps the edits it proposes; without it
        DirEng proposes none."""
        self.wb = workbench
        self.tools = ToolBox(workbench)
        self.composer = Composer(workbench, link_base)
        self.link_base = link_base
        self.broker = broker
        self.tasks = tasks
        self.proposals = proposals
        self._memory: dict[str, deque[ChatMessage]] = {}

    # -- memory -----------------------------------------------------------------
    def history(self, session: str = "default") -> list[ChatMessage]:
        return list(self._memory.get(session, ()))

    def reset(self, session: str = "default") -> None:
        self._memory.pop(session, None)

    def _remember(self, session: str, *messages: ChatMessage) -> None:
        self._memory.setdefault(session, deque(maxlen=2 * MEMORY_TURNS)).extend(messages)

    # -- answering --------------------------------------------------------------
    def retrieve_answer(self, question: str, context: NotebookContext | None = None, k: int = 8):
        hits = self.wb.search(question, k=k)
        markdown = self.composer.answer_hits(question, hits)
        if context is not None and (about := self.composer.answer_namespace(question, context)):
            markdown = about + "\n\n" + markdown
        return markdown, hits

    def chat(self, message: str, session: str = "default", context: NotebookContext | None = None,
             on_event: OnEvent | None = None) -> Answer:
        """Answer `message`; `context` (the live notebook: path, cell, error, namespace summary)
        is seen by the answer as the message is, under the same data rules. `on_event` receives
        a generative answer's text as it streams (see the module docstring)."""
        message = message.strip()
        if not message:
            return Answer(markdown=HELP, intent="help")
        flags = learn(message)  # what the raw message holds decides the broker's data rules
        if context is not None:
            flags |= learn(context.render())
        message = scrub(message)
        intent = route(message)
        try:
            answer = self._answer(intent, session, flags, context, on_event)
        except UnknownSymbolError as exc:
            suggestions = ", ".join(f"`{s}`" for s in exc.suggestions) or "none"
            answer = Answer(markdown=f"I don't know a symbol named `{exc.name}`. Close names: {suggestions}.",
                            intent=intent.name)
        # Answers quote code from disk: nothing secret may reach the notebook or the memory.
        answer = answer.model_copy(update={
            "markdown": scrub(answer.markdown), "notices": [scrub(n) for n in answer.notices],
            "citations": [replace(h, snippet=scrub(h.snippet), signature=scrub(h.signature))
                          for h in answer.citations]})
        self._remember(session, ChatMessage(role="user", content=message),
                       ChatMessage(role="assistant", content=answer.markdown))
        return answer

    def _answer(self, intent: Intent, session: str, flags: set[str], context: NotebookContext | None = None,
                on_event: OnEvent | None = None) -> Answer:
        name, arg = intent.name, intent.arg
        if name == "help":
            return Answer(markdown=HELP, intent=name)
        if name == "status":
            st = self.wb.status()
            return Answer(intent=name, markdown=f"Index of {st.summary()}.")
        if name in ("callers", "callees", "graph"):
            direction = name if name != "graph" else "both"
            g = self.wb.graph(arg, direction=direction, depth=1)
            return Answer(intent=name, markdown=self.composer.answer_graph(arg, g, direction),
                          citations=[self._hit(n) for n in g.nodes if n.path][:20])
        if name == "explain":
            g = self.wb.graph(arg, direction="both", depth=1)
            center = next(n for n in g.nodes if n.id == g.center)
            return Answer(intent=name, markdown=self.composer.answer_explain(arg, g),
                          citations=[self._hit(center)] if center.path else [])
        if name == "search":
            hits = self.wb.search(arg, k=10)
            return Answer(intent=name, markdown=self.composer.answer_hits(arg, hits, detail=1), citations=hits)
        if name == "delegate":
            task = self.propose(arg)
            return Answer(intent=name, markdown=task_proposal(task), proposed_task=task)
        if name == "task":
            return Answer(intent=name, markdown=self.task_report(arg))
        if (diff := _DIFF_BLOCK.search(intent.text)) and self.proposals is not None:
            return self._patch_answer(diff.group(1))
        if name == "edit" and not self._generative():
            return Answer(intent=name, markdown=(
                "The local provider generates no edits: it answers from the index. Give me the change as a "
                "unified diff in a ```diff block and I propose it — a file patch through the Code-Impl lane, a "
                "cell edit headed `--- a/NB.ipynb cell N` / `+++ b/NB.ipynb cell N` as is — applied only when "
                "you say so; or configure a generative provider in the broker policy."))
        return self._ask(intent.text, session, flags, context, on_event)

    # -- edits as proposals -----------------------------------------------------
    def _generative(self) -> bool:
        """Whether the chat lane's first route is a generative provider (not `local`)."""
        if self.broker is None:
            return False
        lane = self.broker.policy.resolve("chat")
        cfg = self.broker.policy.providers.get(lane.chain[0].provider) if lane and lane.chain else None
        return cfg is not None and cfg.type != "local"

    def propose_patch(self, diff: str, provider: str = "local", model: str = "",
                      contract_version: str | None = None):
        """A file patch proposal, with its Code-Impl task (proposed, estimated, not run)."""
        def task(patch: str, paths: list[str]) -> Task:
            title = f"apply a patch to {', '.join(paths[:3])}" + (" …" if len(paths) > 3 else "")
            return self.propose(f"{title} and run the tests and linter on it", title=title, lane="code-impl",
                                parameters={"patch": patch})
        return self.proposals.propose_patch(diff, task=task, provider=provider, model=model,
                                            contract_version=contract_version)

    def _patch_answer(self, diff: str) -> Answer:
        if is_cell_diff(diff):  # a cell edit needs no lane: the user reviews the cell itself
            made = self.proposals.propose_cell_diff(diff)
            return Answer(intent="patch", proposals=made, markdown=(
                "I propose the cell edit you gave me; nothing changes until you apply it.\n\n"
                + "\n\n".join(proposal_summary(p) for p in made)))
        p = self.propose_patch(diff)
        task = self._orchestrator().status(p.task_id)
        return Answer(intent="patch", proposals=[p], proposed_task=task,
                      markdown="I propose the patch you gave me; nothing changes yet.\n\n" + proposal_summary(p)
                      + "\n\n" + task_proposal(task))

    def _edit_call(self, call: ToolCall, usage: Usage, contract: str | None):
        """A generative provider's edit tool: (the proposal or None, the tool result it reads)."""
        args = call.arguments if isinstance(call.arguments, dict) else {}
        who = {"provider": usage.provider, "model": usage.model, "contract_version": contract}
        try:
            if call.name == CELL_EDIT_TOOL.name:
                p = self.proposals.propose_cell(str(args.get("notebook") or ""), args.get("cell"),
                                                str(args.get("new_source") or ""), **who)
            else:
                p = self.propose_patch(str(args.get("unified_diff") or ""), **who)
        except DirEngError as exc:
            return None, f"error: {exc}"
        return p, (f"proposal {p.id} ({p.kind} edit of {p.path}) stored; the user decides whether to apply it"
                   + (f"; it first runs as Code-Impl task {p.task_id}" if p.task_id else "") + ".")

    # -- delegation -------------------------------------------------------------
    def _orchestrator(self):
        if self.tasks is None:
            raise DirEngError("delegation needs PEX, and this DirEng was built without it")
        return self.tasks()

    def propose(self, brief: str, title: str | None = None, lane: str | None = None,
                parameters: dict | None = None) -> Task:
        """A task for `brief`, created and estimated but not approved: nothing runs yet."""
        brief = brief.strip()
        if not brief:
            raise DirEngError("a task needs a brief: say what should be done")
        title = (title or brief).strip()
        if len(title) > TITLE_CHARS:
            title = title[:TITLE_CHARS - 1].rstrip() + "…"
        orch = self._orchestrator()
        task, _created = orch.new_task(title, brief, lane or None, parameters)
        return orch.estimate(task.id)

    def task_report(self, task_id: str) -> str:
        orch = self._orchestrator()
        try:
            task = orch.status(task_id)
        except NotFoundError:
            return f"I know no task `{task_id}`."
        run = next((r for r in orch.tasks.list_runs() if r["id"] == task.run_id), None) if task.run_id else None
        return task_report(task, run, Path(self.wb.settings.store), Path(self.wb.root), self.link_base)

    def _ask(self, question: str, session: str, flags: set[str], context: NotebookContext | None = None,
             on_event: OnEvent | None = None) -> Answer:
        if self.broker is None:
            markdown, hits = self.retrieve_answer(question, context)
            return Answer(markdown=markdown, intent="ask", citations=hits, provider="local")
        try:  # the agent contract is the system prompt; without one no model is asked
            contract = contracts.load(contracts.DIRENG)
        except contracts.ContractError as exc:
            log.warning("%s", exc)
            markdown, hits = self.retrieve_answer(question, context)
            return Answer(markdown=markdown, intent="ask", citations=hits, provider="local",
                          notices=[f"{exc}; answered from the index instead"])
        system = [ChatMessage(role="system", content=contract.text)]
        if context is not None and (rendered := context.render()):
            system.append(ChatMessage(role="system", content="The user's live notebook:\n\n" + scrub(rendered)))
        messages = [*system, *self.history(session), ChatMessage(role="user", content=question)]
        usages, notices = [], []
        flags = set(flags)
        proposed: Task | None = None
        edits: list = []
        specs = self.tools.specs() + ([DELEGATE_TOOL] if self.tasks is not None else []) + (
            [CELL_EDIT_TOOL, FILE_PATCH_TOOL] if self.proposals is not None and self.tasks is not None else [])
        stream = RedactedStream(on_event) if on_event is not None else None
        live = {"on_delta": stream.delta, "on_reset": stream.reset} if stream else {}
        try:
            for _round in range(MAX_TOOL_ROUNDS):
                resp = self.broker.complete(ProviderRequest(lane="chat", messages=messages, tools=specs, context=context,
                                                            contract_version=contract.version),
                                            content_flags=frozenset(flags), **live)
                usages.append(resp.usage)
                if stream and resp.tool_calls:
                    stream.reset()  # what the model said before calling tools is not the answer
                elif stream:
                    stream.finish()
                if not resp.tool_calls:
                    hits = resp.citations if resp.usage.provider == "local" else self._cited_hits(resp.content)
                    markdown = resp.content + "".join("\n\n" + proposal_summary(p) for p in edits)
                    return Answer(markdown=markdown, intent="delegate" if proposed else "edit" if edits else "ask",
                                  citations=hits, provider=resp.usage.provider, usages=usages, proposed_task=proposed,
                                  proposals=edits)
                messages.append(ChatMessage(role="assistant", content=resp.content or "", tool_calls=resp.tool_calls))
                for call in resp.tool_calls:  # tool output is redacted before any provider sees it
                    if stream:
                        stream.tool(call.name)
                    if call.name == DELEGATE_TOOL.name and self.tasks is not None:
                        proposed, raw = self._delegate_call(call)
                        messages.append(ChatMessage(role="tool", name=call.name, tool_call_id=call.id, content=raw))
                        continue
                    if call.name in EDIT_TOOLS and self.proposals is not None:
                        edit, raw = self._edit_call(call, resp.usage, contract.version)
                        edits += [edit] if edit is not None else []
                        messages.append(ChatMessage(role="tool", name=call.name, tool_call_id=call.id, content=raw))
                        continue
                    raw = self.tools.call(call)
                    flags |= learn(raw)
                    messages.append(ChatMessage(role="tool", name=call.name, tool_call_id=call.id,
                                                content=scrub(raw)))
            notices.append(f"the model used {MAX_TOOL_ROUNDS} rounds of tools without answering")
        except DirEngError as exc:
            notices.append(f"model broker: {exc}; answered from the index instead")
            log.warning("broker failed: %s", exc)
        if stream:
            stream.reset()
        markdown, hits = self.retrieve_answer(question, context)
        return Answer(markdown=markdown, intent="ask", citations=hits, provider="local", usages=usages, notices=notices)

    def _delegate_call(self, call: ToolCall) -> tuple[Task | None, str]:
        """The `delegate` tool: (the proposed task, the tool result the model reads)."""
        args = call.arguments if isinstance(call.arguments, dict) else {}
        try:
            task = self.propose(str(args.get("brief") or ""), args.get("title") or None, args.get("lane") or None)
        except DirEngError as exc:
            return None, f"error: {exc}"
        return task, (f"proposed task {task.id} on lane {task.lane} ({task.title}); state {task.state.value}; "
                      f"p50 {task.estimate.duration_p50_s:.1f}s, p90 {task.estimate.duration_p90_s:.1f}s. "
                      "It waits for the user's approval.")

    def _cited_hits(self, markdown: str):
        import re

        hits = []
        for path, cell, start, end in re.findall(r"([\w./-]+\.\w+):(?:cell (\d+):)?(\d+)-(\d+)", markdown):
            hits.append(self._hit_for(path, int(start), int(end), int(cell) if cell else None))
        return [h for h in hits if h is not None]

    def _hit_for(self, path: str, start: int, end: int, cell: int | None = None):
        row = self.wb.store.innermost_symbol(path, start, end, cell)
        return Hit(path=path, symbol=row[0] if row else None, kind=row[1] if row else "text",
                   start_line=start, end_line=end, score=0.0, cell=cell)

    @staticmethod
    def _hit(node):
        return Hit(path=node.path, symbol=node.name if node.kind not in ("file",) else None, kind=node.kind,
                   start_line=node.start_line or 1, end_line=node.end_line or 1, score=node.importance,
                   cell=node.cell)
