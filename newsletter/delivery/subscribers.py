"""Subscribers at the door: address and name checks, CSV import and export."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from email_validator import EmailNotValidError, validate_email

from ..errors import NewsletterError, display_path
from ..compose.message import MAX_NAME_LENGTH, header_value
from ..store import Store

ADDRESS_COLUMNS = ("email", "address", "email_address", "e-mail")
EXPORT_COLUMNS = ("address", "name", "status", "digests", "created_at")


class AddressError(NewsletterError):
    """An address or name that cannot be accepted; the message says why."""


def normalize_address(raw: str) -> str:
    """The address as we store and send to it: valid syntax, ASCII (IDN domains as punycode),
    lowercase. No DNS lookup: deliverability shows when we send."""
    text = raw.strip()
    try:
        header_value(text, "address")
        checked = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except (EmailNotValidError, NewsletterError) as exc:
        raise AddressError(f"'{text}' is not a valid address: {exc}") from None
    return str(checked.ascii_email or checked.normalized).lower()


def check_name(raw: str) -> str:
    """A display name fit for a To header: printable, one line, not too long."""
    try:
        name = " ".join(header_value(raw, "name").split())
    except NewsletterError as exc:
        raise AddressError(str(exc)) from None
    if len(name) > MAX_NAME_LENGTH:
        raise AddressError(f"name is longer than {MAX_NAME_LENGTH} characters")
    return name


def check_digests(names: Iterable[str], known: Iterable[str]) -> tuple[str, ...]:
    known = tuple(known)
    chosen = tuple(dict.fromkeys(names)) or known
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise AddressError(f"unknown digest {', '.join(unknown)} (known: {', '.join(known)})")
    return chosen


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_unsubscribed: int = 0
    rejected: list[str] = field(default_factory=list)  # `file:line: field: reason`


def import_csv(
    store: Store, path: Path, digests: Iterable[str], known_digests: Iterable[str], resubscribe: bool = False
) -> ImportReport:
    """Add every valid row; report the others by line. Importing the same file twice changes
    nothing the second time, and never re-subscribes someone who left unless told to."""
    known = tuple(known_digests)
    default = check_digests(digests, known)
    report = ImportReport()
    shown = display_path(path)
    try:
        stream = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise NewsletterError(f"cannot read {shown}: {exc.strerror}") from None
    with stream:
        reader = csv.DictReader(stream)
        columns = {name.strip().lower(): name for name in reader.fieldnames or ()}
        address_column = next((columns[c] for c in ADDRESS_COLUMNS if c in columns), None)
        if address_column is None:
            raise NewsletterError(
                f"{shown}:1: header: no address column; the first line names the columns, "
                f"one of {', '.join(ADDRESS_COLUMNS)} (and optionally name, digests)"
            )
        name_column = columns.get("name")
        digests_column = columns.get("digests")
        try:
            first_line = 2
            for row in reader:
                line, first_line = first_line, reader.line_num + 1  # a quoted cell may span lines
                cells = {
                    "address": row.get(address_column) or "",
                    "name": (row.get(name_column) or "") if name_column else "",
                    "digests": (row.get(digests_column) or "") if digests_column else "",
                }
                try:
                    column = "address"
                    address = normalize_address(cells["address"])
                    column = "name"
                    name = check_name(cells["name"])
                    column = "digests"
                    listed = cells["digests"].replace(";", " ").replace(",", " ").split()
                    chosen = check_digests(listed, known) if listed else default
                except AddressError as exc:
                    report.rejected.append(f"{shown}:{line}: {column}: {exc}")
                    continue
                result = store.add_subscriber(address, name, chosen, resubscribe=resubscribe)
                if result.blocked:
                    report.kept_unsubscribed += 1
                elif result.created:
                    report.created += 1
                elif result.changed:
                    report.updated += 1
                else:
                    report.unchanged += 1
        except (csv.Error, UnicodeDecodeError) as exc:
            raise NewsletterError(f"{shown}:{reader.line_num}: csv: {exc}") from None
    return report


def export_csv(store: Store, out: TextIO, status: str | None = None, digest: str | None = None) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for subscriber in store.iter_subscribers(status=status, digest=digest):
        writer.writerow((
            subscriber.address, subscriber.name, subscriber.status, " ".join(subscriber.digests),
            subscriber.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ))
        count += 1
    return count
