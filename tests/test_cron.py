"""Crontab schedules: cron's weekday numbering, and fire times across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from newsletter.inputs.cron import last_fire, next_fires, trigger

WEDNESDAY = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def local_fires(expression: str, zone: str, after: datetime, count: int = 4) -> list[str]:
    fires = next_fires(trigger(expression, zone), after, count)
    return [f.astimezone(ZoneInfo(zone)).strftime("%a %m-%d %H:%M:%S%z") for f in fires]


@pytest.mark.parametrize(
    ("expression", "days"),
    [
        ("0 7 * * 1", ["Mon", "Mon"]),  # APScheduler's own from_crontab reads 1 as Tuesday
        ("0 7 * * 0", ["Sun", "Sun"]),
        ("0 7 * * 7", ["Sun", "Sun"]),
        ("0 7 * * MON", ["Mon", "Mon"]),
        ("0 7 * * 1-5", ["Thu", "Fri", "Mon", "Tue", "Wed"]),
        ("0 7 * * fri-mon", ["Fri", "Sat", "Sun", "Mon"]),
        ("0 7 * * */3", ["Sat", "Sun", "Wed", "Sat"]),  # sun, wed, sat: steps count from Sunday = 0
        ("0 7 * * 1,3", ["Mon", "Wed", "Mon"]),
    ],
)
def test_weekdays_are_numbered_as_cron_numbers_them(expression: str, days: list[str]) -> None:
    fires = next_fires(trigger(expression, "UTC"), WEDNESDAY, len(days))
    assert [f.strftime("%a") for f in fires] == days


def test_a_sixth_field_first_gives_seconds() -> None:
    fires = next_fires(trigger("*/2 * * * * *", "UTC"), WEDNESDAY, 3)
    assert [f.strftime("%H:%M:%S") for f in fires] == ["12:00:00", "12:00:02", "12:00:04"]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 7 * *", "has 4 fields; write MINUTE HOUR DAY MONTH WEEKDAY"),
        ("0 25 * * *", "the last value (25) is higher than the maximum value (23)"),
        ("0 7 * * funday", "'funday' is not a weekday (0-7 or sun-sat)"),
        ("0 7 1 * MON", "limits both the day of the month and the weekday"),
        ("x 7 * * *", "'x 7 * * *': Unrecognized expression \"x\" for field \"minute\""),
    ],
)
def test_a_bad_expression_says_what_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        trigger(expression, "UTC")
    assert message in str(raised.value)


def test_a_bad_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="'Mars/Olympus' is not an IANA time zone"):
        trigger("0 7 * * *", "Mars/Olympus")


def test_new_york_autumn_change_fires_a_repeated_time_once() -> None:
    # 1 November 2026: clocks go back from 02:00 EDT to 01:00 EST, so 01:30 happens twice.
    assert local_fires("30 1 * * *", "America/New_York", datetime(2026, 10, 30, 12, tzinfo=UTC)) == [
        "Sat 10-31 01:30:00-0400", "Sun 11-01 01:30:00-0400", "Mon 11-02 01:30:00-0500", "Tue 11-03 01:30:00-0500",
    ]
    assert local_fires("*/30 * * * *", "America/New_York", datetime(2026, 11, 1, 4, 45, tzinfo=UTC), 5) == [
        "Sun 11-01 01:00:00-0400", "Sun 11-01 01:30:00-0400", "Sun 11-01 02:00:00-0500",
        "Sun 11-01 02:30:00-0500", "Sun 11-01 03:00:00-0500",
    ]


def test_new_york_spring_change_fires_a_skipped_time_an_hour_later() -> None:
    # 8 March 2026: clocks jump from 02:00 EST to 03:00 EDT; 02:30 does not exist that day.
    assert local_fires("30 2 * * *", "America/New_York", datetime(2026, 3, 6, 12, tzinfo=UTC)) == [
        "Sat 03-07 02:30:00-0500", "Sun 03-08 03:30:00-0400", "Mon 03-09 02:30:00-0400", "Tue 03-10 02:30:00-0400",
    ]


def test_jerusalem_weekly_issue_keeps_its_local_hour_across_both_changes() -> None:
    # Israel moves to summer time on Friday 27 March 2026 and back on Sunday 25 October 2026.
    assert local_fires("0 7 * * FRI", "Asia/Jerusalem", datetime(2026, 3, 15, tzinfo=UTC)) == [
        "Fri 03-20 07:00:00+0200", "Fri 03-27 07:00:00+0300", "Fri 04-03 07:00:00+0300", "Fri 04-10 07:00:00+0300",
    ]
    fires = next_fires(trigger("0 7 * * FRI", "Asia/Jerusalem"), datetime(2026, 10, 16, tzinfo=UTC), 3)
    assert [f.astimezone(UTC).strftime("%m-%d %H:%M") for f in fires] == ["10-16 04:00", "10-23 04:00", "10-30 05:00"]


def test_jerusalem_repeated_and_skipped_times() -> None:
    assert local_fires("30 1 * * *", "Asia/Jerusalem", datetime(2026, 10, 23, tzinfo=UTC)) == [
        "Sat 10-24 01:30:00+0300", "Sun 10-25 01:30:00+0300", "Mon 10-26 01:30:00+0200", "Tue 10-27 01:30:00+0200",
    ]
    assert local_fires("30 2 * * *", "Asia/Jerusalem", datetime(2026, 3, 25, tzinfo=UTC)) == [
        "Wed 03-25 02:30:00+0200", "Thu 03-26 02:30:00+0200", "Fri 03-27 03:30:00+0300", "Sat 03-28 02:30:00+0300",
    ]


def test_the_last_fire_at_or_before_a_moment() -> None:
    schedule = trigger("0 7 * * MON", "Europe/Istanbul")
    assert last_fire(schedule, WEDNESDAY) == datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
    assert last_fire(schedule, datetime(2026, 11, 23, 4, 0, tzinfo=UTC)) == datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
    assert last_fire(trigger("30 1 * * *", "America/New_York"), datetime(2026, 11, 1, 7, tzinfo=UTC)) == datetime(
        2026, 11, 1, 5, 30, tzinfo=UTC
    )
