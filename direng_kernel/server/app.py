"""`DirEngExtension`: the Jupyter server hosts one DirEng engine and serves it at `/direng/api`.

Lifecycle, in jupyter_server 2.x order:

1. link (`ServerApp.init_server_extensions`): traitlets are read from the server's config and
   command line (`--DirEngExtension.watch=False`, ...).
2. load → `initialize_settings`: build the `Engine` on `root` (default: the server's
   `root_dir`) and start its refresh daemon, whose first pass builds or refreshes the index;
   `initialize_handlers`: register the API. A failing engine (bad root, ...) does not stop
   the server: the API answers 503 with the reason. A bad policy file does not even do that:
   the engine runs on the default policy and `health` reports the file's errors. The engine
   also answers one-shot `direng` commands on the store's unix socket (`daemon_socket.py`).
3. `ServerApp.init_httpserver` picks the final port (it may move with port retries or
   `port=0`), *after* extensions load; so the kernel environment is exported in
   `_start_jupyter_server_extension`, which `ServerApp._post_start` awaits once the event loop
   runs and before any request (hence any kernel) can be served. `DIRENG_SERVER_URL`,
   `DIRENG_TOKEN` and `DIRENG_ROOT` land in `os.environ`, which kernels inherit, so
   `direng_kernel.client.connect()` in a kernel talks to this server with no user setup.
   `DIRENG_TOKEN` is not the server's token but a short-lived RS256 JWT (`kernel_token_ttl`,
   12 h) for the server's OS user with `KERNEL_SCOPES` only (no policy changes, no replay, no
   secrets), signed with the keys in `keys_dir`; it is re-minted periodically so that every new
   kernel gets a fresh one (see docs/security-tokens.md).
4. `stop_extension` (server shutdown): stop the daemon and the socket, drop the thread pool.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Bool, Float, Integer, Unicode, default

from .._version import __version__
from .handlers import API_PREFIX, routes

API_PATH = "direng/api"
WILDCARD_HOSTS = {"", "0.0.0.0", "::", "*"}
KERNEL_ENV_NAMES = ("DIRENG_SERVER_URL", "DIRENG_TOKEN", "DIRENG_ROOT")


def kernel_api_url(serverapp) -> str | None:
    """The API's URL as a local kernel should use it (loopback for wildcard binds); None on a unix socket."""
    if getattr(serverapp, "sock", ""):
        return None
    url = serverapp.connection_url  # valid once the port is final (after init_httpserver)
    if serverapp.ip in WILDCARD_HOSTS:
        parts = urlsplit(url)
        url = urlunsplit(parts._replace(netloc=f"127.0.0.1:{serverapp.port}"))
    return url_path_join(url, API_PATH)


class DirEngExtension(ExtensionApp):
    """Jupyter server extension hosting the DirEng engine (index, refresh daemon, DirEng, broker)."""

    name = "direng"
    description = "DirEng Workbench: a code index, its refresh daemon and DirEng behind /direng/api"
    version = __version__
    load_other_extensions = True

    root = Unicode(
        "", config=True,
        help="Directory to index and answer questions about (default: the server's root_dir).")
    store = Unicode(
        None, allow_none=True, config=True,
        help="Index store directory (default: ROOT/.direng, or $DIRENG_STORE).")
    policy_file = Unicode(
        None, allow_none=True, config=True,
        help="Broker policy JSON file (default: the embedded default policy). An invalid file is "
             "reported at /direng/api/health and the default policy is used.")
    watch = Bool(
        True, config=True,
        help="Run the refresh daemon: index changes (file saves, commits, checkouts) within seconds.")
    index_on_start = Bool(
        True, config=True,
        help="Build or refresh the index when the server starts (the daemon's first pass, or a one-off "
             "background refresh without watch). When False and there is no index yet, indexing and "
             "the daemon wait for POST /direng/api/index/refresh.")
    workers = Integer(
        4, config=True, help="Threads that run blocking engine calls off the event loop.")
    keys_dir = Unicode(
        config=True,
        help="Directory of the RS256 key pairs that sign DirEng tokens (default: $DIRENG_KEYS_DIR, else "
             "JUPYTER_DATA_DIR/direng/keys). Created on first use; the private key is mode 0600.")
    kernel_token_ttl = Integer(
        12 * 3600, config=True,
        help="Lifetime (seconds) of the DIRENG_TOKEN JWT minted for kernels (KERNEL_SCOPES). It is re-minted "
             "every ttl/4 (at most hourly), so a new kernel always gets a fresh token; a kernel that runs longer "
             "than this must be restarted to call the API again.")

    max_body_bytes = Integer(
        8 * 1024 * 1024, config=True,
        help="Largest JSON request body (bytes) the API parses; bigger ones are 413s.")
    stream_keepalive_seconds = Float(
        15.0, config=True,
        help="A streamed reply (chat answers, task events) writes a keep-alive comment after this many "
             "seconds without an event, so proxies keep the connection open.")
    stream_max_seconds = Float(
        300.0, config=True,
        help="A task event stream ends after this many seconds; clients reconnect after the last event id "
             "they saw, so nothing is lost. Bounds how long idle connections are held.")
    audit_refusal_window = Float(
        60.0, config=True,
        help="Refusals (401/403) are audited at most once per client address and reason in this many seconds; "
             "the next record counts the ones held back (`suppressed`). 0 records every refusal.")

    @default("keys_dir")
    def _default_keys_dir(self) -> str:
        from ..security.keys import default_keys_dir

        return str(default_keys_dir())

    # -- loading ----------------------------------------------------------------------------------
    run_tasks = Bool(True, config=True, help="Run delegated tasks (PAS workers) in this server.")
    pex_db = Unicode(
        "", config=True,
        help="SQLAlchemy URL of PEX's task store, e.g. postgresql+psycopg://user@host/db, so several servers "
             "drain one queue (sets $DIRENG_PEX_DB; default: the store's SQLite file). See docs/deploy.md.")
    pex_schema = Unicode(
        "", config=True,
        help="Schema of this store's tables in pex_db: servers sharing a queue set the same one (sets "
             "$DIRENG_PEX_SCHEMA; default: one derived from the store directory).")

    vectors = Unicode(
        "", config=True,
        help="A chroma server for the MiniLM vectors, http://HOST:PORT, shared by every process of the store "
             "(sets $DIRENG_VECTORS; default: the store's own chroma/ folder). See docs/deploy.md.")
    pas_executor = Unicode(
        "", config=True,
        help="Where PAS runs lane notebooks: 'local' (papermill on this host) or dask://HOST:PORT, a Dask "
             "scheduler whose workers run them (sets $DIRENG_EXECUTOR; default: local). See docs/deploy.md, "
             "'Lanes on Dask'.")

    def initialize_settings(self):
        from ..config import offline_env
        from ..security.scrub import RedactingFilter

        offline_env()
        for handler in [*self.log.handlers, *self.serverapp.log.handlers]:  # no secret reaches a server log
            handler.addFilter(RedactingFilter())
        from ..security.tokens import current_username

        self.settings["direng_keys_dir"] = str(Path(self.keys_dir).expanduser())
        self.settings["direng_token_user"] = current_username()  # kernel tokens' subject; tokens must match
        from ..security.audit import RateLimit

        self.settings["direng_audit_limit"] = RateLimit(self.audit_refusal_window)
        self.settings["direng_max_body_bytes"] = self.max_body_bytes
        self.settings["direng_stream_keepalive_s"] = self.stream_keepalive_seconds
        self.settings["direng_stream_max_s"] = self.stream_max_seconds
        from ..mcp.http import HttpMcp  # no MCP SDK module loads until the first MCP request

        self.settings["direng_mcp"] = HttpMcp(max_body_bytes=self.max_body_bytes)
        self._token_refresher = None
        self.engine = None
        self._executor = ThreadPoolExecutor(max(1, self.workers), thread_name_prefix="direng-api")
        self.settings["direng_executor"] = self._executor
        root = Path(self.root or self.serverapp.root_dir).expanduser().resolve()
        os.environ["DIRENG_ROOT"] = str(root)
        # the engine (and the CLI processes and lanes this server starts) read PEX's store from the environment
        for name, value in (("DIRENG_PEX_DB", self.pex_db), ("DIRENG_PEX_SCHEMA", self.pex_schema),
                            ("DIRENG_VECTORS", self.vectors), ("DIRENG_EXECUTOR", self.pas_executor)):
            if value:
                os.environ[name] = value
        try:
            from ..engine import Engine

            engine = Engine(root, store=self.store or None, policy_path=self.policy_file or None, watch=self.watch)
        except Exception as exc:  # noqa: BLE001 — the server must come up; the API reports why
            self.log.exception("DirEng: the engine failed to start on %s", root)
            self.settings["direng_engine"] = None
            self.settings["direng_engine_error"] = f"DirEng engine failed to start: {type(exc).__name__}: {exc}"
            return
        self.engine = engine
        self.settings["direng_engine"] = engine
        for error in engine.policy_errors:
            self.log.error("DirEng: policy %s is invalid (using the default policy): %s", self.policy_file, error)
        self._start_indexing()
        # One-shot `direng` commands on this store ask this engine (warm index and models) over
        # the store's unix socket rather than loading everything themselves.
        engine.serve_socket()
        # an unreachable vector server is one line now, not a surprise at the first search
        self._executor.submit(self._check_vectors)
        self.log.info("DirEng: serving %s (store %s, watch=%s)", root, engine.workbench.settings.store, self.watch)

    def _check_vectors(self) -> None:
        from ..index.vector_location import CONNECT_TIMEOUT_S

        info = self.engine.vectors_health(CONNECT_TIMEOUT_S)  # at start-up a slow answer is no failure
        if not info["ok"]:
            self.log.error("DirEng: MiniLM vectors unavailable: %s", info["error"])

    def _start_indexing(self) -> None:
        engine = self.engine
        if self.watch and (self.index_on_start or engine.workbench.is_indexed):
            engine.start()  # the daemon's first pass builds or refreshes the index
        elif self.watch:
            self.log.info("DirEng: no index yet and index_on_start=False: the refresh daemon waits for "
                          "POST /direng/api/index/refresh")
        elif self.index_on_start:
            self._executor.submit(self._refresh_once)

    def _refresh_once(self) -> None:
        try:
            report = self.engine.index()
            self.log.info("DirEng: indexed %s (+%d ~%d -%d files)", report.root, report.added, report.modified,
                          report.deleted)
        except Exception:  # noqa: BLE001
            self.log.exception("DirEng: the initial index failed")

    def index_ready(self) -> None:
        """Called after an explicit refresh: start a daemon that waited for the first index."""
        if self.watch and self.engine is not None:
            self.engine.start()  # idempotent

    def initialize_handlers(self):
        from .handlers import mcp
        from .handlers.base import NotFoundHandler

        # /direng/mcp (MCP over Streamable HTTP, docs/mcp.md) sits beside the REST API, not in it;
        # last: the rest of /direng/api is a JSON 404, not Jupyter's HTML page
        self.handlers.extend([*routes(), *mcp.ROUTES, (API_PREFIX + r"/.*", NotFoundHandler)])

    # -- running ----------------------------------------------------------------------------------
    async def _start_jupyter_server_extension(self, serverapp):
        """Export the kernel environment now that the server's port and token are final, and start
        the PAS workers that run delegated tasks for this server's store."""
        # minting may generate the first RSA key pair: off the event loop (still before any request)
        await asyncio.get_running_loop().run_in_executor(None, self.export_kernel_env, serverapp)
        self._start_token_refresher()
        if self.engine is not None and self.run_tasks:
            from ..errors import DirEngError

            url = os.environ.get("DIRENG_SERVER_URL")
            try:
                await asyncio.get_running_loop().run_in_executor(None, self.engine.start_workers, url)
            except DirEngError as exc:  # e.g. PEX's database unreachable: one line; /health says it too
                self.log.error("DirEng: PAS workers not started: %s", exc)

    def export_kernel_env(self, serverapp) -> None:
        url = kernel_api_url(serverapp)
        if url is None:
            os.environ.pop("DIRENG_SERVER_URL", None)
            self.log.warning("DirEng: the server listens on a unix socket; kernels will use an in-process engine")
        else:
            os.environ["DIRENG_SERVER_URL"] = url
        self._export_kernel_token()
        self.log.info("DirEng: kernels will reach the API at %s", url)

    def _export_kernel_token(self) -> None:
        """`DIRENG_TOKEN` = a fresh kernel JWT (KERNEL_SCOPES) for the server's user; kernels launched
        from now on inherit it. Without one (keys dir unwritable, ...) kernels cannot call the API."""
        from ..security.tokens import mint_kernel_token

        try:
            token = mint_kernel_token(self.settings.get("direng_token_user"), ttl_s=self.kernel_token_ttl,
                                      keys_dir=self.settings.get("direng_keys_dir"))
        except Exception as exc:  # noqa: BLE001 — the server must come up
            self.log.error("DirEng: cannot mint the kernels' token, kernels will not reach the API: %s", exc)
            os.environ.pop("DIRENG_TOKEN", None)
            return
        os.environ["DIRENG_TOKEN"] = token

    def _start_token_refresher(self) -> None:
        from tornado.ioloop import PeriodicCallback

        interval_s = max(60, min(3600, self.kernel_token_ttl // 4))
        self._token_refresher = PeriodicCallback(self._export_kernel_token, interval_s * 1000)
        self._token_refresher.start()

    async def stop_extension(self):
        refresher, self._token_refresher = getattr(self, "_token_refresher", None), None
        if refresher is not None:
            refresher.stop()
        mcp_app = self.settings.get("direng_mcp")
        for settings in (self.settings, self.serverapp.web_app.settings):
            settings.pop("direng_mcp", None)  # MCP requests from now on are 503s
        if mcp_app is not None:
            await mcp_app.aclose()
        engine, self.engine = getattr(self, "engine", None), None
        for settings in (self.settings, self.serverapp.web_app.settings):
            settings["direng_engine"] = None
            settings["direng_engine_error"] = "the DirEng engine is shutting down"
        if engine is not None:
            await asyncio.get_running_loop().run_in_executor(None, engine.stop)
        executor = getattr(self, "_executor", None)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        for name in ("DIRENG_SERVER_URL", "DIRENG_TOKEN"):
            os.environ.pop(name, None)
        self.log.info("DirEng: stopped")
