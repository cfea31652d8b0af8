"""Operations on a send: pause, resume, cancel, retry-failed, status; two workers never share a row."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from click.testing import CliRunner
from dispatch_support import RecordingServer, make_settings, seed
from sqlalchemy import select, update

from digest.cli import cli
from digest.db import deliveries as ledger
from digest.db import ledger_stats
from digest.db.models import Delivery, DeliveryState, utcnow
from digest.db.session import open_database
from digest.dispatch.worker import Dispatcher


def test_pause_stops_claims_resume_continues_without_repeats_cancel_ends(tmp_path: Path) -> None:
    with RecordingServer() as server:
        config, settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'd.db'}", server.port, """
            [smtp]
            max_connections = 2
            rate_per_second = 50
            [dispatch]
            batch_size = 10
            """)
        database = open_database(settings.database.url)
        emails = [f"p{i}@x{i % 3}.example" for i in range(60)]
        edition_id = seed(database, emails)
        paused = threading.Event()

        def pause_after_some(report: object) -> None:
            if getattr(report, "sent") >= 15 and not paused.is_set():
                paused.set()
                with database.session() as session:
                    ledger.set_edition_state(session, edition_id, "pause")

        first = Dispatcher(database, settings).run(progress=pause_after_some)
        sent_before = len(server.handler.records)
        assert 15 <= sent_before < 60 and first.sent == sent_before
        assert Dispatcher(database, settings).run().sent == 0  # paused: nothing is claimed
        with database.session() as session:
            assert ledger_stats.counts_by_state(session, edition_id).get("claimed", 0) == 0

        runner = CliRunner()
        result = runner.invoke(cli, ["--config", str(config), "edition", "resume", str(edition_id), "--json"])
        assert result.exit_code == 0 and json.loads(result.output)["status"] == "ready"
        Dispatcher(database, settings).run()
        received = server.handler.received()
        assert sorted(received) == sorted(emails) and set(received.values()) == {1}

        status = json.loads(runner.invoke(cli, ["--config", str(config), "status", str(edition_id), "--json"]).output)
        edition = status["editions"][0]
        assert edition["deliveries"] == {"sent": 60} and edition["remaining"] == 0 and edition["rate_per_second"] > 0

        # cancel: a new edition whose rows never go out
        other = seed(database, [f"c{i}@x.example" for i in range(5)])
        result = runner.invoke(cli, ["--config", str(config), "edition", "cancel", str(other)])
        assert result.exit_code == 0 and "cancelled (5 deliveries moved)" in result.output
        assert Dispatcher(database, settings).run().sent == 0
        result = runner.invoke(cli, ["--config", str(config), "edition", "resume", str(other)])
        assert result.exit_code == 1 and "cancelled" in str(result.exception)


def test_a_pause_drops_the_rows_a_worker_still_holds_without_opening_an_envelope_for_each(tmp_path: Path) -> None:
    """Pausing re-queues claimed rows; the worker that held them learns it from the first lost claim and drops the
    rest of that edition from its queue, instead of a MAIL FROM and RCPT TO (then RSET) per row."""
    with RecordingServer() as server:
        _, settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'd.db'}", server.port, """
            [smtp]
            max_connections = 2
            [dispatch]
            batch_size = 300
            """)
        database = open_database(settings.database.url)
        edition_id = seed(database, [f"q{i}@x{i % 3}.example" for i in range(600)])
        other_id = seed(database, [f"o{i}@y.example" for i in range(20)])  # another edition keeps its rows
        paused = threading.Event()

        def pause_after_some(report: object) -> None:
            if getattr(report, "sent") >= 10 and not paused.is_set():
                paused.set()
                with database.session() as session:
                    ledger.set_edition_state(session, edition_id, "pause")

        report = Dispatcher(database, settings).run(progress=pause_after_some)
        with database.session() as session:
            counts = ledger_stats.counts_by_state(session, edition_id)
            other = ledger_stats.counts_by_state(session, other_id)
    assert paused.is_set() and other == {"sent": 20}
    sent = counts["sent"]
    assert sent + counts["queued"] == 600 and report.sent == sent + 20
    assert report.lost_claims >= 100  # the rows it held when the pause came
    assert server.handler.envelopes - report.sent <= 8, (server.handler.envelopes, report.as_dict())


def test_retry_failed_touches_only_failed_rows(tmp_path: Path) -> None:
    with RecordingServer() as server:
        config, settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'd.db'}", server.port)
        database = open_database(settings.database.url)
        server.handler.perm_rcpt["bad@x.example"] = "550 5.7.1 blocked by policy"  # soft: not suppressed
        edition_id = seed(database, ["ok@x.example", "bad@x.example", "later@x.example"])
        with database.session() as session:
            session.execute(update(Delivery).where(Delivery.subscriber.has(email="later@x.example"))
                            .values(state=DeliveryState.deferred, next_attempt_at=utcnow().replace(year=2100)))
        Dispatcher(database, settings).run()
        server.handler.perm_rcpt.clear()
        result = CliRunner().invoke(cli, ["--config", str(config), "send", "--retry-failed", "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["requeued"] == 1 and report["sent"] == 1
        assert server.handler.received() == {"ok@x.example": 1, "bad@x.example": 1}
        with database.session() as session:
            counts = ledger_stats.counts_by_state(session, edition_id)
        assert counts == {"sent": 2, "deferred": 1}


def test_two_workers_on_postgresql_never_send_the_same_row(tmp_path: Path, pg_url: str) -> None:
    with RecordingServer() as server:
        _, settings = make_settings(tmp_path, pg_url, server.port, """
            [smtp]
            max_connections = 3
            [dispatch]
            batch_size = 20
            """)
        database = open_database(settings.database.url)
        emails = [f"w{i}@x{i % 5}.example" for i in range(400)]
        seed(database, emails)
        reports = []
        threads = [threading.Thread(target=lambda n=n: reports.append(
            Dispatcher(database, settings, worker_id=f"w{n}").run())) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(r.sent for r in reports) == 400 and all(r.sent > 0 for r in reports)
        assert set(server.handler.received().values()) == {1} and len(server.handler.received()) == 400
        with database.session() as session:
            assert set(session.scalars(select(Delivery.state))) == {DeliveryState.sent}
