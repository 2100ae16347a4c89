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
* Jupyter's own login (server token, cookie + XSRF for browser POSTs): every scope, unless a
  JupyterHub token carries `custom:direng:*` scopes (then exactly those). An unauthenticated
  call is a 403 JSON reply, never a login redirect.

Blocking engine calls run on the extension's thread pool (`run`), never on the event loop.
Every error reply has the shape `{"status": code, "message": "one line", ...extra}`:

    NotIndexedError      → 409          UnknownSymbolError → 404 (+ "suggestions")
    other DirEngError    → 400          bad query/body     → 400
    engine unavailable   → 503          anything else      → 500 (traceback logged, not sent)
    invalid JWT          → 401          JWT lacks the scope → 403 (+ "missing_scope")
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from typing import Any, Callable, ClassVar

from jupyter_server.base.handlers import APIHandler
from tornado.web import HTTPError

from ...errors import DirEngError, NotFoundError, NotIndexedError, UnknownSymbolError
from ...security.scopes import jupyter_user_scopes
from ...security.tokens import AUDIENCE, InvalidToken, current_username, looks_like_jwt, verify

#: `Authorization: Bearer <v>` / `token <v>` (scheme case-insensitive, as jupyter_server reads it)
_AUTH_HEADER = re.compile(r"(bearer|token)\s+(.*?)\s*", re.IGNORECASE)


class ApiError(HTTPError):
    """An HTTP error whose reply carries `message` and any `extra` fields (and `headers`)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(status, "%s", message)
        self.message = message
        self.extra = extra
        self.headers = dict(headers or {})


def to_api_error(exc: DirEngError) -> ApiError:
    """Map an engine error to its HTTP status."""
    if isinstance(exc, UnknownSymbolError):
        return ApiError(404, str(exc), suggestions=list(exc.suggestions))
    if isinstance(exc, NotIndexedError):
        return ApiError(409, str(exc))
    if isinstance(exc, NotFoundError):
        return ApiError(404, str(exc))
    return ApiError(400, str(exc))


def jsonable(value: Any) -> Any:
    """Pydantic models (and lists/dicts of them) to plain JSON data."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


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
            granted = jupyter_user_scopes(self.current_user)
            if granted is not None:  # a JupyterHub token that carries custom:direng:* scopes
                self._check_scope(granted)
            return
        self._prepare_jwt(token)

    def _prepare_jwt(self, token: str) -> None:
        """What `JupyterHandler.prepare` does, with a DirEng JWT as the identity."""
        try:
            from jupyter_server.base.call_context import CallContext

            CallContext.set(CallContext.JUPYTER_HANDLER, self)
        except ImportError:  # older jupyter_server
            pass
        self.current_user = self._jupyter_current_user = None
        if not self.check_host():
            raise HTTPError(403)
        user = self.settings.get("direng_token_user") or current_username()
        try:
            claims = verify(token, audience=AUDIENCE, user=user, keys_dir=self.settings.get("direng_keys_dir"))
        except InvalidToken as exc:
            raise ApiError(401, str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None
        except DirEngError as exc:  # the keys directory is unreadable: not the caller's fault
            raise ApiError(503, f"cannot verify tokens: {exc}") from None
        from jupyter_server.auth import User

        self._direng_claims = claims
        self.current_user = self._jupyter_current_user = User(username=claims.subject)
        self.set_cors_headers()
        self._check_scope(claims.scopes)
        if not self.check_origin():
            raise HTTPError(404)

    def _check_scope(self, granted) -> None:
        method = self.request.method or ""
        if method == "OPTIONS":  # CORS preflight: no credentials involved
            return
        scope = self.required_scope()
        if scope is None:
            raise ApiError(403, f"{method} {self.request.path} is not available to scoped tokens")
        if scope not in granted:
            raise ApiError(403, f"missing scope {scope!r}", missing_scope=scope,
                           headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'})

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
        """The request body as a JSON object (400 if it is not one)."""
        raw = self.request.body or b""
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"request body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ApiError(400, "request body must be a JSON object")
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
            raise ApiError(400, f"query parameter {name!r} must be an integer, got {raw!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise ApiError(400, f"query parameter {name!r} must be between {low} and {high}, got {value}")
        return value

    def choice_arg(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get_query_argument(name, default) or default
        if value not in choices:
            raise ApiError(400, f"query parameter {name!r} must be one of {', '.join(choices)}; got {value!r}")
        return value

    def bool_arg(self, name: str, default: bool = False) -> bool:
        raw = (self.get_query_argument(name, "") or "").strip().lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise ApiError(400, f"query parameter {name!r} must be 0 or 1, got {raw!r}")

    # -- output ---------------------------------------------------------------------
    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(jsonable(data)))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors are `{"status", "message"}` JSON; never a traceback or an HTML page."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        extra: dict = {}
        if isinstance(exc, ApiError):
            message, extra = exc.message, exc.extra
        elif isinstance(exc, HTTPError):
            message = exc.log_message % exc.args if exc.log_message and exc.args else exc.log_message
            message = message or exc.reason or self._reason
        elif exc is not None:  # tornado already logged the traceback (log_exception)
            first = (str(exc).strip().splitlines() or [""])[0]
            message = f"internal error: {type(exc).__name__}" + (f": {first}" if first else "")
        else:
            message = self._reason
        if isinstance(exc, ApiError):
            for name, value in exc.headers.items():
                self.set_header(name, value)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status_code, "message": message, **extra}))
