"""A real, throw-away JupyterHub for the tests and `benchmarks/hub_load.py`.

`jupyterhub` runs in a temp dir (sqlite database, cookie secret, pid files there) with the
PyPI `configurable-http-proxy` as its proxy, on free loopback ports. Its config loads the
documented example, `docs/deploy/jupyterhub_config.py`, and overrides only what a test must:
the ports and paths, `DummyAuthenticator` (any password), `SimpleLocalProcessSpawner` (every
user's server a local process with `HOME=<work>/home/<user>`, `--allow-root` as root), and a
service `tester` whose token creates users, their tokens and servers through the Hub's REST
API. Each user's server indexes `~/repo` (a folder the caller fills) into its own store.

Nothing here depends on pytest: failures are `HubError`s carrying the Hub's log tail.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_CONFIG = REPO / "docs" / "deploy" / "jupyterhub_config.py"
BIN = Path(sys.executable).parent
TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class HubError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    """`jupyterhub` on loopback ports in `work`; `url` is the proxy's public URL."""

    def __init__(self, work: Path, *, server_env: dict[str, str] | None = None,
                 server_args: tuple[str, ...] = (), extra_config: str = ""):
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.port, hub_port, api_port = free_port(), free_port(), free_port()
        self._hub_api = f"http://127.0.0.1:{hub_port}"
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token = secrets.token_hex(16)
        self.log_path = self.work / "jupyterhub.log"
        args = [*(["--allow-root"] if os.getuid() == 0 else []), *server_args]
        config = f"""
load_subconfig({str(EXAMPLE_CONFIG)!r})
c.JupyterHub.bind_url = "{self.url}"
c.JupyterHub.hub_bind_url = "{self._hub_api}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.pid_file = {str(self.work / "proxy.pid")!r}
c.JupyterHub.db_url = "sqlite:///{self.work / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = {str(self.work / "cookie_secret")!r}
c.JupyterHub.pid_file = {str(self.work / "jupyterhub.pid")!r}
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {str(self.work / "home" / "{username}")!r}
c.Spawner.notebook_dir = "~/repo"
c.Spawner.args = [*c.Spawner.args, *{args!r}]
c.Spawner.environment = {dict(server_env or {})!r}
c.Spawner.start_timeout = 120
c.JupyterHub.services = [{{"name": "tester", "api_token": {self.admin_token!r}}}]
c.JupyterHub.load_roles = [*c.JupyterHub.load_roles, {{
    "name": "tester", "services": ["tester"],
    "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "read:users"]}}]
{extra_config}
"""
        self.config_path = self.work / "jupyterhub_config.py"
        self.config_path.write_text(config)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DIRENG_", "JUPYTERHUB_", "CONFIGPROXY_"))}
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', os.defpath)}"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([str(BIN / "jupyterhub"), "-f", str(self.config_path)], cwd=self.work, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.client = httpx.Client(timeout=TIMEOUT)

    # -- plumbing -------------------------------------------------------------------------------
    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def fail(self, message: str) -> HubError:
        return HubError(f"{message}\n--- jupyterhub log ---\n{self.log_tail()}")

    def api(self, method: str, path: str, body=None, expect: tuple[int, ...] = (200, 201, 202, 204)) -> dict:
        """The Hub's REST API (`/hub/api/...`) as the `tester` service."""
        reply = self.client.request(method, f"{self.url}/hub/api/{path.lstrip('/')}", json=body,
                                    headers={"Authorization": f"token {self.admin_token}"})
        if reply.status_code not in expect:
            raise self.fail(f"{method} /hub/api/{path} → {reply.status_code}: {reply.text[:300]}")
        return reply.json() if reply.content else {}

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise self.fail(f"jupyterhub exited with {self.proc.returncode}")
            try:
                if self.client.get(f"{self.url}/hub/api/", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise self.fail(f"the Hub did not answer within {timeout:.0f}s")

    # -- users, tokens, servers -------------------------------------------------------------------
    def home(self, user: str) -> Path:
        return self.work / "home" / user

    def add_user(self, user: str) -> None:
        """Create `user` (a user some role of the config names exists already: 409)."""
        self.api("POST", f"users/{user}", expect=(201, 409))

    def token(self, user: str, scopes: list[str], note: str = "test") -> str:
        """A new API token of `user` with exactly `scopes` (they must be the user's to give)."""
        return self.api("POST", f"users/{user}/tokens", {"scopes": scopes, "note": note}, expect=(201,))["token"]

    def start(self, user: str, timeout: float = 120) -> None:
        self.api("POST", f"users/{user}/server", expect=(201, 202))
        self.wait_server(user, ready=True, timeout=timeout)

    def stop(self, user: str, timeout: float = 60) -> None:
        self.api("DELETE", f"users/{user}/server", expect=(202, 204))
        self.wait_server(user, ready=False, timeout=timeout)

    def wait_server(self, user: str, ready: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise self.fail(f"jupyterhub exited with {self.proc.returncode}")
            servers = self.api("GET", f"users/{user}")["servers"]
            server = servers.get("")
            if ready and server and server.get("ready"):
                return
            if not ready and not server:
                return
            time.sleep(0.25)
        raise self.fail(f"{user}'s server did not {'start' if ready else 'stop'} within {timeout:.0f}s")

    # -- DirEng on a user's server, through the proxy --------------------------------------------------
    def direng_url(self, user: str, path: str = "") -> str:
        return f"{self.url}/user/{user}/direng/api/{path.lstrip('/')}"

    def call(self, user: str, method: str, path: str, token: str | None, body=None, scheme: str = "token",
             timeout: float = 60) -> tuple[int, dict]:
        """(status, JSON reply) of a DirEng endpoint on `user`'s server; `token` is sent as
        `Authorization: <scheme> <token>`, none at all when None."""
        headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
        reply = self.client.request(method, self.direng_url(user, path), json=body, headers=headers, timeout=timeout)
        try:
            return reply.status_code, reply.json()
        except ValueError:
            raise self.fail(f"{method} {path} on {user}'s server → {reply.status_code}, not JSON: "
                            f"{reply.text[:300]!r}") from None

    def wait_indexed(self, user: str, token: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        last: tuple[int, dict] = (0, {})
        while time.monotonic() < deadline:
            try:
                last = self.call(user, "GET", "health", token, timeout=10)
            except httpx.HTTPError:
                last = (0, {})
            if last[0] == 200 and last[1].get("indexed"):
                return last[1]
            time.sleep(0.3)
        raise self.fail(f"{user}'s DirEng did not report an index within {timeout:.0f}s (last: {last})")

    # -- shutting down ------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the Hub (which stops the users' servers and the proxy), then anything left."""
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        for pid in [self.proc.pid, *self._spawned()]:  # nothing of this Hub outlives it
            try:
                os.killpg(pid, signal.SIGKILL) if pid == self.proc.pid else os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.proc.wait(10)
        self._log.close()

    def _spawned(self) -> list[int]:
        """Processes this Hub started outside its own session: users' servers and their kernels and
        lanes, which all inherit the Hub's API URL (a free port of this Hub's own) in their environment."""
        mark = f"JUPYTERHUB_API_URL={self._hub_api}/".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if mark in (entry / "environ").read_bytes():
                        found.append(int(entry.name))
                except OSError:
                    pass
        return found

    def __enter__(self) -> "Hub":
        try:
            self.wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

