"""Subscribers in bulk: the digests they choose, CSV import (every row through the door) and export."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..errors import NewsletterError, SourceError, display_path
from ..inputs.addresses import AddressError, check_name, normalize_address
from ..inputs.marking import parse_tlp
from ..store import Store

ADDRESS_COLUMNS = ("email", "address", "email_address", "e-mail")
EXPORT_COLUMNS = ("address", "name", "status", "digests", "clearance", "created_at")


def check_digests(names: Iterable[str], known: Iterable[str]) -> tuple[str, ...]:
    known = tuple(known)
    chosen = tuple(dict.fromkeys(names)) or known
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise AddressError(f"unknown digest {', '.join(unknown)} (known: {', '.join(known)})")
    return chosen


class RowError(SourceError):
    """A row of a subscribers file that cannot be imported: `file:line: column: reason`."""


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_unsubscribed: int = 0
    rejected: list[SourceError] = field(default_factory=list)  # `file:line: column: reason`


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
            raise RowError(
                path, 1, "header", "no address column; the first line names the columns, "
                f"one of {', '.join(ADDRESS_COLUMNS)} (and optionally name, digests, clearance)"
            )
        name_column = columns.get("name")
        digests_column = columns.get("digests")
        clearance_column = columns.get("clearance")
        try:
            first_line = 2
            for row in reader:
                line, first_line = first_line, reader.line_num + 1  # a quoted cell may span lines
                cells = {
                    "address": row.get(address_column) or "",
                    "name": (row.get(name_column) or "") if name_column else "",
                    "digests": (row.get(digests_column) or "") if digests_column else "",
                    "clearance": (row.get(clearance_column) or "").strip() if clearance_column else "",
                }
                try:
                    column = "address"
                    address = normalize_address(cells["address"])
                    column = "name"
                    name = check_name(cells["name"])
                    column = "digests"
                    listed = cells["digests"].replace(";", " ").replace(",", " ").split()
                    chosen = check_digests(listed, known) if listed else default
                    column = "clearance"
                    clearance = parse_tlp(cells["clearance"]) if cells["clearance"] else None
                except (AddressError, ValueError) as exc:
                    report.rejected.append(RowError(path, line, column, str(exc)))
                    continue
                result = store.subscribers.add(address, name, chosen, resubscribe=resubscribe, how=f"imported from {shown}",
                                               clearance=clearance)
                if result.blocked:
                    report.kept_unsubscribed += 1
                elif result.created:
                    report.created += 1
                elif result.changed:
                    report.updated += 1
                else:
                    report.unchanged += 1
        except (csv.Error, UnicodeDecodeError) as exc:
            raise RowError(path, reader.line_num, "csv", str(exc)) from None
    return report


def export_csv(store: Store, out: TextIO, status: str | None = None, digest: str | None = None) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for subscriber in store.subscribers.iter(status=status, digest=digest):
        writer.writerow((
            subscriber.address, subscriber.name, subscriber.status, " ".join(subscriber.digests), subscriber.clearance,
            subscriber.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ))
        count += 1
    return count
