"""kill -9 worker processes mid-send on PostgreSQL: nobody is lost, duplicates stay within the policy's bound."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dispatch_support import RecordingServer, make_settings, seed
from sqlalchemy import func, select

from digest.db.deliveries import OPEN_STATES
from digest.db.models import Delivery, DeliveryState, Edition, utcnow
from digest.db.session import open_database
from digest.dispatch.status import edition_status

RECIPIENTS = 2000
KILLS = 4


def start_worker(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "digest", "--config", str(config), "worker", "--poll", "0.2"],
                                stdout=out, stderr=out, cwd=config.parent)


def counts(database: object) -> dict[str, int]:
    with database.session() as session:  # type: ignore[attr-defined]
        rows = session.execute(select(Delivery.state, func.count()).group_by(Delivery.state))
        return {str(state): n for state, n in rows}


@pytest.mark.parametrize("policy", ["resend", "skip"])
def test_killed_workers_lose_nobody(tmp_path: Path, pg_url: str, policy: str) -> None:
    rng = random.Random(7 if policy == "resend" else 11)
    with RecordingServer() as server:
        # One connection per process: a kill can leave at most one message ambiguous.
        config, settings = make_settings(tmp_path, pg_url, server.port, f"""
            [smtp]
            max_connections = 1
            rate_per_second = 100  # the send lasts long enough for every planned kill, however fast the machine
            [dispatch]
            lease_seconds = 5
            batch_size = 50
            ambiguous = "{policy}"
            """)
        database = open_database(settings.database.url)
        emails = [f"reader{i}@d{i % 7}.example" for i in range(RECIPIENTS)]
        edition_id = seed(database, emails)
        log = tmp_path / "workers.log"
        # One kill lands inside the ambiguous window for sure: while the server sits on a message after DATA.
        server.handler.stall_seconds = 3.0
        server.handler.slow_accept.add(emails[300])
        workers = [start_worker(config, log) for _ in range(3)]
        kills = 0
        try:
            assert server.handler.slow_accept_started.wait(30)
            with database.session() as session:
                holder = session.scalar(select(Delivery.worker_id).where(Delivery.state == DeliveryState.transmitting,
                                                                         Delivery.subscriber.has(email=emails[300])))
            victim = next(w for w in workers if holder and holder.endswith(f":{w.pid}"))
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait()
            workers.remove(victim)
            workers.append(start_worker(config, log))
            kills += 1
            while kills < KILLS:
                time.sleep(rng.uniform(0.4, 1.5))
                sent = counts(database).get("sent", 0)
                if sent >= RECIPIENTS * 0.9:
                    break
                victim = workers.pop(rng.randrange(len(workers)))
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait()
                kills += 1
                workers.append(start_worker(config, log))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                open_rows = sum(counts(database).get(s.value, 0) for s in OPEN_STATES)
                if open_rows == 0:
                    break
                time.sleep(0.3)
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            for w in workers:
                try:
                    w.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    w.kill()
        final = counts(database)
        assert kills >= 1, "the send finished before any worker was killed; raise RECIPIENTS"
        assert sum(final.get(s.value, 0) for s in OPEN_STATES) == 0, (final, log.read_text()[-3000:])
        received = server.handler.received()
        duplicates = sum(n - 1 for n in received.values() if n > 1)
        with database.session() as session:
            status = edition_status(session, session.get(Edition, edition_id), utcnow())
        skipped = {row["email"] for row in status["skipped"]}  # type: ignore[union-attr]
        lost = [e for e in emails if received[e] == 0 and e not in skipped]
        print(f"policy={policy} kills={kills} duplicates={duplicates} skipped={len(skipped)} final={final}")
        assert lost == [], f"{len(lost)} subscribers lost"
        if policy == "resend":
            assert duplicates <= kills, f"{duplicates} duplicates after {kills} kills"
            assert received[emails[300]] == 2  # delivered before the kill, resent with the same Message-ID
            assert len({r.message_id for r in server.handler.records if r.rcpt == emails[300]}) == 1
            assert final == {"sent": RECIPIENTS}
        else:
            assert duplicates == 0
            assert emails[300] in skipped and received[emails[300]] == 1  # reported, not resent
            assert len(skipped) <= kills and final.get("skipped", 0) == len(skipped)
            assert final.get("sent", 0) + len(skipped) == RECIPIENTS
            assert all("ambiguous" in row["reason"] for row in status["skipped"])  # type: ignore[union-attr]
