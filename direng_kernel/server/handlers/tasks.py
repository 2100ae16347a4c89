"""Delegation over REST: tasks (PEX), runs and passports (PAS), and PAS health.

    GET  /tasks                       list          POST /tasks            create (Idempotency-Key honoured)
    GET  /tasks/{id}                  one task      POST /tasks/{id}/{estimate|approve|start|cancel|retry|change_lane|raise_budget}
    GET  /tasks/{id}/events?after=N   the task's event log after sequence N (poll to follow live)
    GET  /tasks/{id}/events/stream?after=N   the same, live, as server-sent events (see below)
    GET  /runs                        runs with KPIs   GET /runs/{id}   the run's passport
    POST /runs/{id}/replay            {"dry_run": bool} → replay report (`match`)
    GET  /pas/health                  sandbox mode, lanes and their limits, queue

The event stream sends each event as `event: task` with `id:` its sequence number, from after
`after` (or the `Last-Event-ID` header an EventSource sends when it reconnects, whichever is
later), and ends with `event: end` ({state, last_seq}) once the task has settled: its state is
final, or escalated (waiting for the user's choice). A stream
also ends, without `end`, after `stream_max_seconds`; the client reconnects after the last id it
saw, so nothing is lost and nothing repeats.
"""

from __future__ import annotations

import asyncio
import time

from tornado import web

from ...models import SETTLED_STATES, TASK_ACTIONS
from ...records import jsonable
from .base import ApiError, DirEngHandler
from .stream import EventStreamHandler, error_payload

#: How often a task event stream looks for new events in the task store.
STREAM_POLL_S = 0.25

#: A task action → the scope a token needs for it (approving or starting runs code: runs:execute).
ACTION_SCOPES = {"estimate": "tasks:write", "cancel": "tasks:write", "change_lane": "tasks:write",
                 "approve": "runs:execute", "start": "runs:execute", "retry": "runs:execute",
                 "raise_budget": "runs:execute"}


class TasksHandler(DirEngHandler):
    scopes = {"GET": "tasks:read", "POST": "tasks:write"}

    @web.authenticated
    async def get(self):
        self.reply({"tasks": await self.run(self.engine.tasks)})

    @web.authenticated
    async def post(self):
        body = self.json_body()
        title = body.get("title")
        if not isinstance(title, str) or not title.strip():
            raise ApiError(400, "body must have a non-empty string 'title'")
        params = body.get("parameters") or {}
        if not isinstance(params, dict):
            raise ApiError(400, "'parameters' must be a JSON object")
        key = self.request.headers.get("Idempotency-Key") or body.get("idempotency_key")
        rehearsal = body.get("rehearsal", False)
        if not isinstance(rehearsal, bool):
            raise ApiError(400, "'rehearsal' must be true or false")
        task, created = await self.run(self.engine.create_task, title, body.get("brief") or "", body.get("lane"),
                                       params, key, rehearsal)
        self.reply(task, status=201 if created else 200)


class TaskHandler(DirEngHandler):
    scopes = {"GET": "tasks:read"}

    @web.authenticated
    async def get(self, task_id):
        self.reply(await self.run(self.engine.task, task_id))


class TaskActionHandler(DirEngHandler):
    scopes = {"POST": "runs:execute"}  # the strictest; `required_scope` picks per action

    def required_scope(self) -> str | None:
        if self.request.method == "POST" and len(self.path_args) >= 2:
            return ACTION_SCOPES.get(self.path_args[1], "runs:execute")
        return super().required_scope()

    @web.authenticated
    async def post(self, task_id, action):
        engine = self.engine
        body = self.json_body()
        lane, factor = body.get("lane"), body.get("factor")
        if lane is not None and (not isinstance(lane, str) or not lane.strip()):
            raise ApiError(400, "'lane' must be a lane id")
        if factor is not None and (isinstance(factor, bool) or not isinstance(factor, (int, float))):
            raise ApiError(400, "'factor' must be a number")

        def act():
            engine.task(task_id)  # an unknown id is a 404 whichever way the action itself would fail
            return engine.task_action(task_id, action, lane=lane, factor=factor)

        self.reply(await self.run(act))


class TaskEventsHandler(DirEngHandler):
    scopes = {"GET": "tasks:read"}

    @web.authenticated
    async def get(self, task_id):
        after = self.int_arg("after", 0, low=0)
        self.reply({"events": await self.run(self.engine.task_events, task_id, after)})


class TaskEventStreamHandler(EventStreamHandler):
    scopes = {"GET": "tasks:read"}

    @web.authenticated
    async def get(self, task_id):
        after = self.int_arg("after", 0, low=0)
        last_id = (self.request.headers.get("Last-Event-ID") or "").strip()
        if last_id.isdigit():
            after = max(after, int(last_id))
        engine = self.engine
        await self.run(engine.task, task_id)  # an unknown id is a plain 404, before the stream opens
        deadline, quiet_since = self.deadline(), time.monotonic()
        await self.open_stream()
        try:
            while True:
                # The state first: once it is final, every event of the task is in the store.
                state = getattr((task := await self.run(engine.task, task_id)).state, "value", task.state)
                events = await self.run(engine.task_events, task_id, after)
                for ev in events:
                    if not await self.send("task", jsonable(ev), id=ev.seq):
                        return
                    after = ev.seq
                now = time.monotonic()
                if state in SETTLED_STATES:  # ended, or escalated: waiting for the user
                    await self.send("end", {"state": state, "last_seq": after})
                    break
                if now >= deadline:
                    break
                if events:
                    quiet_since = now
                elif now - quiet_since >= self.keepalive_s:
                    if not await self.keepalive():
                        return
                    quiet_since = now
                await asyncio.sleep(STREAM_POLL_S)
        except ApiError as exc:
            await self.send("error", error_payload(exc))
        if self._stream_open:
            self.finish()


class RunsHandler(DirEngHandler):
    scopes = {"GET": "tasks:read"}

    @web.authenticated
    async def get(self):
        self.reply({"runs": await self.run(self.engine.runs)})


class PlmsHistoryHandler(DirEngHandler):
    scopes = {"GET": "tasks:read"}

    @web.authenticated
    async def get(self):
        self.reply({"runs": await self.run(self.engine.plms_history)})


class RunHandler(DirEngHandler):
    scopes = {"GET": "tasks:read"}

    @web.authenticated
    async def get(self, run_id):
        self.reply(await self.run(self.engine.passport, run_id))


class ReplayHandler(DirEngHandler):
    scopes = {"POST": "runs:replay"}

    @web.authenticated
    async def post(self, run_id):
        dry = self.json_body().get("dry_run", False)
        if not isinstance(dry, bool):
            raise ApiError(400, "'dry_run' must be true or false")
        self.reply(await self.run(self.engine.replay, run_id, dry))


class PasHealthHandler(DirEngHandler):
    scopes = {"GET": "tasks:read"}

    @web.authenticated
    async def get(self):
        self.reply(await self.run(self.engine.pas_health))


ROUTES = [
    (r"/tasks", TasksHandler),
    (r"/tasks/([\w-]+)", TaskHandler),
    (rf"/tasks/([\w-]+)/({'|'.join(TASK_ACTIONS)})", TaskActionHandler),
    (r"/tasks/([\w-]+)/events", TaskEventsHandler),
    (r"/tasks/([\w-]+)/events/stream", TaskEventStreamHandler),
    (r"/runs", RunsHandler),
    (r"/runs/([\w-]+)", RunHandler),
    (r"/runs/([\w-]+)/replay", ReplayHandler),
    (r"/pas/health", PasHealthHandler),
    (r"/plms/history", PlmsHistoryHandler),
]
