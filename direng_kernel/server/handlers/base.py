"""What every DirEng handler shares: Jupyter auth, JSON in and out, errors as JSON.

Handlers derive from jupyter_server's `APIHandler`, so the server's own identity provider
(token header, cookie, XSRF for browser POSTs) guards them and an unauthenticated call is a
403 JSON reply, never a login redirect. Blocking engine calls run on the extension's thread
pool (`run`), never on the event loop. Every error reply has the shape
`{"status": code, "message": "one line", ...extra}`:

    NotIndexedError      → 409          UnknownSymbolError → 404 (+ "suggestions")
    other DirEngError    → 400          bad query/body     → 400
    engine unavailable   → 503          anything else      → 500 (traceback logged, not sent)
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any, Callable

from jupyter_server.base.handlers import APIHandler
from tornado.web import HTTPError

from ...errors import DirEngError, NotFoundError, NotIndexedError, UnknownSymbolError


class ApiError(HTTPError):
    """An HTTP error whose reply carries `message` and any `extra` fields."""

    def __init__(self, status: int, message: str, **extra: Any):
        super().__init__(status, "%s", message)
        self.message = message
        self.extra = extra


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
    """Base class of the DirEng API handlers."""

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
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status_code, "message": message, **extra}))
