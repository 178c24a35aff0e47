"""Upgrade a database to the newest schema in place, one version per step, one migrator at a time."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import StoreError
from . import schema


def _v1(conn: Connection) -> None:
    """Subscribers, subscriptions, issues and deliveries."""
    schema.v1.create_all(conn, tables=[t for t in schema.v1.sorted_tables if t is not schema.schema_version])


def _adding(version: int) -> Callable[[Connection], None]:
    def step(conn: Connection) -> None:
        for table, column, kind in schema.ADDED[version]:
            conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} {kind.compile(dialect=conn.dialect)}"))

    step.__doc__ = f"Version {version}: add {', '.join(f'{t}.{c}' for t, c, _ in schema.ADDED[version])}."
    return step


def _v4(conn: Connection) -> None:
    """Feeds: the validators each news feed sent last."""
    schema.v4.create_all(conn)


def _v6(conn: Connection) -> None:
    """Issues as full snapshots, with the state of their life. Issues stored before this
    version get the state their timestamps and deliveries say; their sender, List-Id and
    language stay empty and are taken from the config when such an issue is resumed."""
    _adding(6)(conn)
    conn.execute(sa.text(
        "UPDATE issues SET state = CASE"
        " WHEN finished_at IS NOT NULL AND EXISTS (SELECT 1 FROM deliveries d"
        "   WHERE d.issue_id = issues.id AND d.status = 'failed') THEN 'done_with_failures'"
        " WHEN finished_at IS NOT NULL THEN 'done'"
        " WHEN queued_at IS NOT NULL AND EXISTS (SELECT 1 FROM deliveries d"
        "   WHERE d.issue_id = issues.id AND (d.attempts > 0 OR d.status IN ('sent', 'failed'))) THEN 'sending'"
        " WHEN queued_at IS NOT NULL THEN 'queued'"
        " ELSE 'stored' END"
    ))


def _v7(conn: Connection) -> None:
    """Deliveries remember their first try (those tried before take their last update)."""
    _adding(7)(conn)
    conn.execute(sa.text("UPDATE deliveries SET first_attempt_at = updated_at WHERE attempts > 0"))


def _v8(conn: Connection) -> None:
    """Events (each subscriber's history) and returns (every message that came back)."""
    schema.v8.create_all(conn)


def _v10(conn: Connection) -> None:
    """TLP: readers' clearance, the clearance each delivery was queued for, an issue's copies."""
    _adding(10)(conn)
    schema.v10.create_all(conn)


MIGRATIONS: tuple[Callable[[Connection], None], ...] = (
    _v1, _adding(2), _adding(3), _v4, _adding(5), _v6, _v7, _v8, _adding(9), _v10, _adding(11), _adding(12),
)
SCHEMA_VERSION = len(MIGRATIONS)


def version(conn: Connection) -> int:
    """The schema version of the database behind `conn` (0: no schema yet)."""
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    return int(conn.execute(sa.select(sa.func.max(schema.schema_version.c.version))).scalar() or 0)


def migrate(engine: Engine, target: int = SCHEMA_VERSION) -> int:
    """Upgrade the database to `target`; return the version it was at."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # One migrator at a time; the lock ends with the transaction.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7302022)"))
        elif engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        found = version(conn)
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"the database is at schema version {found}, newer than this program knows "
                f"({SCHEMA_VERSION}): upgrade threat-brief-newsletter"
            )
        if found == 0:
            schema.schema_version.create(conn, checkfirst=True)
        for number in range(found + 1, target + 1):
            MIGRATIONS[number - 1](conn)
            conn.execute(schema.schema_version.insert().values(version=number))
    return found
