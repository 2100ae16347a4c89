"""`%direng delegate`: a task from brief to result, visible in the notebook.

Creates the task (routed to a lane unless one is named), shows PLMS's estimate with an
Approve button (or approves at once with `--yes`, as papermill runs need), then follows the
task's event log live until it ends and shows the result: state, KPIs, and links to the
output notebook and the run passport.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from IPython.display import Markdown, display

from ..models import FINAL_STATES


class Delegation:
    def __init__(self, client, brief: str, lane: str | None = None, title: str | None = None,
                 parameters: dict | None = None, timeout: float = 3600.0):
        self.client = client
        self.task = client.new_task(title or brief[:80], brief, lane, parameters or {})
        self.task = client.task_action(self.task.id, "estimate")
        self.timeout = timeout
        self._seen = 0

    def estimate_markdown(self) -> str:
        t, e = self.task, self.task.estimate
        basis = "prior (fewer than the minimum runs)" if e.prior_only else f"{e.n_history} calibrated runs"
        drift = " — **drift**: recent runs left the calibrated band" if e.drift else ""
        return (f"**Task `{t.id}`** → lane **{t.lane}**: {t.title}\n\n"
                f"Estimate: p50 **{e.duration_p50_s:.1f} s**, p90 **{e.duration_p90_s:.1f} s**"
                + (f", cost p90 {e.cost_p90:.4f}" if e.cost_p90 else "") + f" ({basis}){drift}")

    def show(self, auto_approve: bool = False):
        display(Markdown(self.estimate_markdown()))
        if auto_approve:
            self._run(self._print)
            return None
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
            if self.task.state.value in FINAL_STATES:
                break
            time.sleep(0.3)
        for ev in self.client.task_events(self.task.id, self._seen):
            self._seen = ev.seq
            emit(f"[{ev.at:%H:%M:%S}] {ev.kind:<8} {ev.message}")
        display(Markdown(self.result_markdown()))

    def result_markdown(self) -> str:
        t = self.task
        run = next((r for r in self.client.runs() if r["id"] == t.run_id), None) if t.run_id else None
        lines = [f"**Task `{t.id}` {t.state.value}**" + (f": {t.error}" if t.error else "")]
        if run:
            kpis = ", ".join(f"{k} = {v:g}" for k, v in sorted(run["kpis"].items()))
            lines.append(f"KPIs: {kpis or 'none'}; sandbox: {run.get('sandbox') or '-'}; "
                         f"{(run.get('duration_s') or 0):.1f} s")
            store = Path(self.client.health()["store"])
            for label, path in (("output notebook", store / "runs" / run["id"] / "output.ipynb"),
                                ("passport", store / "passports" / f"{run['id']}.json")):
                rel = os.path.relpath(path, os.getcwd()).replace(os.sep, "/")
                lines.append(f"- {label}: [{path.name}]({rel})")
            lines.append(f"Replay it: `direng replay {run['id']}`")
        return "\n\n".join(lines)
