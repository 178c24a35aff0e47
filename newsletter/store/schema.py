"""The tables, version by version: version 1 written out once, each later version what it adds.

The tables the code uses are version 1 plus every addition, so an old database that takes
the same steps (migrations.py) ends up with exactly these columns.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

v1 = sa.MetaData()

schema_version = sa.Table(
    "schema_version", v1,
    sa.Column("version", sa.Integer, nullable=False),
)

sa.Table(
    "subscribers", v1,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("address", sa.String(320), nullable=False, unique=True),  # normalized, lowercase
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("bounces", sa.Integer, nullable=False, server_default="0"),  # permanent failures in a row
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

sa.Table(
    "subscriptions", v1,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False),
    sa.Column("digest", sa.String(100), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("subscriber_id", "digest"),
)

sa.Table(
    "issues", v1,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("digest", sa.String(100), nullable=False),
    sa.Column("period", sa.String(20), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("preheader", sa.Text, nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("nonce", sa.String(32), nullable=False),  # makes Message-IDs unique across databases
    sa.Column("as_of", sa.DateTime, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("queued_at", sa.DateTime),
    sa.Column("finished_at", sa.DateTime),
    sa.UniqueConstraint("digest", "period"),
)

_v1_deliveries = sa.Table(
    "deliveries", v1,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("issue_id", sa.Integer, sa.ForeignKey("issues.id"), nullable=False),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False),
    sa.Column("subscription_id", sa.Integer, sa.ForeignKey("subscriptions.id"), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("message_id", sa.String(200)),
    sa.Column("next_attempt_at", sa.DateTime),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("sent_at", sa.DateTime),
    sa.UniqueConstraint("issue_id", "subscriber_id"),
)
sa.Index("deliveries_by_status", _v1_deliveries.c.issue_id, _v1_deliveries.c.status, _v1_deliveries.c.id)

# Later versions that add columns: (table, column, type).
ADDED: dict[int, tuple[tuple[str, str, sa.types.TypeEngine[Any]], ...]] = {
    # Leases on deliveries, so that two senders never take the same row.
    2: (("deliveries", "lease_owner", sa.String(120)), ("deliveries", "lease_expires", sa.DateTime())),
    # What an issue holds (its brief and entries), to tell whether the next one has news.
    3: (("issues", "items", sa.Text()),),
    # Which sender sent a delivery (host:pid), for progress per worker.
    5: (("deliveries", "sent_by", sa.String(80)),),
    # The issue as a full snapshot, so that a resumed send needs nothing of today's config;
    # and the step of its life it is at (see usecases/issues.py).
    6: (
        ("issues", "sender_name", sa.String(200)), ("issues", "sender_address", sa.String(320)),
        ("issues", "reply_to_name", sa.String(200)), ("issues", "reply_to_address", sa.String(320)),
        ("issues", "list_id", sa.String(500)), ("issues", "language", sa.String(40)),
        ("issues", "direction", sa.String(3)), ("issues", "state", sa.String(20)),
    ),
    # When a delivery was first tried: deferred ones are given up `max_age` after it.
    7: (("deliveries", "first_attempt_at", sa.DateTime()),),
    # What readers choose themselves: a pause, plain text only; and the code of the one
    # confirmation link that may still make a requested subscription active.
    9: (
        ("subscribers", "paused_until", sa.DateTime()), ("subscribers", "plain_text", sa.Boolean()),
        ("subscriptions", "confirm_code", sa.String(32)),
    ),
    # TLP: the highest level each reader may receive (NULL: clear), and the clearance a
    # delivery was queued for (the copy it gets is chosen from the issue's copies by it).
    10: (("subscribers", "clearance", sa.String(20)), ("deliveries", "tlp", sa.String(20))),
    # The CLEAR copy as a STIX 2.1 bundle, stored with the issue: the archive composes nothing.
    11: (("issues", "stix", sa.Text()),),
    # Feed health, so a feed that breaks or goes quiet is noticed: its last success (and first,
    # for a feed that never brought anything new), its last failure and why, its failures in a
    # row, and when it last brought a new item. Rows of MISP events keep them empty.
    12: (
        ("feeds", "succeeded_at", sa.DateTime()), ("feeds", "first_succeeded_at", sa.DateTime()),
        ("feeds", "failed_at", sa.DateTime()), ("feeds", "failure", sa.String(200)),
        ("feeds", "failures_in_row", sa.Integer()), ("feeds", "new_at", sa.DateTime()),
    ),
}

# Version 4: what each news feed answered last, for conditional GETs (ETag, Last-Modified).
v4 = sa.MetaData()
sa.Table(
    "feeds", v4,
    sa.Column("url", sa.String(1000), primary_key=True),
    sa.Column("etag", sa.String(500)),
    sa.Column("last_modified", sa.String(100)),
    sa.Column("checked_at", sa.DateTime),
    sa.Column("status", sa.String(200)),  # "ok", "not modified", or what went wrong
)

# Version 8: what happened to each subscriber (subscribed, confirmed, each bounce and complaint,
# unsubscribed, and by what), and every message that came back, acted on or kept aside.
v8 = sa.MetaData()
sa.Table(
    "events", v8,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("subscriber_id", sa.Integer, nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("kind", sa.String(30), nullable=False),  # see store/history.py
    sa.Column("detail", sa.Text, nullable=False),  # why, in words: "by the unsubscribe link", a server's reply
    sa.Column("code", sa.String(20)),  # an enhanced status code (5.1.1) or a feedback type (abuse)
    sa.Column("issue_id", sa.Integer),
    sa.Column("delivery_id", sa.Integer),
    sa.Column("origin", sa.String(500)),  # the message it came from: its Message-ID and where it was read
    sa.Index("events_by_subscriber", "subscriber_id", "at"),
    sa.Index("events_by_issue", "issue_id", "kind"),
)
sa.Table(
    "returns", v8,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # bounce, complaint, unsubscribe, auto-reply, unknown
    sa.Column("acted", sa.Boolean, nullable=False),
    sa.Column("note", sa.Text, nullable=False),  # what was done, or why nothing was
    sa.Column("message_id", sa.String(500)),
    sa.Column("sender", sa.String(500)),
    sa.Column("subject", sa.String(500)),
    sa.Column("origin", sa.String(500)),  # stdin, maildir:PATH, imap:URL
    sa.Column("issue_id", sa.Integer),
    sa.Column("raw", sa.LargeBinary),  # kept for what nobody recognized, up to a limit
)

# Version 10: an issue's copies above TLP:CLEAR, one per distinct set of items readers of some
# clearance may see (the issues row keeps the CLEAR copy, the one the web may show).
v10 = sa.MetaData()
sa.Table(
    "issue_copies", v10,
    sa.Column("issue_id", sa.Integer, primary_key=True),
    sa.Column("tlp", sa.String(20), primary_key=True),  # the highest level the copy holds
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("preheader", sa.Text, nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)

# The tables as the code sees them: version 1 and what each later version added.
metadata = sa.MetaData()
subscribers, subscriptions, issues, deliveries = (
    v1.tables[name].to_metadata(metadata) for name in ("subscribers", "subscriptions", "issues", "deliveries")
)
feeds = v4.tables["feeds"].to_metadata(metadata)  # before the additions: version 12 adds to it
for _version_added in sorted(ADDED):
    for _table, _column, _kind in ADDED[_version_added]:
        metadata.tables[_table].append_column(sa.Column(_column, _kind))
events, returns = (v8.tables[name].to_metadata(metadata) for name in ("events", "returns"))
issue_copies = v10.tables["issue_copies"].to_metadata(metadata)
