"""`GET /direng/api/policy` (the active broker policy) and `POST` (validate, optionally apply).

An invalid policy file never stops the server: the engine keeps the previous valid policy
(or the embedded default) and reports the file's errors here and at `health`. A POST checks
a candidate policy against the schema and, with `"apply": true` and no issues, switches to
it and saves it to the policy file.
"""

from __future__ import annotations

from tornado import web

from .base import ApiError, DirEngHandler


def policy_document(policy) -> dict | None:
    """The policy as its JSON document (aliases such as `$schema`, only the fields it sets), so a
    GET's `policy` can be edited and POSTed back as is."""
    if policy is None:
        return None
    if hasattr(policy, "model_dump"):
        return policy.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return dict(policy)


class PolicyHandler(DirEngHandler):
    scopes = {"GET": "index:read", "POST": "policy:admin"}

    @web.authenticated
    async def get(self):
        engine = self.engine
        self.reply({
            "path": str(engine.policy_path) if engine.policy_path else None,
            "policy": policy_document(engine.policy),
            "valid": not engine.policy_errors,
            "errors": list(engine.policy_errors),
        })

    @web.authenticated
    async def post(self):
        body = self.json_body()
        candidate = body.get("policy")
        if not isinstance(candidate, dict):
            raise ApiError(400, "body must have a JSON object 'policy'")
        apply = body.get("apply", False)
        if not isinstance(apply, bool):
            raise ApiError(400, "'apply' must be true or false")
        engine = self.engine
        issues = await self.run(engine.apply_policy if apply else engine.validate_policy, candidate)
        self.reply({"valid": not issues, "issues": issues, "applied": bool(apply and not issues)})


ROUTES = [(r"/policy", PolicyHandler)]
