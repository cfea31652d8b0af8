"""Edition periods: the latest cron fire time at or before an instant, in the list's time zone.

The period key is that fire time in local ISO form (e.g. `2026-11-28T07:00+09:00`);
`(list, period)` is unique in the editions table, so a second trigger for the
same period finds the existing edition instead of building another.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

# Search windows, growing, for the previous fire time (cron cannot be run backwards).
_LOOKBACKS = (dt.timedelta(hours=2), dt.timedelta(days=2), dt.timedelta(days=9), dt.timedelta(days=33),
              dt.timedelta(days=370), dt.timedelta(days=366 * 5))


@dataclass(frozen=True)
class Period:
    key: str
    starts_at: dt.datetime  # this fire time (UTC)
    previous_at: dt.datetime | None  # the fire before it (UTC), for "what is new since"

    @property
    def length(self) -> dt.timedelta:
        return self.starts_at - self.previous_at if self.previous_at else dt.timedelta(days=1)


_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def trigger(schedule: str, timezone: str) -> CronTrigger:
    """A CronTrigger with crontab semantics.

    APScheduler 3 numbers weekdays from Monday=0, crontab from Sunday=0 (and 7);
    numeric day-of-week fields are translated to day names so `1-5` means Mon–Fri.
    """
    fields = schedule.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields, got {len(fields)}")
    minute, hour, day, month, day_of_week = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=_crontab_weekdays(day_of_week),
                       timezone=ZoneInfo(timezone))


def _crontab_weekdays(field: str) -> str:
    if field in ("*", "?") or any(c.isalpha() for c in field):
        return "*" if field == "?" else field
    days: set[int] = set()
    for part in field.split(","):
        rng, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if rng == "*":
            first, last = 0, 6
        elif "-" in rng:
            first_text, last_text = rng.split("-", 1)
            first, last = int(first_text), int(last_text)
        else:
            first = last = int(rng)
            if step_text:
                last = 6
        if not (0 <= first <= 7 and 0 <= last <= 7 and first <= last and step >= 1):
            raise ValueError(f"day-of-week {part!r} is out of range 0-7")
        days.update(d % 7 for d in range(first, last + 1, step))
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


def fire_times_between(schedule: str, timezone: str, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Fire times t with start < t <= end, in UTC; a wall-clock time repeated by a DST fall-back fires once."""
    cron = trigger(schedule, timezone)
    zone = ZoneInfo(timezone)
    times: list[dt.datetime] = []
    probe = start + dt.timedelta(microseconds=1)
    while True:
        current = cron.get_next_fire_time(None, probe)
        if current is None:
            break
        instant = current.astimezone(dt.UTC)
        if instant < probe:
            # APScheduler answers with the earlier instant inside a repeated hour; step past it.
            probe += dt.timedelta(hours=1)
            continue
        if instant > end:
            break
        # A wall-clock time repeated by a DST fall-back fires at its first occurrence only.
        first = current.replace(tzinfo=None).replace(tzinfo=zone, fold=0).astimezone(dt.UTC)
        if first == instant:
            times.append(instant)
        probe = instant + dt.timedelta(seconds=1)
    return times


def current_period(schedule: str, timezone: str, now: dt.datetime) -> Period:
    """The period `now` falls in: the latest fire time <= now."""
    for lookback in _LOOKBACKS:
        times = fire_times_between(schedule, timezone, now - lookback, now)
        if len(times) >= 2 or (times and lookback == _LOOKBACKS[-1]):
            return _period(times[-1], times[-2] if len(times) > 1 else None, timezone)
        if times:
            earlier = fire_times_between(schedule, timezone, now - _LOOKBACKS[-1], times[-1] - dt.timedelta(seconds=1))
            return _period(times[-1], earlier[-1] if earlier else None, timezone)
    raise ValueError(f"schedule {schedule!r} never fires")


def _period(at: dt.datetime, previous: dt.datetime | None, timezone: str) -> Period:
    local = at.astimezone(ZoneInfo(timezone))
    return Period(key=local.isoformat(timespec="minutes"), starts_at=at, previous_at=previous)


def local_hour_after(start: dt.datetime, timezone: str, hour: int) -> dt.datetime:
    """The first instant at or after `start` when the wall clock in `timezone` shows hour:00, in UTC.

    A local hour that does not exist (DST spring-forward) resolves to the instant just after the gap; one
    that exists twice (fall-back) to its first occurrence: either way, once.
    """
    zone = ZoneInfo(timezone)
    local_day = start.astimezone(zone).date()
    for offset in (0, 1, 2):
        day = local_day + dt.timedelta(days=offset)
        candidate = dt.datetime.combine(day, dt.time(hour), tzinfo=zone).astimezone(dt.UTC)
        if candidate >= start:
            return candidate
    raise AssertionError("unreachable: a local hour recurs within two days")
