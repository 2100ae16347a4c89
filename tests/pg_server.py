"""A real, throw-away PostgreSQL server for the tests: Debian's binaries, `initdb` + `pg_ctl`.

The cluster lives in a temp dir, listens on a free loopback port (and a socket in that dir)
and is stopped and removed at the end. PostgreSQL refuses to run as root, so as root the
binaries run as an unprivileged user (the `postgres` account Debian's package creates, else
`nobody`) that owns the temp dir. `make test` installs the package when it runs as root; where
the binaries are missing the tests skip, except under `CI=true` (or `DIRENG_REQUIRE_POSTGRES=1`),
where they fail.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

log = logging.getLogger(__name__)
REQUIRE_ENV = "DIRENG_REQUIRE_POSTGRES"


def postgres_required() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get(REQUIRE_ENV) == "1"


def bin_dir() -> Path | None:
    """The newest `/usr/lib/postgresql/<version>/bin` with initdb and pg_ctl (else one on PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def require_bin_dir() -> Path:
    """The binaries' folder; a failure where PostgreSQL is required, a skip elsewhere."""
    found = bin_dir()
    if found is None:
        message = "no PostgreSQL binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin or on PATH " \
                  "(make test installs Debian's postgresql as root)"
        if postgres_required():
            pytest.fail(message + f" (required: CI=true or {REQUIRE_ENV}=1)", pytrace=False)
        pytest.skip(message)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> dict:
    """subprocess arguments that drop root for PostgreSQL's binaries (nothing when not root)."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
            return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        except KeyError:
            continue
    pytest.fail("running as root and no unprivileged account (postgres, nobody) to run PostgreSQL as")


@contextmanager
def postgres_server(database: str = "direng") -> Iterator[str]:
    """Start a cluster, create `database`, yield its `postgresql+psycopg://` URL; stop it after."""
    binaries = require_bin_dir()
    drop = _run_as()
    base = Path(tempfile.mkdtemp(prefix="direng-pg-"))  # under /tmp: the dropped user can reach it
    data, sock, logfile = base / "data", base / "sock", base / "server.log"
    sock.mkdir()
    if drop:
        for path in (base, sock):
            os.chown(path, drop["user"], drop["group"])
    port = _free_port()
    run = dict(cwd=base, capture_output=True, text=True, timeout=120, **drop)
    try:
        done = subprocess.run([str(binaries / "initdb"), "-D", str(data), "-U", "direng", "--auth=trust",
                               "-E", "UTF8", "--no-sync", "--no-instructions"], **run)
        assert done.returncode == 0, f"initdb failed: {done.stdout}{done.stderr}"
        # fsync off: a test cluster trades durability for speed (it is deleted afterwards anyway)
        options = (f"-h 127.0.0.1 -p {port} -k {sock} -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=100")
        done = subprocess.run([str(binaries / "pg_ctl"), "-D", str(data), "-l", str(logfile), "-o", options,
                               "-w", "-t", "60", "start"], **run)
        assert done.returncode == 0, f"pg_ctl start failed: {done.stdout}{done.stderr}\n{_tail(logfile)}"
        try:
            import psycopg

            with psycopg.connect(host="127.0.0.1", port=port, user="direng", dbname="postgres",
                                 autocommit=True, connect_timeout=10) as conn:
                conn.execute(f'CREATE DATABASE "{database}"')
            log.info("PostgreSQL %s on 127.0.0.1:%d", binaries, port)
            yield f"postgresql+psycopg://direng@127.0.0.1:{port}/{database}"
        finally:
            subprocess.run([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "-t", "60",
                            "stop"], **run)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _tail(path: Path) -> str:
    try:
        return path.read_text()[-2000:]
    except OSError:
        return ""
