"""PLMS over REST: lane routing decisions, lane overrides learned from misroutes, calibration.

    POST /plms/route          {"title", "brief"} → the routing decision (lane, margin, the top two
                              with reasons, `uncertain`: ask the user); the pick is recorded by
                              creating the task with it (`POST /tasks` with `lane`: source `asked`)
    GET  /plms/overrides      ?min_repeats=N → {"overrides": [proposal with evidence, `accepted`]}
    POST /plms/overrides      {"accept": ID} → the override, written into the policy (policy:admin)
    GET  /plms/calibration    ?plot=0|1 → {"runs", "lanes": [report row], "png": base64 or null}
"""

from __future__ import annotations

from tornado import web

from .base import ApiError, DirEngHandler

MAX_BRIEF = 20_000  # characters of title + brief a routing reads (a task's brief is not a document)


class RouteHandler(DirEngHandler):
    scopes = {"POST": "tasks:read"}  # a question: nothing is created or recorded

    @web.authenticated
    async def post(self):
        body = self.json_body()
        title, brief = body.get("title", ""), body.get("brief", "")
        if not isinstance(title, str) or not isinstance(brief, str):
            raise ApiError(400, "'title' and 'brief' must be strings")
        if not (title.strip() or brief.strip()):
            raise ApiError(400, "body must have a non-empty string 'title' or 'brief'")
        if len(title) + len(brief) > MAX_BRIEF:
            raise ApiError(400, f"title and brief are longer than {MAX_BRIEF} characters")
        self.reply(await self.run(self.engine.route, title, brief))


class OverridesHandler(DirEngHandler):
    scopes = {"GET": "tasks:read", "POST": "policy:admin"}

    @web.authenticated
    async def get(self):
        min_repeats = self.int_arg("min_repeats", 3, low=1, high=1000)
        self.reply({"overrides": await self.run(self.engine.lane_overrides, min_repeats)})

    @web.authenticated
    async def post(self):
        override_id = self.json_body().get("accept")
        if not isinstance(override_id, str) or not override_id.strip():
            raise ApiError(400, "body must have the string 'accept': the id of a proposed override")
        engine = self.engine
        override = await self.run(engine.accept_override, override_id.strip())
        self.reply({"override": override, "policy_sha256": engine.policy.hash,
                    "saved": str(engine.policy_path) if engine.policy_path else None})


class CalibrationHandler(DirEngHandler):
    scopes = {"GET": "tasks:read"}

    @web.authenticated
    async def get(self):
        self.reply(await self.run(self.engine.plms_calibration, self.bool_arg("plot", True)))


ROUTES = [
    (r"/plms/route", RouteHandler),
    (r"/plms/overrides", OverridesHandler),
    (r"/plms/calibration", CalibrationHandler),
]
