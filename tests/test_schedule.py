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


# --- the tick, with an injected clock ---------------------------------------------------------------

import textwrap  # noqa: E402
from collections import Counter  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

from conftest import FeedServer, write_config  # noqa: E402
from sqlalchemy import select  # noqa: E402

from digest.audience.subscribers import import_csv  # noqa: E402
from digest.config import load_settings  # noqa: E402
from digest.db import audience as queries  # noqa: E402
from digest.db.models import Delivery, DeliveryState, Edition  # noqa: E402
from digest.demo.capture import CaptureServer  # noqa: E402


def one_list(schedule: str, zone: str, extra: str = "") -> str:
    return textwrap.dedent(f"""
        [[lists]]
        slug = "daily"
        name = "Test Daily"
        from = "Test Daily <news@digest.example>"
        schedule = "{schedule}"
        timezone = "{zone}"
        """) + extra


def make(tmp_path: Path, feeds: FeedServer, smtp: CaptureServer, schedule: str, zone: str, extra: str = "") -> Settings:
    config = write_config(tmp_path, smtp_port=smtp.port, lists=one_list(schedule, zone, extra),
                          sources=[("Alpha", feeds.url("alpha.rss.xml")), ("Beta", feeds.url("beta.atom.xml"))])
    return load_settings(config)


def subscribe(settings: Settings, csv_text: str) -> None:
    database = connect(settings)
    with database.session() as session:
        lists = queries.sync_lists(session, settings.lists)
        report = import_csv(session, lists["daily"], csv_text.splitlines(keepends=True), confirmed=True)
        assert not report.errors, report.errors


def editions(settings: Settings) -> list[Edition]:
    with connect(settings).session() as session:
        return list(session.scalars(select(Edition).order_by(Edition.id)))


def test_restart_after_downtime_catches_up_exactly_once(tmp_path: Path, feed_server: FeedServer,
                                                        smtp_server: CaptureServer) -> None:
    settings = make(tmp_path, feed_server, smtp_server, "0 * * * *", "UTC")
    subscribe(settings, "email\na@example.com\n")
    database = connect(settings)
    fire = current_period("0 * * * *", "UTC", dt.datetime.now(UTC)).starts_at
    # The scheduler was down at `fire` and comes back 40 minutes later: one catch-up edition, sent.
    first = tick(database, settings, fire + dt.timedelta(minutes=40))
    again = [tick(database, settings, fire + dt.timedelta(minutes=m)) for m in (41, 42, 50)]
    assert len(first.built) == 1 and first.sent == 1
    assert all(r.built == [] and r.sent == 0 for r in again)
    assert len(editions(settings)) == 1 and len(smtp_server.messages) == 1


def test_downtime_past_the_grace_records_a_skip_once(tmp_path: Path, feed_server: FeedServer,
                                                     smtp_server: CaptureServer) -> None:
    settings = make(tmp_path, feed_server, smtp_server, "0 7 * * *", "UTC")
    settings.schedule.grace_hours = 2
    subscribe(settings, "email\na@example.com\n")
    database = connect(settings)
    fire = current_period("0 7 * * *", "UTC", dt.datetime.now(UTC)).starts_at
    late = tick(database, settings, fire + dt.timedelta(hours=3))
    later = tick(database, settings, fire + dt.timedelta(hours=4))
    assert late.built == [] and "past the 2.0 h grace" in late.skipped[0]["reason"]
    assert later.skipped == [] and later.built == []
    (edition,) = editions(settings)
    assert edition.status == "skipped" and "grace" in edition.skip_reason
    assert smtp_server.messages == []


def test_thin_edition_is_skipped_with_a_reason(tmp_path: Path, feed_server: FeedServer, smtp_server: CaptureServer) -> None:
    settings = make(tmp_path, feed_server, smtp_server, "0 7 * * *", "UTC", "min_stories = 50\n")
    subscribe(settings, "email\na@example.com\n")
    fire = current_period("0 7 * * *", "UTC", dt.datetime.now(UTC)).starts_at
    report = tick(connect(settings), settings, fire + dt.timedelta(minutes=1))
    (edition,) = editions(settings)
    assert report.built[0]["status"] == "skipped" and "needs 50" in edition.skip_reason
    assert smtp_server.messages == []


@pytest.mark.parametrize("zone, schedule, start", [
    ("Europe/Berlin", "30 2 * * *", "2027-03-27T00:00:00+00:00"),   # 02:30 does not exist on 2027-03-28
    ("Europe/Berlin", "30 2 * * *", "2026-10-24T00:00:00+00:00"),   # 02:30 happens twice on 2026-10-25
    ("America/New_York", "30 1 * * *", "2027-03-13T00:00:00+00:00"),
    ("America/New_York", "30 1 * * *", "2026-10-31T00:00:00+00:00"),  # 01:30 twice on 2026-11-01
])
def test_dst_days_give_one_edition_per_local_day(tmp_path: Path, feed_server: FeedServer, smtp_server: CaptureServer,
                                                 zone: str, schedule: str, start: str) -> None:
    settings = make(tmp_path, feed_server, smtp_server, schedule, zone)
    database = connect(settings)
    now = at(start)
    while now < at(start) + dt.timedelta(days=3):
        tick(database, settings, now, send=False)
        now += dt.timedelta(minutes=15)
    # The period current at the start fired the day before: recorded as missed (past the grace), not built.
    built = [e for e in editions(settings) if "grace" not in e.skip_reason]
    days = Counter(dt.datetime.fromisoformat(e.period).date() for e in built)
    assert len(days) == 3 and set(days.values()) == {1}, days


ZONES = ["Pacific/Kiritimati", "Pacific/Chatham", "Pacific/Auckland", "Australia/Sydney", "Australia/Adelaide",
         "Asia/Tokyo", "Asia/Seoul", "Asia/Shanghai", "Asia/Bangkok", "Asia/Kathmandu", "Asia/Kolkata",
         "Asia/Karachi", "Asia/Dubai", "Asia/Tehran", "Europe/Moscow", "Europe/Berlin", "Europe/London",
         "Atlantic/Azores", "America/Sao_Paulo", "America/St_Johns", "America/New_York", "America/Chicago",
         "America/Denver", "America/Los_Angeles", "America/Anchorage", "Pacific/Marquesas", "Pacific/Honolulu",
         "Pacific/Pago_Pago"]


def test_subscribers_in_many_zones_get_it_at_their_local_hour_once(tmp_path: Path, feed_server: FeedServer,
                                                                   smtp_server: CaptureServer) -> None:
    settings = make(tmp_path, feed_server, smtp_server, "0 0 * * *", "UTC")
    rows = "".join(f"s{i}@example.com,{zone},7\n" for i, zone in enumerate(ZONES))
    subscribe(settings, "email,timezone,send_hour\n" + rows)
    database = connect(settings)
    fire = current_period("0 0 * * *", "UTC", dt.datetime.now(UTC)).starts_at
    now = fire + dt.timedelta(minutes=1)
    while now < fire + dt.timedelta(hours=26):
        tick(database, settings, now)
        now += dt.timedelta(minutes=15)
    assert sorted(r.rcpt_tos[0] for r in smtp_server.messages) == sorted(f"s{i}@example.com" for i in range(len(ZONES)))
    with database.session() as session:
        deliveries = list(session.scalars(select(Delivery)))
        assert len({d.edition_id for d in deliveries}) == 1
        for d in deliveries:
            zone = ZONES[int(d.subscriber.email[1:].split("@")[0])]
            local = d.sent_at.astimezone(ZoneInfo(zone))
            assert d.state == DeliveryState.sent
            assert (local.hour, local.minute // 15) == (7, 0), (zone, local)


def test_weekly_subscribers_get_one_weekly_edition_on_their_day(tmp_path: Path, feed_server: FeedServer,
                                                                smtp_server: CaptureServer) -> None:
    settings = make(tmp_path, feed_server, smtp_server, "0 6 * * *", "UTC")
    now = dt.datetime.now(UTC)
    period = current_period("0 6 * * *", "UTC", now)
    today = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][period.starts_at.weekday()]
    other = "sun" if today != "sun" else "mon"
    subscribe(settings, "email,frequency,weekly_day\n"
                        "daily@example.com,daily,\n"
                        f"weekly@example.com,weekly,{today}\n"
                        f"otherday@example.com,weekly,{other}\n")
    database = connect(settings)
    report = tick(database, settings, period.starts_at + dt.timedelta(minutes=5))
    kinds = sorted(b["kind"] for b in report.built)
    assert kinds == ["daily", "weekly"]
    got = {r.rcpt_tos[0]: r.parse() for r in smtp_server.messages}
    assert set(got) == {"daily@example.com", "weekly@example.com"}
    with database.session() as session:
        by_kind = {e.kind: e for e in session.scalars(select(Edition))}
        assert by_kind["weekly"].period == "W:" + by_kind["daily"].period
        sent_to = {d.subscriber.email: d.edition.kind for d in session.scalars(select(Delivery))}
    assert sent_to == {"daily@example.com": "daily", "weekly@example.com": "weekly"}


def test_two_schedulers_on_postgresql_build_one_edition(tmp_path: Path, feed_server: FeedServer,
                                                        smtp_server: CaptureServer, pg_url: str) -> None:
    import threading
    import time

    from digest.schedule.leader import Leadership

    settings = make(tmp_path, feed_server, smtp_server, "0 * * * *", "UTC")
    settings.database.url = pg_url
    subscribe(settings, "email\na@example.com\nb@example.com\n")
    fire = current_period("0 * * * *", "UTC", dt.datetime.now(UTC)).starts_at
    reports, errors = [], []
    barrier = threading.Barrier(2)

    def scheduler() -> None:
        database = connect(settings)
        barrier.wait()
        try:
            reports.append(tick(database, settings, fire + dt.timedelta(minutes=1), send=True))
        except Exception as exc:  # a racing scheduler must not crash
            import traceback
            errors.append("".join(traceback.format_exception(exc)))

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [], errors[0] if errors else ''
    assert len(editions(settings)) == 1
    assert sum(r.sent for r in reports) == 2 and len(smtp_server.messages) == 2

    # Leadership: one holder at a time; when the leader's connection dies, a standby takes over.
    first, second = Leadership(connect(settings)), Leadership(connect(settings))
    assert first.acquire() and first.acquire()
    assert not second.acquire()
    first._conn.invalidate()  # the leader process dies: its connection (and the lock) go away
    first._conn = None
    # The server frees the lock once it notices the dead connection; a standby retries on every tick.
    deadline = time.monotonic() + 10
    while not second.acquire() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert second.acquire()
    second.release()
