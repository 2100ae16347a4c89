"""`direng task …`, `direng runs`, `direng replay`: delegation from the command line.

Every command takes `--root ROOT` and `--json`, and goes through the application API (`Client`,
here the engine of `--root` in this process) like the other surfaces. `task start` leaves the choice of worker to
`Orchestrator.start`: without a running server that owns the store it runs the task in this
process (attaching to it when it is already queued or running, and taking it over if its worker
was lost) and returns when it ends; with one, the server's workers run it and the CLI only queues
(and follows with `--follow`, which also streams the events). What the start decided — a backlog
ahead, a worker it follows — is printed on stderr as one line either way.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

from ..models import SETTLED_STATES, TASK_ACTIONS
from ..pex.params import parse_params
from ..tables import runs_frame
from .commands import client_for


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default=".", help="the repository (default: .)")
    p.add_argument("--store", default=None, help="store directory (default: ROOT/.direng)")
    p.add_argument("--json", action="store_true")


def add_parsers(sub) -> None:
    task = sub.add_parser("task", help="delegate work: new, estimate, approve, start, status, list, cancel")
    tsub = task.add_subparsers(dest="task_command", metavar="SUBCOMMAND")
    tsub.required = True
    p = tsub.add_parser("new", help="create a task")
    p.add_argument("--title", required=True)
    p.add_argument("--brief", default="")
    p.add_argument("--lane", default=None, help="code-impl, code-api-design, data-schema, vector-ops, graph-ops, narrative")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="lane parameter: VALUE is JSON when it parses as JSON, else text (repeatable)")
    p.add_argument("--params-json", default=None, help="lane parameters as a JSON object")
    p.add_argument("--idempotency-key", default=None)
    p.add_argument("--rehearsal", action="store_true", help="a dry-run: excluded from PLMS calibration")
    p.add_argument("--ask", action=argparse.BooleanOptionalAction, default=None,
                   help="without --lane, when PLMS's lane classifier is unsure, ask which of its two lanes "
                        "(read from stdin; default: when stdin is a terminal)")
    _common(p)
    task.set_defaults(run=run)
    helps = {"estimate": "estimate with PLMS", "approve": "approve an estimated task",
             "cancel": "cancel a task (stops a running lane)", "start": "start a task",
             "status": "show a task", "retry": "answer an escalation: run (or estimate) the task again",
             "change_lane": "answer an escalation: move the task to another lane (re-estimated)",
             "raise_budget": "answer an escalation: multiply the task's budgets, then run or estimate again"}
    for name in (*TASK_ACTIONS, "status"):
        p = tsub.add_parser(name, help=helps[name])
        p.add_argument("id")
        if name in ("start", "status"):
            p.add_argument("--follow", action="store_true", help="stream events until the task ends")
        if name == "change_lane":
            p.add_argument("--lane", required=True, help="the lane to move the task to")
        if name == "raise_budget":
            p.add_argument("--factor", type=float, default=2.0, help="multiply the budgets by this (default 2)")
        _common(p)
    p = tsub.add_parser("list", help="list tasks")
    _common(p)

    p = sub.add_parser("runs", help="lane runs with their KPIs (a table, JSON, or an export)")
    p.add_argument("action", nargs="?", choices=["export"], help="export the table")
    p.add_argument("--format", choices=["csv", "parquet"], default="csv")
    p.add_argument("--out", default=None, help="export file (default: runs.csv / runs.parquet)")
    p.set_defaults(run=_runs)
    _common(p)

    p = sub.add_parser("pas", help="the executor: sandbox mode, lanes and their limits, queue")
    p.add_argument("pas_command", choices=["health"], metavar="health")
    p.set_defaults(run=_pas_health)
    _common(p)

    p = sub.add_parser("replay", help="re-run a recorded run from its passport and compare")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--dry-run", action="store_true", help="check the passport and artifacts, run nothing")
    p.set_defaults(run=_replay)
    _common(p)


def _print_task(task, as_json: bool) -> None:
    if as_json:
        print(json.dumps(task.model_dump(mode="json"), indent=2))
        return
    est = task.estimate
    line = f"{task.id}  {task.state.value:<11} {task.lane:<16} {task.title}"
    if est:
        line += f"  (p50 {est.duration_p50_s:.1f}s, p90 {est.duration_p90_s:.1f}s)"
        if est.explanation:
            line += f"\n  estimate: {est.explanation}"
    if task.error:
        line += f"\n  error: {task.error}"
    if task.escalation:
        esc = task.escalation
        line += (f"\n  escalated ({esc.kind}): {esc.message}\n  choose: "
                 + ", ".join(f"direng task {c} {task.id}" + (" --lane LANE" if c == "change_lane" else "")
                             for c in esc.options))
    print(line)


class _EventPrinter(threading.Thread):
    """Prints a task's events on stderr while a start runs: all of them with --follow, otherwise
    only the notes the start writes (backlog ahead, the worker it attached to)."""

    def __init__(self, client, task_id: str, everything: bool):
        super().__init__(daemon=True)
        self.client, self.task_id, self.everything = client, task_id, everything
        self.seen = 0 if everything else max((e.seq for e in client.task_events(task_id)), default=0)
        self._done, self._lock = threading.Event(), threading.Lock()

    def run(self) -> None:
        while not self._done.wait(0.2):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            for ev in self.client.task_events(self.task_id, self.seen):
                self.seen = ev.seq
                if self.everything:
                    print(f"[{ev.at:%H:%M:%S}] {ev.kind:<8} {ev.message}", file=sys.stderr)
                elif ev.data.get("note"):
                    print(f"{self.task_id}: {ev.message}", file=sys.stderr)

    def close(self) -> None:
        self._done.set()
        self.join(5)
        self.flush()


def _follow(client, task_id: str, as_json: bool, poll: float = 0.25) -> None:
    """Print the task's events until it reaches a final state."""
    printer = None if as_json else _EventPrinter(client, task_id, everything=True)
    while client.task(task_id).state.value not in SETTLED_STATES:
        if printer:
            printer.flush()
        threading.Event().wait(poll)
    if printer:
        printer.flush()


def _ask_lane(args, client) -> str | None:
    """When the lane classifier is unsure of the brief, the lane the user picks (None: let PEX
    route). Asked on stderr, answered on stdin (a number, a lane name, or Enter for the first);
    not asked without a terminal unless --ask. The decision is PEX's own (`Client.route`: the
    policy's lane overrides first, then the classifier)."""
    from ..plms.routing import choice_lines

    ask = args.ask if args.ask is not None else sys.stdin.isatty()
    decision = client.route(args.title, args.brief)
    if not decision.uncertain:
        return None
    if not ask:
        print(f"direng: routed to {decision.lane}, unsure (margin {decision.margin:.2f}); "
              "--lane chooses, --ask asks", file=sys.stderr)
        return None
    for line in choice_lines(decision):
        print(line, file=sys.stderr)
    lanes = [c.lane for c in decision.candidates]
    print(f"lane [1-{len(lanes)} or a lane name, Enter = 1]: ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip()
    if not answer:
        return lanes[0]
    if answer.isdigit() and 1 <= int(answer) <= len(lanes):
        return lanes[int(answer) - 1]
    return answer  # a lane name: PEX refuses an unknown one, naming the closest


def run(args) -> int:
    client = client_for(args)
    cmd = args.task_command
    if cmd == "new":
        lane = args.lane
        if lane is None and not args.rehearsal:
            lane = _ask_lane(args, client)
        task = client.new_task(args.title, args.brief, lane, parse_params(args.param, args.params_json),
                               args.idempotency_key, args.rehearsal)
        _print_task(task, args.json)
        return 0
    if cmd == "list":
        items = client.tasks()
        if args.json:
            print(json.dumps([t.model_dump(mode="json") for t in items], indent=2))
        else:
            for t in items:
                _print_task(t, False)
        return 0
    if cmd == "start":
        client.task(args.id)  # an unknown id is one line before anything starts
        printer = None if args.json else _EventPrinter(client, args.id, everything=args.follow)
        if printer:
            printer.start()
        try:
            task = client.run_task(args.id, follow=args.follow)
        finally:
            if printer:
                printer.close()
    elif cmd in TASK_ACTIONS:
        task = client.task_action(args.id, cmd, lane=getattr(args, "lane", None), factor=getattr(args, "factor", None))
    else:  # status
        if args.follow:
            _follow(client, args.id, args.json)
        task = client.task(args.id)
    _print_task(task, args.json)
    return 0 if task.state not in ("failed", "escalated") or cmd not in ("start",) else 1


def _runs(args) -> int:
    rows = client_for(args).runs()
    frame = runs_frame(rows)
    if args.action == "export":
        out = Path(args.out or f"runs.{args.format}")
        if args.format == "csv":
            frame.to_csv(out, index=False)
        else:
            frame.to_parquet(out, index=False)
        print(f"wrote {len(frame)} runs to {out}", file=sys.stderr)
        return 0
    if args.json:
        print(json.dumps([r["id"] for r in rows]))
    elif frame.empty:
        print("no runs yet")
    else:
        cols = [c for c in ("id", "task_id", "lane", "state", "duration_s", "sandbox") if c in frame] + \
            [c for c in frame.columns if c.startswith("kpi.")]
        print(frame[cols].to_string(index=False))
    return 0


def _replay(args) -> int:
    report = client_for(args).replay(args.run_id, dry_run=args.dry_run)  # PEX runs the replay as a task
    if args.json:
        print(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        print(report.summary())
    return 0 if report.match or args.dry_run else 1


def _pas_health(args) -> int:
    health = client_for(args).pas_health()
    if args.json:
        print(json.dumps(health, indent=2))
    else:
        sandbox = health["sandbox"]
        print(f"PAS {health['status']}: sandbox {sandbox['mode']}"
              + (f" ({sandbox['reason']})" if sandbox.get("reason") else "")
              + f"; queue: {health['queue']['queued']} queued, {health['queue']['running']} running")
        for lane, info in health["lanes"].items():
            detail = (f"timeout {info['limits']['timeout_s']}s, memory {info['limits']['memory_mb']} MB, "
                      f"max_parallel {info['limits']['max_parallel']}") if info["ok"] else info["error"]
            print(f"  {lane:<16} {'ok ' if info['ok'] else 'ERR'} {detail}")
    return 0 if health["status"] == "ok" else 1
