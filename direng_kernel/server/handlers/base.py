"""What every DirEng handler shares: authentication and scopes, JSON in and out, errors as JSON.

Handlers derive from jupyter_server's `APIHandler`. Two ways in:

* A DirEng JWT (`docs/security-tokens.md`): `Authorization: Bearer <jwt>`, or
  `Authorization: token <jwt>` when the value is a JWT (what kernels send with their
  `DIRENG_TOKEN`). It is verified here (RS256, this server's keys, issuer, audience, expiry,
  subject = the server's user): an invalid one is a 401 `invalid token: <reason>` and never
  falls through to Jupyter's login; a valid one without the scope the handler declares for the
  method (`scopes = {"GET": "index:read", ...}`) is a 403 naming the `missing_scope`. Such
  requests skip the XSRF and origin checks (like Jupyter's own token header: a browser never
  attaches an Authorization header by itself).
* Jupyter's own login (server token, cookie + XSRF for browser POSTs): every scope. On a
  JupyterHub single-user server the Hub's identity instead: exactly the DirEng scopes its token
  holds for this server as `custom:direng:*` custom scopes (`server/hub.py`); a token with an
  unknown `custom:direng:*` scope is a 403. An unauthenticated call is a 403 JSON reply, never
  a login redirect.

Blocking engine calls run on the extension's thread pool (`run`), never on the event loop.
Every error reply has the shape `{"status": 404, "code": "unknown_symbol", "message": "one line",
...extra}`: `code` is the engine error's stable `error_code` (see errors.py; clients rebuild the
exception from it with `errors.from_reply`) or, for errors of the HTTP layer, the status's word
in `HTTP_CODES`:

    NotIndexedError      → 409          UnknownSymbolError → 404 (+ "suggestions")
    NotFoundError (any)  → 404          other DirEngError  → 400
    bad query/body       → 400          body too large     → 413
    engine unavailable   → 503          anything else      → 500 (traceback logged, never sent)
    invalid JWT          → 401          JWT lacks the scope → 403 (+ "missing_scope")

Request bodies are bounded before anything else reads them (`json_body`): at most
`max_body_bytes` (a traitlet, 8 MiB), JSON only (no NaN/Infinity), nested at most
`MAX_JSON_DEPTH` deep. Every 401 and 403 is written to the audit log (`auth.failed` /
`auth.denied`, rate-limited per client and reason, see `_audit_refusal`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from typing import Any, Callable, ClassVar

from jupyter_server.base.handlers import APIHandler
from tornado.web import HTTPError, RequestHandler

from ...errors import DirEngError, NotFoundError, NotIndexedError, UnknownSymbolError
from ...records import jsonable
from ...security import audit
from ...security.scopes import hub_scope
from ...security.tokens import (AUDIENCE, InsufficientScope, InvalidToken, current_username, decode_unverified,
                                looks_like_jwt, verify)
from ..hub import UnknownHubScopeError, hub_granted_scopes, hub_user_model, server_access_scopes

log = logging.getLogger(__name__)

#: `Authorization: Bearer <v>` / `token <v>` (scheme case-insensitive, as jupyter_server reads it)
_AUTH_HEADER = re.compile(r"(bearer|token)\s+(.*?)\s*", re.IGNORECASE)
_KID = re.compile(r"[A-Za-z0-9_-]{1,128}")  # a key id as keys.py writes them; anything else is not recorded
MAX_BODY_BYTES = 8 * 1024 * 1024  # default of the `max_body_bytes` traitlet
#: Deeper JSON is refused: no API document nests anywhere near this, and every layer that walks a
#: body (scrubbing, pydantic, json.dumps) recurses.
MAX_JSON_DEPTH = 64
_INT64 = (-(2**63), 2**63 - 1)  # what SQLite (and most of the engine) can hold
_MAX_MESSAGE = 300
#: Used when the extension did not put one in the settings (handlers built outside a server).
_FALLBACK_LIMIT = audit.RateLimit()


#: The reply `code` of errors raised by the HTTP layer itself rather than the engine.
HTTP_CODES = {400: "bad_request", 401: "invalid_token", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "too_large", 500: "internal", 503: "unavailable"}


def http_code(status: int) -> str:
    return HTTP_CODES.get(status, "bad_request" if 400 <= status < 500 else "internal")


class ApiError(HTTPError):
    """An HTTP error whose reply carries `code`, `message` and any `extra` fields (and `headers`).
    `audit`: for refusals (401/403), what the audit record says about them (never token text)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None,
                 audit: dict[str, Any] | None = None, code: str | None = None, **extra: Any):
        super().__init__(status, "%s", message)
        self.message = message
        self.code = code or http_code(status)
        self.extra = extra
        self.headers = dict(headers or {})
        self.audit = dict(audit or {})


def to_api_error(exc: DirEngError) -> ApiError:
    """Map an engine error to its HTTP status: every kind of not-found is a 404, every other
    DirEngError the caller's (4xx); only unexpected exceptions are 500s."""
    fields = {"code": exc.error_code, **exc.details()}
    if isinstance(exc, UnknownSymbolError):
        return ApiError(404, str(exc), **fields)
    if isinstance(exc, NotIndexedError):
        return ApiError(409, str(exc), **fields)
    if isinstance(exc, NotFoundError):
        return ApiError(404, str(exc), **fields)
    if isinstance(exc, InvalidToken):
        return ApiError(401, str(exc), audit={"reason": exc.code}, **fields)
    if isinstance(exc, InsufficientScope):
        return ApiError(403, str(exc), missing_scope=exc.scope, audit={"reason": "missing_scope", "scope": exc.scope},
                        **fields)
    return ApiError(400, str(exc), **fields)


def _too_deep(value: Any, limit: int) -> bool:
    """Is `value` nested more than `limit` containers deep? (iterative: the point is not to recurse)"""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")


class DirEngHandler(APIHandler):
    """Base class of the DirEng API handlers.

    Subclasses declare the scope a DirEng token needs for each method they implement in
    `scopes` (or override `required_scope` when it depends on the path). A method that is
    missing there is refused to tokens (403): fail closed.
    """

    #: HTTP method → the DirEng scope a token needs to call it.
    scopes: ClassVar[dict[str, str]] = {}
    #: True for endpoints anyone may read (JWKS): no DirEng token handling at all.
    public: ClassVar[bool] = False

    #: The verified claims when a DirEng JWT authenticated this request, else None.
    _direng_claims = None

    # -- authentication and scopes ------------------------------------------------
    def required_scope(self) -> str | None:
        """The scope this request needs (path arguments are known: tornado sets them before `prepare`)."""
        return self.scopes.get(self.request.method or "")

    @property
    def token_claims(self):
        """The verified DirEng token claims (`Claims`), or None for Jupyter-authenticated requests."""
        return self._direng_claims

    def _direng_jwt(self) -> str | None:
        """The JWT this request presents, if any: any Bearer value, or a `token` value shaped like a JWT
        (other `token` values are Jupyter's own server token, left to Jupyter's identity provider)."""
        match = _AUTH_HEADER.fullmatch(self.request.headers.get("Authorization", "").strip())
        if not match:
            return None
        scheme, value = match.group(1).lower(), match.group(2)
        if scheme == "bearer":
            return value
        return value if looks_like_jwt(value) else None

    async def prepare(self) -> None:  # type: ignore[override]
        self._direng_claims = None
        if self.public:
            await super().prepare()
            return
        token = self._direng_jwt()
        if token is None:  # Jupyter's login (token, cookie, JupyterHub): raises 403 when there is none
            await super().prepare()
            granted = self.hub_scopes()
            if granted is not None:  # a JupyterHub user: its token's custom:direng:* scopes
                self._check_scope(granted, hub=True)
            return
        self._prepare_jwt(token)

    def hub_scopes(self) -> frozenset[str] | None:
        """The DirEng scopes a JupyterHub user holds on this server (`server/hub.py`); None for a
        request Jupyter authenticated without the Hub (every scope). 403 on unknown DirEng scopes."""
        model = hub_user_model(self.current_user)
        if model is None:
            return None
        try:
            return hub_granted_scopes(model, server_access_scopes(self.identity_provider))
        except UnknownHubScopeError as exc:
            raise ApiError(403, str(exc), code=exc.error_code, unknown_scopes=exc.names,
                           audit={"reason": "unknown_hub_scope"}) from None

    def _prepare_jwt(self, token: str) -> None:
        """What `JupyterHandler.prepare` does, with a DirEng JWT as the identity."""
        try:
            from jupyter_server.base.call_context import CallContext

            CallContext.set(CallContext.JUPYTER_HANDLER, self)
        except ImportError:  # older jupyter_server
            pass
        self.current_user = self._jupyter_current_user = None
        if not self.check_host():
            raise ApiError(403, "Forbidden", audit={"reason": "host_not_allowed"})
        user = self.settings.get("direng_token_user") or current_username()
        try:
            claims = verify(token, audience=AUDIENCE, user=user, keys_dir=self.settings.get("direng_keys_dir"))
        except InvalidToken as exc:
            # what failed verification is not evidence of anything but its key id: no claims recorded
            header = decode_unverified(token)[0] or {}
            kid = header.get("kid") if isinstance(header.get("kid"), str) and _KID.fullmatch(header["kid"]) else None
            raise ApiError(401, str(exc), code=exc.error_code, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                           audit={"reason": exc.code, **({"kid": kid} if kid else {})}) from None
        except DirEngError as exc:  # the keys directory is unreadable: not the caller's fault
            raise ApiError(503, f"cannot verify tokens: {exc}") from None
        from jupyter_server.auth import User

        self._direng_claims = claims
        self.current_user = self._jupyter_current_user = User(username=claims.subject)
        self.set_cors_headers()
        self._check_scope(claims.scopes)
        if not self.check_origin():
            raise HTTPError(404)

    def _check_scope(self, granted, hub: bool = False) -> None:
        method = self.request.method or ""
        if method == "OPTIONS":  # CORS preflight: no credentials involved
            return
        scope = self.required_scope()
        if scope is None:
            impl = getattr(type(self), method.lower(), None)
            if impl is None or impl is getattr(RequestHandler, method.lower(), None):
                raise ApiError(405, f"{method} is not supported here")  # not a refusal: nothing to grant
            raise ApiError(403, f"{method} {self.request.path} is not available to scoped tokens",
                           audit={"reason": "scope_unavailable"})
        if scope not in granted:
            hint = f" (JupyterHub scope {hub_scope(scope)})" if hub else ""
            raise ApiError(403, f"missing scope {scope!r}{hint}", code=InsufficientScope.error_code, missing_scope=scope,
                           headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
                           audit={"reason": "missing_scope", "scope": scope})

    def check_xsrf_cookie(self) -> None:
        """A request authenticated by a DirEng JWT in its Authorization header needs no XSRF check
        (browsers never add that header on their own, so it cannot be forged cross-site)."""
        if self._direng_claims is not None:
            return None
        return super().check_xsrf_cookie()

    def skip_check_origin(self) -> bool:
        if self._direng_claims is not None:
            return True  # like Jupyter's token header
        return super().skip_check_origin()

    # -- the engine ---------------------------------------------------------------
    @property
    def engine(self):
        engine = self.settings.get("direng_engine")
        if engine is None:
            reason = self.settings.get("direng_engine_error") or "the DirEng engine is not running"
            raise ApiError(503, reason)
        return engine

    @property
    def extension(self):
        """The `DirEngExtension` instance (ExtensionApp stores itself under its name)."""
        return self.settings.get("direng")

    async def run(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """Call a blocking engine function on the extension's pool, mapping engine errors."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.settings.get("direng_executor"),
                                              functools.partial(fn, *args, **kwargs))
        except DirEngError as exc:
            raise to_api_error(exc) from exc

    # -- input ----------------------------------------------------------------------
    def json_body(self) -> dict:
        """The request body as a JSON object: 413 past `max_body_bytes`, 400 if it is not JSON, not
        an object, or nested deeper than `MAX_JSON_DEPTH` (which would overflow the parser or
        whatever walks the result later)."""
        raw = self.request.body or b""
        limit = self.settings.get("direng_max_body_bytes") or MAX_BODY_BYTES
        if len(raw) > limit:
            raise ApiError(413, f"request body is larger than {limit} bytes")
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw, parse_constant=_no_constants)
        except RecursionError:
            raise ApiError(400, f"request body is nested too deeply (at most {MAX_JSON_DEPTH} levels)") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"request body is not valid JSON: {str(exc)[:200]}") from None
        if not isinstance(data, dict):
            raise ApiError(400, "request body must be a JSON object")
        if _too_deep(data, MAX_JSON_DEPTH):
            raise ApiError(400, f"request body is nested too deeply (at most {MAX_JSON_DEPTH} levels)")
        return data

    def str_arg(self, name: str, default: str | None = None, required: bool = False) -> str | None:
        value = self.get_query_argument(name, default)
        if required and (value is None or not value.strip()):
            raise ApiError(400, f"missing query parameter {name!r}")
        return value

    def int_arg(self, name: str, default: int, low: int | None = None, high: int | None = None) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(400, f"query parameter {name!r} must be an integer, got {raw[:40]!r}") from None
        low, high = _INT64[0] if low is None else low, _INT64[1] if high is None else high
        if not low <= value <= high:
            raise ApiError(400, f"query parameter {name!r} must be between {low} and {high}, got {raw[:40]}")
        return value

    def choice_arg(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get_query_argument(name, default) or default
        if value not in choices:
            raise ApiError(400, f"query parameter {name!r} must be one of {', '.join(choices)}; got {value[:40]!r}")
        return value

    def bool_arg(self, name: str, default: bool = False) -> bool:
        raw = (self.get_query_argument(name, "") or "").strip().lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise ApiError(400, f"query parameter {name!r} must be 0 or 1, got {raw[:40]!r}")

    # -- output ---------------------------------------------------------------------
    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(jsonable(data)))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors are `{"status", "message"}` JSON; never a traceback or an HTML page."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        extra: dict = {}
        code = http_code(status_code)
        if isinstance(exc, ApiError):
            message, extra, code = exc.message, exc.extra, exc.code
        elif isinstance(exc, HTTPError):
            message = exc.log_message % exc.args if exc.log_message and exc.args else exc.log_message
            message = message or exc.reason or self._reason
        elif exc is not None:  # tornado already logged the traceback (log_exception): one line only here
            first = (str(exc).strip().splitlines() or [""])[0][:_MAX_MESSAGE]
            message = f"internal error: {type(exc).__name__}" + (f": {first}" if first else "")
        else:
            message = self._reason
        if isinstance(exc, ApiError):
            for name, value in exc.headers.items():
                self.set_header(name, value)
        if status_code in (401, 403):
            self._audit_refusal(status_code, exc)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status_code, "code": code, "message": message or "error", **extra}))

    def _audit_refusal(self, status: int, exc: BaseException | None) -> None:
        """Write a 401/403 to the audit log, at most once per (client, reason) per window (the
        `audit_refusal_window` traitlet; the count held back rides on the next record). Never token
        material: no token, no signature; for a token that failed verification only the reason
        and its key id; `jti`/`kid`/subject only from claims whose signature verified. Refusing
        never depends on the log: a failing write is logged and the reply goes out."""
        info = dict(getattr(exc, "audit", None) or {})
        claims = self._direng_claims
        user = getattr(self, "_current_user", None)  # what prepare established; None = nobody
        if "reason" not in info:  # refused by Jupyter's own login or checks
            info["reason"] = self._jupyter_refusal_reason(exc, user)
        if claims is not None:
            info.update(jti=claims.jti, kid=claims.kid)
        event = "auth.denied" if claims is not None or user else "auth.failed"
        actor = claims.subject if claims is not None else getattr(user, "username", None) or "anonymous"
        client = self.request.remote_ip or "unknown"
        limit = self.settings.get("direng_audit_limit") or _FALLBACK_LIMIT
        try:
            audit.record_limited(limit, (client, event, info["reason"], info.get("scope")), event, actor=actor,
                                 status=status, client=client, method=self.request.method,
                                 path=self.request.path[:200], **info)
        except Exception as err:  # noqa: BLE001 — the refusal stands either way
            log.warning("DirEng: cannot audit a %d refusal: %s", status, err)

    def _jupyter_refusal_reason(self, exc, user) -> str:
        if "xsrf" in str(getattr(exc, "log_message", "") or "").lower():
            return "xsrf"
        if user:
            return "forbidden"
        presented = (self.request.headers.get("Authorization") or "token" in self.request.query_arguments
                     or any(name.startswith("username-") for name in self.request.cookies))
        return "bad_credentials" if presented else "no_credentials"


class NotFoundHandler(DirEngHandler):
    """Any other path under /direng/api (or a route's path with a parameter that does not match):
    a JSON 404 for every method, instead of Jupyter's HTML page (or its XSRF 403 for POSTs)."""

    public = True

    def check_xsrf_cookie(self) -> None:
        return None  # it does nothing but answer 404: nothing to forge

    async def prepare(self) -> None:  # type: ignore[override]
        raise ApiError(404, f"no such endpoint: {self.request.method} {self.request.path[:200]}")
