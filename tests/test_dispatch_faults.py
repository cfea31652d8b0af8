"""Dispatch against a misbehaving real SMTP server: 4xx, 5xx, dropped and stalled connections, rate limits, failover."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from dispatch_support import RecordingServer, free_port, make_settings, seed
from sqlalchemy import select

from digest.db.models import Delivery, DeliveryState, Subscriber, Suppression, utcnow
from digest.db.session import open_database
from digest.dispatch.worker import Dispatcher


class Clock:
    """Real time plus an offset the test moves forward, so retry delays pass at once."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return utcnow() + self.offset


def states(database: object) -> dict[str, DeliveryState]:
    with database.session() as session:  # type: ignore[attr-defined]
        return {d.subscriber.email: d.state for d in session.scalars(select(Delivery))}


# Under resend the mark's commit overlaps MAIL FROM and RCPT TO (marked before the envelope); under skip it
# follows RCPT TO. Attempts must count the same either way, on both backends.
@pytest.mark.parametrize("backend, policy", [("sqlite", "resend"), ("sqlite", "skip"), ("postgresql", "resend"),
                                             ("postgresql", "skip")])
def test_faulty_server_nothing_lost_4xx_retried_5xx_suppressed(tmp_path: Path, request: pytest.FixtureRequest,
                                                              backend: str, policy: str) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    with RecordingServer() as server:
        _, settings = make_settings(tmp_path, url, server.port, f"""
            [smtp]
            max_connections = 3
            timeout = 0.5
            [dispatch]
            retry_base_seconds = 60
            retry_max_seconds = 600
            throttle_seconds = 0.05
            max_attempts = 5
            ambiguous = "{policy}"
            """)
        database = open_database(settings.database.url)
        emails = [f"user{i}@d{i % 4}.example" for i in range(60)]
        h = server.handler
        h.temp_fail.update({e: 2 for e in emails[0:10]})
        h.perm_rcpt.update({e: "550 5.1.1 no such user" for e in emails[10:15]})
        h.perm_data.update({emails[15]: "554 5.1.1 mailbox gone", emails[16]: "554 5.7.1 content rejected"})
        h.drop_once.update(emails[20:23])
        h.stall_once.update(emails[23:25])
        h.throttle_once.update(emails[25:27])
        seed(database, emails)
        clock = Clock()
        dispatcher = Dispatcher(database, settings, clock=clock)
        started = time.monotonic()
        rounds = 0
        while any(s in (DeliveryState.queued, DeliveryState.deferred) for s in states(database).values()):
            dispatcher.run()
            clock.offset += dt.timedelta(seconds=700)  # every deferred row is due again
            rounds += 1
            assert rounds <= 6, states(database)
        assert time.monotonic() - started < 30, "no worker hangs past its timeouts"

        final = states(database)
        received = h.received()
        failed = set(emails[10:17])
        stalled = set(emails[23:25])  # no reply after DATA within the timeout: ambiguous
        for email in emails:
            if email in failed:
                assert final[email] == DeliveryState.failed and received[email] == 0
            elif email in stalled and policy == "skip":
                assert final[email] == DeliveryState.skipped and received[email] == 0
            else:
                assert final[email] == DeliveryState.sent and received[email] == 1, (email, final[email])
        with database.session() as session:
            suppressed = {s.email: s.kind for s in session.scalars(select(Suppression))}
            retried = session.scalar(select(Delivery).join(Delivery.subscriber).where(Delivery.state == DeliveryState.sent)
                                     .where(Delivery.attempts == 3))
            dropped = session.scalars(select(Delivery.attempts)
                                      .where(Delivery.subscriber.has(Subscriber.email.in_(emails[20:23])))).all()
            throttled = session.scalars(select(Delivery.attempts)
                                        .where(Delivery.subscriber.has(Subscriber.email.in_(emails[25:27])))).all()
        # 5.1.1 at RCPT or DATA: hard bounce, suppressed at once; 5.7.1 (content) only scores a soft bounce.
        assert suppressed == {e: "hard_bounce" for e in emails[10:16]}
        assert retried is not None  # greylisted twice, delivered on the third attempt
        assert dropped == [1, 1, 1]  # a connection lost at RCPT is our side's trouble: no attempt spent
        assert throttled == [1, 1]  # 421 at RCPT: the server pushes back, no attempt spent


def test_rate_limits_and_per_domain_limits_are_honoured(tmp_path: Path) -> None:
    with RecordingServer() as server:
        _, settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'd.db'}", server.port, """
            [smtp]
            max_connections = 4
            rate_per_second = 20
            domains."slow.example" = {concurrency = 1, rate_per_second = 4}
            """)
        database = open_database(settings.database.url)
        fast = [f"f{i}@fast{i % 3}.example" for i in range(50)]
        slow = [f"s{i}@slow.example" for i in range(8)]
        seed(database, fast + slow)
        started = time.monotonic()
        report = Dispatcher(database, settings).run()
        elapsed = time.monotonic() - started
        assert report.sent == 58
        times = sorted(r.at for r in server.handler.records)
        # The limiter admits 20 starts per second; the server stamps the end of DATA, so each connection's
        # latency jitter can move at most its one message in flight into a neighbouring window.
        for span, limit in ((1.0, 20), (2.0, 40)):
            busiest = max(sum(1 for t in times if start <= t < start + span) for start in times)
            assert busiest <= limit + 4, f"{busiest} messages in {span}s (limit {limit})"
        assert elapsed >= (58 - 20) / 20 * 0.9
        slow_times = sorted(r.at for r in server.handler.records if r.rcpt.endswith("@slow.example"))
        gaps = [b - a for a, b in zip(slow_times, slow_times[1:])]
        # 4/s to slow.example, one at a time: starts are 0.25 s apart; end-of-DATA stamps jitter a little.
        assert min(gaps) >= 0.1 and slow_times[-1] - slow_times[0] >= 7 * 0.25 * 0.9, gaps
        peers = {r.peer for r in server.handler.records}
        assert len(peers) <= 4, "connections are reused, at most max_connections"


def test_failover_server_is_used_when_the_primary_is_down(tmp_path: Path) -> None:
    with RecordingServer() as server:
        dead = free_port()
        _, settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'd.db'}", dead, f"""
            [smtp]
            failover = ["127.0.0.1:{server.port}"]
            timeout = 2
            """)
        database = open_database(settings.database.url)
        seed(database, ["a@x.example", "b@y.example"])
        report = Dispatcher(database, settings).run()
        assert report.sent == 2 and sorted(server.handler.received()) == ["a@x.example", "b@y.example"]


def test_unreachable_server_defers_without_losing_or_counting_attempts(tmp_path: Path) -> None:
    _, settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'd.db'}", free_port(), """
        [smtp]
        timeout = 1
        max_connections = 2
        [dispatch]
        throttle_seconds = 0
        """)
    database = open_database(settings.database.url)
    seed(database, ["a@x.example", "b@y.example", "c@z.example"])
    report = Dispatcher(database, settings).run()
    assert report.deferred == 3 and report.sent == 0
    with database.session() as session:
        rows = list(session.scalars(select(Delivery)))
    assert all(r.state == DeliveryState.deferred and r.attempts == 0 and "connect" in r.last_reply for r in rows)


def test_a_refused_mark_after_the_data_command_delivers_nothing_and_the_next_message_goes(tmp_path: Path) -> None:
    """DATA is written before the ledger answers; when the mark is refused (claim lost) or fails, the transport
    closes the connection in the middle of DATA, which makes a real server drop the transaction."""
    from digest.dispatch.smtp import ClaimLostError, SmtpTransport

    message = b"Subject: t\r\nMessage-ID: <%s@x>\r\n\r\nbody\r\n"
    with RecordingServer() as server:
        _, settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'd.db'}", server.port)
        with SmtpTransport(settings.smtp) as transport:
            with pytest.raises(ClaimLostError):
                transport.send("news@digest.example", "lost@x.example", message % b"lost", before_data=lambda: False)

            def broken_ledger() -> bool:
                raise RuntimeError("database gone")

            with pytest.raises(RuntimeError):
                transport.send("news@digest.example", "failed@x.example", message % b"failed", before_data=broken_ledger)
            result = transport.send("news@digest.example", "kept@x.example", message % b"kept", before_data=lambda: True)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and server.handler.envelopes < 3:
            time.sleep(0.01)
    assert result.code == 250 and server.handler.envelopes == 3
    assert [(r.rcpt, r.message_id) for r in server.handler.records] == [("kept@x.example", "<kept@x>")]


def test_lines_that_start_with_a_dot_arrive_as_written_whichever_way_the_data_is_made(tmp_path: Path) -> None:
    """Dot-stuffing (RFC 5321 §4.5.2): quoted-printable soft breaks put a "." first on many lines of a digest. The
    worker makes the DATA form while building (`SmtpTransport.wire`); a caller without it gets the same."""
    from digest.dispatch.smtp import SmtpTransport

    bodies = [b".starts with a dot\r\n..two\r\nmid\r\n.\r\nlast line\r\n",  # a lone "." line must not end it
              b"Subject: x\r\n\r\nno final line break\r\n.", b"Subject: y\r\n\r\nplain\r\n"]
    with RecordingServer() as server:
        _, settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'd.db'}", server.port)
        with SmtpTransport(settings.smtp) as transport:
            for index, body in enumerate(bodies):
                transport.send("news@digest.example", f"a{index}@x.example", body)
                transport.send("news@digest.example", f"b{index}@x.example", body, wire=SmtpTransport.wire(body))
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and len(server.handler.records) < 2 * len(bodies):
            time.sleep(0.01)
    received = {r.rcpt: r.data for r in server.handler.records}
    for index, body in enumerate(bodies):
        expected = body if body.endswith(b"\r\n") else body + b"\r\n"
        assert received[f"a{index}@x.example"] == received[f"b{index}@x.example"] == expected, index
