"""Where PEX's task store lives: a SQLAlchemy URL and, on a shared server, a schema of its own.

SQLite is the default: `<store>/pex.sqlite3`, so the store directory keeps stores apart. A
team points `DIRENG_PEX_DB` at a PostgreSQL database (`postgresql+psycopg://user@host/db`) so
that several servers drain one queue. Many stores may share that database: each keeps its
tables in a schema of its own, `DIRENG_PEX_SCHEMA` when set (servers that share a queue set the
same one), else `pex_` + a hash of the store directory — so two projects, or two users, never
see each other's tasks by accident; sharing is always explicit.

Connections never wait forever: a connect timeout (5 s unless the URL sets `connect_timeout`),
a lock timeout and an idle-in-transaction timeout on the server, so an unreachable or stuck
database is one clear `PexDatabaseError` instead of a hang. This module holds no SQL; the
store (`pex/store.py`) does.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from ..errors import DirEngError

DB_ENV = "DIRENG_PEX_DB"
SCHEMA_ENV = "DIRENG_PEX_SCHEMA"
DB_NAME = "pex.sqlite3"
CONNECT_TIMEOUT_S = 5
#: Server-side limits on a PostgreSQL session: a lock wait, or a transaction left open by a
#: stopped process, ends in an error rather than stalling every other worker.
PG_OPTIONS = "-c lock_timeout=30000 -c idle_in_transaction_session_timeout=60000"
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PexDatabaseError(DirEngError):
    """PEX's database is unreachable, refused us, or is configured wrongly."""

    error_code = "pex_db_unavailable"


@dataclass(frozen=True)
class Location:
    """A task store's database URL and, outside SQLite, the schema holding its tables."""

    url: str
    schema: str | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    def describe(self) -> str:
        """The URL without its password, and the schema: safe for logs, errors and `health`."""
        shown = sa.engine.make_url(self.url).render_as_string(hide_password=True)
        return f"{shown} (schema {self.schema})" if self.schema else shown


def locate(store_dir: Path) -> Location:
    """The store of `store_dir`: `DIRENG_PEX_DB` (and its schema) when set, else the SQLite file."""
    url = os.environ.get(DB_ENV, "").strip()
    if not url or url.startswith("sqlite"):
        return Location(url or f"sqlite:///{Path(store_dir) / DB_NAME}")
    return Location(url, schema_for(store_dir))


def schema_for(store_dir: Path) -> str:
    """`DIRENG_PEX_SCHEMA` (checked), else a name derived from the store directory."""
    name = os.environ.get(SCHEMA_ENV, "").strip()
    if not name:
        digest = hashlib.sha256(str(Path(store_dir).resolve()).encode()).hexdigest()[:16]
        return f"pex_{digest}"
    if not _SCHEMA.fullmatch(name):
        raise PexDatabaseError(f"{SCHEMA_ENV}={name!r} is not a schema name: use lower-case letters, "
                               "digits and _ (63 at most, not starting with a digit)")
    return name


def create_engine(location: Location) -> sa.Engine:
    """An engine for `location` with its time limits; a malformed URL or a missing driver is a
    PexDatabaseError naming `DIRENG_PEX_DB`."""
    try:
        url = sa.engine.make_url(location.url)
    except sa.exc.ArgumentError as exc:
        raise PexDatabaseError(f"{DB_ENV} is not a database URL: {exc}") from None
    kwargs: dict = {"future": True}
    if url.get_backend_name() == "postgresql":
        connect_args: dict = {}
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        if "options" not in url.query:
            connect_args["options"] = PG_OPTIONS
        kwargs.update(connect_args=connect_args, pool_pre_ping=True)  # a restarted server costs no error
    elif url.get_backend_name() != "sqlite":
        raise PexDatabaseError(f"{DB_ENV}: PEX runs on SQLite or PostgreSQL, not {url.get_backend_name()!r} "
                               f"({location.describe()})")
    try:
        engine = sa.create_engine(url, **kwargs)
    except (ImportError, sa.exc.NoSuchModuleError) as exc:
        raise PexDatabaseError(f"{DB_ENV}: no driver for {location.describe()}: {exc} "
                               "(install psycopg: pip install 'direng-workbench[postgres]')") from None
    if location.schema:  # every table of the store lives in its schema
        engine = engine.execution_options(schema_translate_map={None: location.schema})
    return engine


def unreachable(location: Location, exc: BaseException) -> PexDatabaseError:
    """The one-line error for a database that failed us: where, and the driver's first line."""
    cause = getattr(exc, "orig", None) or exc
    first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    return PexDatabaseError(f"PEX database {location.describe()} is unavailable: {first} "
                            f"(set {DB_ENV}, or unset it for the store's SQLite file)")
