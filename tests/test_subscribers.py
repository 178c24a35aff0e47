"""Subscribers at the door: bad addresses and names refused, CSV import and export round trip."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from newsletter.store import Store
from newsletter.delivery.subscribers import AddressError, check_name, export_csv, import_csv, normalize_address

DIGESTS = ("weekly", "monthly")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'newsletter.db'}")


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Ann@Example.ORG", "ann@example.org"),
        ("  bob@example.org ", "bob@example.org"),
        ("carol@b\u00fccher.example", "carol@xn--bcher-kva.example"),
    ],
)
def test_addresses_are_normalized(raw: str, normalized: str) -> None:
    assert normalize_address(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("no-at-sign", "must have an @-sign"),
        ("a@b@c.org", "not a valid address"),
        ("ann@example", "not a valid address"),
        ("ann@example.org\r\nBcc: eve@example.org", "line break or control character"),
        ("j\u00f6rg@example.org", "not a valid address"),  # a non-ASCII mailbox needs SMTPUTF8
        ("", "not a valid address"),
    ],
)
def test_a_bad_address_is_refused_at_the_door(raw: str, reason: str) -> None:
    with pytest.raises(AddressError, match=reason):
        normalize_address(raw)


@pytest.mark.parametrize("raw", ["Eve\r\nBcc: x@y", "Eve\n", "=?utf-8?q?Eve=0A?=", "x" * 101])
def test_a_name_that_could_break_a_header_is_refused(raw: str) -> None:
    with pytest.raises(AddressError):
        check_name(raw)


def test_names_lose_extra_spaces() -> None:
    assert check_name("  Ann   Example ") == "Ann Example"


CSV = (
    "Email,Name,digests\n"
    "ann@example.org,Ann,\n"
    "BOB@example.org,Bob,monthly\n"
    "not-an-address,Nobody,\n"
    'carol@example.org,"Carol\nBcc: x@y",\n'
    "dave@example.org,Dave,yearly\n"
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "subscribers.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_import_adds_good_rows_and_reports_bad_ones_by_line(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    report = import_csv(store, write(tmp_path, CSV), (), DIGESTS)
    assert (report.created, report.updated, report.unchanged) == (2, 0, 0)
    assert [str(row) for row in report.rejected] == [
        "subscribers.csv:4: address: 'not-an-address' is not a valid address: An email address must have an @-sign.",
        "subscribers.csv:5: name: name contains a line break or control character: 'Carol\\nBcc: x@y'",
        "subscribers.csv:7: digests: unknown digest yearly (known: weekly, monthly)",
    ]
    ann, bob = store.subscribers.get("ann@example.org"), store.subscribers.get("bob@example.org")
    assert ann is not None and ann.digests == ("monthly", "weekly")  # no digests column value: all
    assert bob is not None and bob.digests == ("monthly",)


def test_import_is_idempotent_and_never_resubscribes_silently(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, CSV)
    import_csv(store, path, (), DIGESTS)
    store.subscribers.remove("ann@example.org")
    again = import_csv(store, path, (), DIGESTS)
    assert (again.created, again.updated, again.unchanged, again.kept_unsubscribed) == (0, 0, 1, 1)
    ann = store.subscribers.get("ann@example.org")
    assert ann is not None and ann.status == "unsubscribed"
    told = import_csv(store, path, (), DIGESTS, resubscribe=True)
    assert told.updated == 1
    ann = store.subscribers.get("ann@example.org")
    assert ann is not None and ann.status == "active"


def test_a_file_without_an_address_column_is_one_clear_error(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    from newsletter.errors import NewsletterError

    with pytest.raises(NewsletterError, match="subscribers.csv:1: header: no address column"):
        import_csv(store, write(tmp_path, "name\nAnn\n"), (), DIGESTS)


def test_export_reads_back_through_import(store: Store, tmp_path: Path) -> None:
    import_csv(store, write(tmp_path, CSV), (), DIGESTS)
    out = io.StringIO()
    assert export_csv(store, out) == 2
    lines = out.getvalue().splitlines()
    assert lines[0] == "address,name,status,digests,clearance,created_at"
    assert lines[1].startswith("ann@example.org,Ann,active,monthly weekly,clear,")
    other = Store.open(f"sqlite:///{tmp_path / 'other.db'}")
    report = import_csv(other, write(tmp_path, out.getvalue()), (), DIGESTS)
    assert report.created == 2 and not report.rejected
