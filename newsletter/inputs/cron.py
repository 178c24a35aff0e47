"""Crontab schedules read the way cron reads them, as APScheduler triggers.

APScheduler 3 numbers weekdays from Monday = 0, so its `from_crontab("0 7 * * 1")` fires on
Tuesdays. Here the weekday field is read with cron's numbering (0 or 7 = Sunday, names too)
and handed to APScheduler as day names. An optional sixth field, first, gives seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

SECOND = timedelta(seconds=1)
TICK = timedelta(microseconds=1)

DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
FORM = "MINUTE HOUR DAY MONTH WEEKDAY (or SECOND first, six fields), e.g. '0 7 * * MON'"


class Schedule(BaseTrigger):  # type: ignore[misc]
    """A crontab schedule in a time zone, with cron's behaviour at daylight-saving changes.

    APScheduler 3.11's CronTrigger computes across those changes in local time and gets it
    wrong: it can return the same time again (its issue #1021, which a scheduler fires in a
    loop), skip a time, or fire a wall-clock time the autumn change repeats twice. Here the
    schedule is matched against the wall clock with no zone at all (a CronTrigger in UTC, where
    no clock jumps), and each match is then placed in the zone: a wall-clock time that occurs
    twice fires once, at its first occurrence; one the spring change skips fires an hour later.
    """

    def __init__(self, wall_clock: CronTrigger, zone: ZoneInfo) -> None:
        self.wall_clock = wall_clock
        self.timezone = zone

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        after = now if previous_fire_time is None else max(now, previous_fire_time + TICK)
        wall = after.astimezone(self.timezone).replace(tzinfo=UTC, fold=0)
        for _ in range(1000):
            match: datetime | None = self.wall_clock.get_next_fire_time(None, wall)
            if match is None:
                return None
            fire = match.replace(tzinfo=self.timezone, fold=0).astimezone(UTC)  # an instant, in UTC
            if fire >= after:
                return fire
            wall = match + SECOND  # a match in the second pass of a repeated hour: it already ran
        return None

    def __str__(self) -> str:
        return f"{self.wall_clock} in {self.timezone}"


def trigger(expression: str, timezone: str) -> Schedule:
    """The trigger for `expression` in `timezone`; ValueError says what is wrong."""
    fields = expression.split()
    if len(fields) == 5:
        fields.insert(0, "0")
    if len(fields) != 6:
        raise ValueError(f"'{expression}' has {len(fields)} fields; write {FORM}")
    second, minute, hour, day, month, weekday = fields
    if day not in ("*", "?") and weekday not in ("*", "?"):
        raise ValueError(
            f"'{expression}' limits both the day of the month and the weekday, which cron and "
            "APScheduler read differently (either, or both); limit one of them"
        )
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"'{timezone}' is not an IANA time zone such as Europe/Istanbul") from None
    try:
        return Schedule(CronTrigger(
            second=second, minute=minute, hour=hour, day=day, month=month,
            day_of_week=_weekdays(weekday), timezone=UTC,
        ), zone)
    except ValueError as exc:
        raise ValueError(f"'{expression}': {exc}") from None


def _weekdays(field: str) -> str:
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for item in field.lower().split(","):
        span, _, step_text = item.partition("/")
        if not step_text.isdigit() and step_text:
            raise ValueError(f"weekday step '{step_text}' is not a number")
        step = int(step_text or 1)
        if span == "*":
            first, last = 0, 6
        else:
            start, _, end = span.partition("-")
            first = _day(start)
            last = _day(end) if end else (6 if step_text else first)
            if end and last < first:
                last += 7  # fri-mon wraps over the weekend
        days.update(d % 7 for d in range(first, last + 1, step))
    return ",".join(DAYS[d] for d in sorted(days))


def _day(text: str) -> int:
    if text.isdigit() and int(text) <= 7:
        return int(text) % 7
    if text[:3] in DAYS and len(text) >= 3:
        return DAYS.index(text[:3])
    raise ValueError(f"'{text}' is not a weekday (0-7 or sun-sat)")


def next_fires(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    fires: list[datetime] = []
    previous: datetime | None = None
    while len(fires) < count:
        fire = schedule.get_next_fire_time(previous, after)
        if fire is None:
            break
        fires.append(fire)
        previous = fire
    return fires


def last_fire(schedule: Schedule, now: datetime) -> datetime | None:
    """The latest fire time at or before `now` (within a year), if any."""
    for window in (timedelta(minutes=1), timedelta(hours=1), timedelta(days=1), timedelta(days=8),
                   timedelta(days=32), timedelta(days=367)):
        fire = schedule.get_next_fire_time(None, now - window)
        if fire is None or fire > now:
            continue
        while True:
            following = schedule.get_next_fire_time(fire, fire)
            if following is None or following > now:
                return fire
            fire = following
    return None
