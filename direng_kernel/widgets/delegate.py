"""`%direng delegate`: a task from brief to result, visible in the notebook.

Creates the task (routed to a lane unless one is named) — or takes the task DirEng proposed in
a chat answer (`Delegation.for_task`) — shows PLMS's estimate with an Approve button (or
approves at once with `--yes`, as papermill runs need), then follows the task's event log live
until it ends and shows the result: state, KPIs, duration, cost, and links to the output
notebook and the run passport (the wording is DirEng's own, `direng/compose.py`).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from IPython.display import Markdown, display

from ..direng.compose import estimate_line, task_report
from ..models import SETTLED_STATES, Task


class Delegation:
    def __init__(self, client, brief: str, lane: str | None = None, title: str | None = None,
                 parameters: dict | None = None, timeout: float = 3600.0, *, task: Task | None = None):
        self.client = client
        if task is None:
            task = client.new_task(title or brief[:80], brief, lane, parameters or {})
            task = client.task_action(task.id, "estimate")
        self.task = task
        self.timeout = timeout
        self._seen = 0

    @classmethod
    def for_task(cls, client, task: Task, timeout: float = 3600.0) -> "Delegation":
        """The Approve / Cancel buttons for a task that exists already (DirEng's proposal)."""
        return cls(client, task.brief, task.lane, task.title, timeout=timeout, task=task)

    def estimate_markdown(self) -> str:
        t = self.task
        return f"**Task `{t.id}`** → lane **{t.lane}**: {t.title}\n\n{estimate_line(t)}"

    def show(self, auto_approve: bool = False):
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
