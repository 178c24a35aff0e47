"""Issues: one per digest and period, each a full snapshot, and the step of its life it is at.

The steps are compare-and-set updates (`... WHERE state = expected`), so two processes that
race over one issue agree on what happened: one of them moved it, the other sees it moved.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime

import sqlalchemy as sa

from ..inputs.marking import TLP_LEVELS

from .connection import Database
from .records import Copy, IssueState, Snapshot, StoredIssue, UNFINISHED, utcnow
from .schema import deliveries, issue_copies, issues

REPLACEABLE = (IssueState.STORED.value, IssueState.QUEUED.value)
OPEN = (IssueState.QUEUED.value, IssueState.SENDING.value)


def _row(row: sa.Row[tuple[object, ...]] | None) -> StoredIssue | None:
    return None if row is None else StoredIssue(**row._mapping)


def _columns(snapshot: Snapshot) -> dict[str, object]:
    values = asdict(snapshot)
    values["as_of"] = snapshot.as_of.astimezone(UTC).replace(tzinfo=None)
    values["items"] = json.dumps(list(values.pop("contents")))
    values.pop("copies")
    return values


def _write_copies(conn: sa.Connection, issue_id: int, copies: tuple[Copy, ...]) -> None:
    conn.execute(issue_copies.delete().where(issue_copies.c.issue_id == issue_id))
    if copies:
        conn.execute(issue_copies.insert(), [{"issue_id": issue_id, **asdict(copy)} for copy in copies])


class Issues:
    """The issues table; every method runs its own transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, digest: str, period: str) -> StoredIssue | None:
        with self.db.engine.connect() as conn:
            return _row(conn.execute(sa.select(issues).where(issues.c.digest == digest, issues.c.period == period)).first())

    def by_id(self, issue_id: int) -> StoredIssue | None:
        with self.db.engine.connect() as conn:
            return _row(conn.execute(sa.select(issues).where(issues.c.id == issue_id)).first())

    def by_name(self, name: str) -> StoredIssue | None:
        """`weekly-2022-W30`: the digest is the name up to the period."""
        with self.db.engine.connect() as conn:
            return _row(conn.execute(sa.select(issues).where(issues.c.digest + "-" + issues.c.period == name)).first())

    def latest(self) -> StoredIssue | None:
        with self.db.engine.connect() as conn:
            return _row(conn.execute(sa.select(issues).order_by(issues.c.created_at.desc(), issues.c.id.desc())).first())

    def previous(self, digest: str, before: datetime, went_out: bool = False) -> StoredIssue | None:
        """The latest issue of `digest` composed before the moment `before`; with `went_out`,
        only one that was queued for its readers (an issue kept for want of readers is not)."""
        cutoff = before.astimezone(UTC).replace(tzinfo=None)
        query = sa.select(issues).where(issues.c.digest == digest, issues.c.as_of < cutoff)
        if went_out:
            query = query.where(issues.c.state != IssueState.STORED.value)
        with self.db.engine.connect() as conn:
            return _row(conn.execute(query.order_by(issues.c.as_of.desc(), issues.c.id.desc())).first())

    def unfinished(self, digest: str | None = None) -> list[StoredIssue]:
        """Issues queued and not done (of one digest, or of all), oldest first."""
        query = sa.select(issues).where(issues.c.state.in_(OPEN))
        if digest is not None:
            query = query.where(issues.c.digest == digest)
        with self.db.engine.connect() as conn:
            rows = conn.execute(query.order_by(issues.c.as_of, issues.c.id)).all()
        return [StoredIssue(**row._mapping) for row in rows]

    def iter(self) -> Iterator[StoredIssue]:
        """Every issue, newest first."""
        with self.db.engine.connect() as conn:
            for row in conn.execute(sa.select(issues).order_by(issues.c.as_of.desc(), issues.c.id.desc())):
                yield StoredIssue(**row._mapping)

    def published(self, digest: str | None = None, name: str | None = None, limit: int = 500) -> list[StoredIssue]:
        """Issues that went out (at least one delivery sent), newest first: all the public may
        see. A test copy or an issue stored, queued or failed to everyone is not among them."""
        sent = sa.select(deliveries.c.id).where(deliveries.c.issue_id == issues.c.id, deliveries.c.status == "sent")
        query = sa.select(issues).where(sent.exists())
        if digest is not None:
            query = query.where(issues.c.digest == digest)
        if name is not None:
            query = query.where(issues.c.digest + "-" + issues.c.period == name)
        with self.db.engine.connect() as conn:
            rows = conn.execute(query.order_by(issues.c.as_of.desc(), issues.c.id.desc()).limit(limit)).all()
        return [StoredIssue(**row._mapping) for row in rows]

    def save(self, snapshot: Snapshot) -> tuple[StoredIssue, bool]:
        """Store the issue of (digest, period) once; (the stored issue, whether this call wrote it).

        While no copy can have gone out (stored or queued, nothing attempted), a snapshot
        that differs replaces the one kept: content fixed after a failed first try is what
        goes out. The unique constraint decides between two processes saving at once."""
        values = _columns(snapshot)
        try:
            with self.db.engine.begin() as conn:
                issue_id = conn.execute(issues.insert().values(
                    **values, nonce=uuid.uuid4().hex[:16], created_at=utcnow(), state=IssueState.STORED.value,
                ).returning(issues.c.id)).scalar_one()
                _write_copies(conn, issue_id, snapshot.copies)
            written = True
        except sa.exc.IntegrityError:
            with self.db.engine.begin() as conn:
                replaced = conn.execute(
                    issues.update()
                    .where(
                        issues.c.digest == snapshot.digest, issues.c.period == snapshot.period,
                        issues.c.state.in_(REPLACEABLE), issues.c.content_hash != snapshot.content_hash,
                    )
                    .values(**values).returning(issues.c.id)
                ).scalar()
                if replaced is not None:
                    _write_copies(conn, replaced, snapshot.copies)
                written = replaced is not None
        stored = self.get(snapshot.digest, snapshot.period)
        assert stored is not None
        return stored, written

    def copies(self, issue_id: int) -> tuple[Copy, ...]:
        """The issue's copies above TLP:CLEAR, lowest first (the CLEAR one is the issue row)."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(sa.select(issue_copies).where(issue_copies.c.issue_id == issue_id)).all()
        found = [Copy(row.tlp, row.subject, row.preheader, row.html, row.text) for row in rows]
        return tuple(sorted(found, key=lambda copy: TLP_LEVELS.index(copy.tlp)))

    def begin_sending(self, issue_id: int) -> StoredIssue:
        """Queued -> sending: from here on the snapshot is frozen. Returns the issue as it is
        now (already sending, or further, when another sender moved it first)."""
        with self.db.engine.begin() as conn:
            conn.execute(
                issues.update().where(issues.c.id == issue_id, issues.c.state == IssueState.QUEUED.value)
                .values(state=IssueState.SENDING.value)
            )
            found = _row(conn.execute(sa.select(issues).where(issues.c.id == issue_id)).first())
        assert found is not None
        return found

    def reopen_if_untouched(self, issue_id: int) -> bool:
        """Sending -> queued, when no delivery was attempted and no sender holds one: a send
        that could not even connect does not freeze the snapshot."""
        touched = sa.select(deliveries.c.id).where(
            deliveries.c.issue_id == issue_id,
            sa.or_(deliveries.c.attempts > 0, deliveries.c.status.not_in(UNFINISHED), deliveries.c.lease_owner.is_not(None)),
        ).exists()
        with self.db.engine.begin() as conn:
            return bool(conn.execute(
                issues.update()
                .where(issues.c.id == issue_id, issues.c.state == IssueState.SENDING.value, ~touched)
                .values(state=IssueState.QUEUED.value)
            ).rowcount)

    def reopen(self, issue_id: int) -> None:
        """Done -> sending again, its snapshot still frozen: deliveries were re-queued (`retry`)."""
        with self.db.engine.begin() as conn:
            conn.execute(
                issues.update()
                .where(issues.c.id == issue_id,
                       issues.c.state.in_((IssueState.DONE.value, IssueState.DONE_WITH_FAILURES.value)))
                .values(state=IssueState.SENDING.value, finished_at=None)
            )

    def finish(self, issue_id: int) -> StoredIssue | None:
        """Sending -> done, or done with failures, once no delivery is left; the issue as it is
        then (None while deliveries remain)."""
        left = sa.select(deliveries.c.id).where(deliveries.c.issue_id == issue_id, deliveries.c.status.in_(UNFINISHED))
        failed = sa.select(deliveries.c.id).where(deliveries.c.issue_id == issue_id, deliveries.c.status == "failed")
        with self.db.engine.begin() as conn:
            if conn.execute(sa.select(left.exists())).scalar():
                return None
            state = IssueState.DONE_WITH_FAILURES if conn.execute(sa.select(failed.exists())).scalar() else IssueState.DONE
            conn.execute(
                issues.update().where(issues.c.id == issue_id, issues.c.state.in_(OPEN))
                .values(state=state.value, finished_at=utcnow())
            )
            return _row(conn.execute(sa.select(issues).where(issues.c.id == issue_id)).first())
