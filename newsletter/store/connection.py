"""One database behind every part of the store: its engines, opened and upgraded once."""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..errors import OutOfSpace, StoreError
from .migrations import migrate


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    _into_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable at checkpoints, never corrupt
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _into_wal(cursor: Any) -> None:
    """Switch the file to WAL once (the mode stays with the file). The switch needs a moment
    alone with a new file, and SQLite answers "locked" at once rather than waiting for
    another process opening it too, so it is tried again for a while."""
    deadline = time.monotonic() + 30
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _mark_options(url: str) -> dict[str, Any]:
    """On PostgreSQL the per-message marks commit without waiting for the disk flush.

    Waiting serializes every worker on the WAL flush (about 1,300 marks a second here, however
    many workers). Not waiting is safe against what the outbox guards against (a worker or a
    connection dying: the mark is committed and visible at once); only a crash of the
    PostgreSQL server itself can lose the last fraction of a second of marks, whose messages
    are then sent again. Queueing and claiming stay fully durable."""
    if url.startswith("postgresql"):
        return {"connect_args": {"options": "-c synchronous_commit=off"}}
    return {}


FULL = OutOfSpace(
    "the disk of the store is full: the last change was not written (nothing recorded is lost); "
    "make room and run again to go on"
)


def _is_full(error: BaseException, folder: str | None) -> bool:
    """Whether a database error means a full disk. SQLite says so, or only "disk I/O error"
    when the disk filled as it grew its WAL index; then the free space decides."""
    text = str(error)
    if "database or disk is full" in text or getattr(error, "sqlstate", None) == "53100":  # PostgreSQL disk_full
        return True
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if "disk I/O error" in text and folder:
        try:
            space = os.statvfs(folder)
        except OSError:
            return False
        return space.f_bavail * space.f_frsize < 1024 * 1024
    return False


def _full_disk_hook(folder: str | None) -> Any:
    def hook(context: sa.engine.ExceptionContext) -> None:
        """SQLAlchemy raises what this hook raises in place of its own error."""
        if _is_full(context.original_exception, folder):
            raise FULL from None

    return hook


def safe_url(url: str) -> str:
    """A database URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url.split("@")[-1]


class Database:
    """The engines of one database URL.

    `engine` runs ordinary transactions. `autocommit` is for the write made once per message:
    one statement in its own implicit transaction, on PostgreSQL one round trip instead of
    three (BEGIN, UPDATE, COMMIT); a pool of its own, so no connection switches modes back
    and forth (each switch costs round trips)."""

    def __init__(self, engine: Engine, autocommit: Engine | None = None, folder: str | None = None) -> None:
        self.engine = engine
        self.autocommit = autocommit or engine
        self.folder = folder  # an SQLite file's folder, whose free space tells a full disk

    def driver_error(self, error: BaseException) -> BaseException:
        """What a driver's own error means, for writes made past SQLAlchemy (the per-message
        mark): the disk is full, or the error itself."""
        return FULL if _is_full(error, self.folder) else error

    @property
    def postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @classmethod
    def open(cls, url: str, upgrade: bool = True) -> Database:
        if url.startswith("sqlite:///"):
            path = url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                try:
                    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                except OSError as exc:
                    raise StoreError(f"cannot create the folder of the database {path}: {exc.strerror}") from None
        try:
            engine = sa.create_engine(url)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise StoreError(f"cannot use the database {safe_url(url)}: {exc}") from None
        # Nothing to roll back on an autocommit connection: no reset when one goes back to the pool.
        autocommit = sa.create_engine(url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None, **_mark_options(url))
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            sa.event.listen(autocommit, "connect", _sqlite_pragmas)
        folder = (os.path.dirname(url.removeprefix("sqlite:///")) or ".") if url.startswith("sqlite:///") else None
        for each in (engine, autocommit):
            sa.event.listen(each, "handle_error", _full_disk_hook(folder))
        database = cls(engine, autocommit, folder)
        if upgrade:
            try:
                migrate(engine)
            except sa.exc.OperationalError as exc:
                if exc.orig is not None and _is_full(exc.orig, folder):
                    raise FULL from None
                raise StoreError(f"cannot open the database {safe_url(url)}: {exc.orig}") from None
        return database

    def close(self) -> None:
        self.engine.dispose()
        self.autocommit.dispose()
