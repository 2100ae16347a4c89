"""`%direng delegate`: a task from brief to result, visible in the notebook.

Creates the task (routed to a lane unless one is named; when PLMS's lane classifier is unsure,
it first shows its two lanes with their reasons as buttons, and the pick is the lane) — or takes the task DirEng proposed in
a chat answer (`Delegation.for_task`) — shows PLMS's estimate with an Approve button (or
approves at once with `--yes`, as papermill runs need), then follows the task's event log live
until it ends and shows the result: state, KPIs, duration, cost, and links to the output
notebook and the run passport (the wording is DirEng's own, `direng/compose.py`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from IPython.display import Markdown, display

from ..direng.compose import estimate_line, task_report
from ..models import SETTLED_STATES, Task

log = logging.getLogger(__name__)


class Delegation:
    def __init__(self, client, brief: str, lane: str | None = None, title: str | None = None,
                 parameters: dict | None = None, timeout: float = 3600.0, *, task: Task | None = None):
        self.client = client
        self.brief, self.title, self.parameters = brief, title or brief[:80], parameters or {}
        self.timeout = timeout
        self._seen = 0
        #: PLMS's routing decision when no lane is named; when it is unsure, the task waits for a pick
        self.decision = self._routing() if task is None and lane is None else None
        self.choice_buttons: list = []
        if task is None and not (self.decision is not None and self.decision.uncertain):
            task = self._create(lane)
        self.task = task

    def _routing(self):
        """PEX's routing decision for the title and brief (`Client.route`: the policy's lane
        overrides, then the lane classifier), or None: PEX routes."""
        try:
            return self.client.route(self.title, self.brief)
        except Exception as exc:  # routing help is optional: PEX still routes the task
            log.warning("no lane suggestion for the brief: %s", exc)
            return None

    def _create(self, lane: str | None) -> Task:
        """The task, in `lane` (PEX routes it when None; a lane picked here is the answer PEX records)."""
        task = self.client.new_task(self.title, self.brief, lane, self.parameters)
        return self.client.task_action(task.id, "estimate")

    @classmethod
    def for_task(cls, client, task: Task, timeout: float = 3600.0) -> "Delegation":
        """The Approve / Cancel buttons for a task that exists already (DirEng's proposal)."""
        return cls(client, task.brief, task.lane, task.title, timeout=timeout, task=task)

    def estimate_markdown(self) -> str:
        t = self.task
        return f"**Task `{t.id}`** → lane **{t.lane}**: {t.title}\n\n{estimate_line(t)}"

    def choice_markdown(self) -> str:
        from ..plms.routing import choice_lines

        first, *rest = choice_lines(self.decision)
        return f"**DirEng is {first}**\n\n" + "\n".join(f"- {line.strip()}" for line in rest)

    def lane_buttons(self):
        """One button per candidate lane: a click creates and estimates the task there (the answer
        becomes a labelled example), then shows its Approve / Cancel buttons."""
        import ipywidgets as w

        out = w.Output()
        self.choice_buttons = [w.Button(description=c.lane, tooltip="; ".join(c.reasons))
                               for c in self.decision.candidates]

        def pick(button):
            for b in self.choice_buttons:
                b.disabled = True
            self.task = self._create(button.description)
            with out:
                display(Markdown(self.estimate_markdown()))
                self.buttons()

        for b in self.choice_buttons:
            b.on_click(pick)
        display(w.VBox([w.HBox(self.choice_buttons), out]))

    def show(self, auto_approve: bool = False):
        if self.task is None:
            if not auto_approve:
                display(Markdown(self.choice_markdown()))
                return self.lane_buttons()
            # --yes asks nothing: the router's first lane, and a note that it was unsure
            self.task = self._create(self.decision.lane)
            display(Markdown(f"DirEng was unsure of the lane (margin {self.decision.margin:.2f}); "
                             f"took **{self.decision.lane}**: name one with `--lane`"))
        display(Markdown(self.estimate_markdown()))
        if auto_approve:
            self._run(self._print)
            return None
        return self.buttons()

    def buttons(self):
        """Approve / Cancel; Approve runs the task and follows it below the buttons."""
        import ipywidgets as w

        approve, cancel = w.Button(description="Approve", button_style="success"), w.Button(description="Cancel")
        out = w.Output()

        def on_approve(_b):
            approve.disabled = cancel.disabled = True
            threading.Thread(target=self._run, args=(lambda text: out.append_stdout(text + "\n"),),
                             daemon=True).start()

        def on_cancel(_b):
            approve.disabled = cancel.disabled = True
            self.task = self.client.task_action(self.task.id, "cancel")
            out.append_stdout(f"task {self.task.id} cancelled\n")

        approve.on_click(on_approve)
        cancel.on_click(on_cancel)
        display(w.VBox([w.HBox([approve, cancel]), out]))
        return None

    def _print(self, text: str) -> None:
        print(text, flush=True)

    def _run(self, emit) -> None:
        self.client.task_action(self.task.id, "approve")
        self.task = self.client.task_action(self.task.id, "start")
        deadline = time.time() + self.timeout
        while time.time() < deadline:
            for ev in self.client.task_events(self.task.id, self._seen):
                self._seen = ev.seq
                emit(f"[{ev.at:%H:%M:%S}] {ev.kind:<8} {ev.message}")
            self.task = self.client.task(self.task.id)
            if self.task.state.value in SETTLED_STATES:
                break
            time.sleep(0.3)
        for ev in self.client.task_events(self.task.id, self._seen):
            self._seen = ev.seq
            emit(f"[{ev.at:%H:%M:%S}] {ev.kind:<8} {ev.message}")
        display(Markdown(self.result_markdown()))

    def result_markdown(self) -> str:
        t = self.task
        run = next((r for r in self.client.runs() if r["id"] == t.run_id), None) if t.run_id else None
        health = self.client.health()
        return task_report(t, run, Path(health["store"]), Path(health["root"]), link_base=os.getcwd())
