"""Edition periods from cron + time zone, and the scheduler tick."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from digest.config import Settings
from digest.pipeline import connect
from digest.schedule.periods import current_period, fire_times_between
from digest.schedule.tick import tick

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize("schedule, zone, now, key", [
    ("0 7 * * *", "Asia/Seoul", "2026-11-28T12:00:00+00:00", "2026-11-28T07:00+09:00"),
    ("0 7 * * *", "Asia/Seoul", "2026-11-27T21:59:00+00:00", "2026-11-27T07:00+09:00"),
    ("0 7 * * 1", "Europe/Berlin", "2026-11-28T12:00:00+00:00", "2026-11-23T07:00+01:00"),  # crontab 1 = Monday
    ("0 7 * * 0", "Europe/Berlin", "2026-11-28T12:00:00+00:00", "2026-11-22T07:00+01:00"),  # 0 = Sunday
    ("0 7 * * 1-5", "Europe/Berlin", "2026-11-29T12:00:00+00:00", "2026-11-27T07:00+01:00"),  # Sunday → Friday's
    ("30 9 1 * *", "Asia/Kathmandu", "2026-11-28T12:00:00+00:00", "2026-11-01T09:30+05:45"),
])
def test_current_period(schedule: str, zone: str, now: str, key: str) -> None:
    assert current_period(schedule, zone, at(now)).key == key


def test_period_knows_its_predecessor() -> None:
    period = current_period("0 7 * * *", "UTC", at("2026-11-28T12:00:00+00:00"))
    assert period.previous_at == at("2026-11-27T07:00:00+00:00") and period.length == dt.timedelta(days=1)


def test_dst_spring_forward_fires_once_a_day() -> None:
    # Europe/Berlin skips 02:00–03:00 on 2027-03-28: a 02:30 schedule still fires exactly once that day.
    times = fire_times_between("30 2 * * *", "Europe/Berlin", at("2027-03-26T12:00:00+00:00"), at("2027-03-30T12:00:00+00:00"))
    assert len(times) == 4
    assert len({t.astimezone(dt.timezone(dt.timedelta(hours=1))).date() for t in times}) == 4


def test_dst_fall_back_does_not_fire_twice() -> None:
    # America/New_York repeats 01:00–02:00 on 2026-11-01.
    times = fire_times_between("30 1 * * *", "America/New_York", at("2026-10-31T12:00:00+00:00"), at("2026-11-02T12:00:00+00:00"))
    assert len(times) == 2


def test_tick_builds_each_due_edition_once_and_skips_past_grace(workspace: tuple[Path, Settings], smtp_server) -> None:
    _, settings = workspace
    database = connect(settings)
    from digest.audience.subscribers import import_csv
    from digest.db import audience as queries

    with database.session() as session:
        lists = queries.sync_lists(session, settings.lists)
        import_csv(session, lists["daily"], ["email\n", "t@example.com\n"], confirmed=True)
    # 07:00 Seoul = 22:00 UTC the day before; the fixture feeds are dated relative to the real clock.
    now = dt.datetime.now(UTC)
    period = current_period("0 7 * * *", "Asia/Seoul", now)
    first = tick(database, settings, period.starts_at + dt.timedelta(minutes=5))
    second = tick(database, settings, period.starts_at + dt.timedelta(minutes=6))
    assert len(first.built) == 1 and first.sent == 1
    assert second.built == [] and second.sent == 0
    assert len(smtp_server.messages) == 1
    # Down for longer than the grace: the next period is skipped and says why.
    late = tick(database, settings, period.starts_at + dt.timedelta(days=1, hours=7))
    assert late.built == [] and late.skipped and "grace" in late.skipped[0]["reason"]
