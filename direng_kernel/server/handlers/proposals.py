"""Edits DirEng proposed: `GET /direng/api/proposals`, `GET …/proposals/{id}`,
`POST …/proposals/{id}/{apply|reject}`.

Applying changes the user's files (a notebook cell, or a patch once its Code-Impl task
succeeded), so it needs `runs:execute`, the scope that approves runs; reading and rejecting need
what chatting needs and what cancelling a task needs.
"""

from __future__ import annotations

from tornado import web

from ...models import PROPOSAL_ACTIONS
from .base import DirEngHandler

#: A proposal action → the scope a token needs for it.
PROPOSAL_SCOPES = {"apply": "runs:execute", "reject": "tasks:write"}


class ProposalsHandler(DirEngHandler):
    scopes = {"GET": "index:read"}

    @web.authenticated
    async def get(self):
        self.reply({"proposals": await self.run(self.engine.proposals)})


class ProposalHandler(DirEngHandler):
    scopes = {"GET": "index:read"}

    @web.authenticated
    async def get(self, proposal_id):
        self.reply(await self.run(self.engine.proposal, proposal_id))


class ProposalActionHandler(DirEngHandler):
    scopes = {"POST": "runs:execute"}  # the strictest; `required_scope` picks per action

    def required_scope(self) -> str | None:
        if self.request.method == "POST" and len(self.path_args) >= 2:
            return PROPOSAL_SCOPES.get(self.path_args[1], "runs:execute")
        return super().required_scope()

    @web.authenticated
    async def post(self, proposal_id, action):
        self.reply(await self.run(self.engine.proposal_action, proposal_id, action))


ROUTES = [
    (r"/proposals", ProposalsHandler),
    (r"/proposals/([\w-]+)", ProposalHandler),
    (rf"/proposals/([\w-]+)/({'|'.join(PROPOSAL_ACTIONS)})", ProposalActionHandler),
]
