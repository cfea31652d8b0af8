"""The delivery ledger: claims, leases, crash recovery, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from digest.db import deliveries as ledger
from digest.db import ledger_stats
from digest.db.models import (Delivery, DeliveryState, Edition, EditionVariant, MailingList, Subscriber, Subscription,
                              SubscriptionStatus, Suppression, utcnow)
from digest.db.session import Database, open_database

pytestmark = []


def seed(database: Database, recipients: int) -> int:
    """One ready edition with `recipients` queued deliveries; returns the edition id."""
    with database.session() as session:
        mailing_list = MailingList(slug="daily", name="Daily", from_address="D <d@x.example>", schedule="0 7 * * *",
                                   timezone="UTC")
        session.add(mailing_list)
        session.flush()
        edition = Edition(list_id=mailing_list.id, period="p1", status="ready", created_at=utcnow())
        session.add(edition)
        session.flush()
        variant = EditionVariant(edition_id=edition.id, variant_key=":en", subject="s", html="<p>x</p>", text="x",
                                 placeholder_token="t")
        session.add(variant)
        session.flush()
        for i in range(recipients):
            subscriber = Subscriber(email=f"r{i}@x.example")
            session.add(subscriber)
            session.flush()
            session.add(Subscription(list_id=mailing_list.id, subscriber_id=subscriber.id,
                                     status=SubscriptionStatus.confirmed))
            session.add(Delivery(edition_id=edition.id, subscriber_id=subscriber.id, variant_id=variant.id))
        return edition.id


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        return open_database(f"sqlite:///{tmp_path / 'ledger.db'}")
    return open_database(request.getfixturevalue("pg_url"))


def test_claims_do_not_overlap_and_expired_claims_come_back(database: Database) -> None:
    seed(database, 10)
    now = utcnow()
    with database.session() as session:
        first = [d.id for d in ledger.claim_batch(session, "w1", now, lease_seconds=60, limit=6)]
    with database.session() as session:
        second = [d.id for d in ledger.claim_batch(session, "w2", now, lease_seconds=60, limit=6)]
    assert len(first) == 6 and len(second) == 4 and not set(first) & set(second)
    with database.session() as session:
        assert ledger.claim_batch(session, "w3", now, lease_seconds=60, limit=6) == []
    # w1 dies: after its lease, its claims are due again.
    later = now + dt.timedelta(seconds=61)
    with database.session() as session:
        third = [d.id for d in ledger.claim_batch(session, "w3", later, lease_seconds=60, limit=20)]
    assert sorted(third) == sorted(first + second)


def mark(database: Database, delivery_id: int, worker_id: str, now: dt.datetime) -> bool:
    """The send path's `transmitting` mark (its own ledger connection and commit); False: the claim was lost."""
    writer = ledger.LedgerWriter(database.engine, worker_id)
    try:
        return writer.transmitting(delivery_id, "<m@x>", now + dt.timedelta(seconds=60))
    finally:
        writer.close()


@pytest.mark.parametrize("policy, expected", [("resend", DeliveryState.queued), ("skip", DeliveryState.skipped)])
def test_rows_caught_mid_data_follow_the_ambiguity_policy(database: Database, policy: str,
                                                         expected: DeliveryState) -> None:
    seed(database, 2)
    now = utcnow()
    with database.session() as session:
        rows = ledger.claim_batch(session, "w1", now, lease_seconds=60, limit=2)
        ids = [r.id for r in rows]
    assert mark(database, ids[0], "w1", now)
    # The worker is killed here. Before the lease expires nothing changes.
    with database.session() as session:
        assert ledger.recover_ambiguous(session, now + dt.timedelta(seconds=30), policy) == 0
    with database.session() as session:
        assert ledger.recover_ambiguous(session, now + dt.timedelta(seconds=61), policy) == 1
    with database.session() as session:
        row = session.get(Delivery, ids[0])
        assert row.state == expected and "ambiguous" in row.last_reply
        assert row.message_id == "<m@x>"  # a resend reuses the Message-ID


def test_a_lost_claim_cannot_be_marked_transmitting(database: Database) -> None:
    seed(database, 1)
    now = utcnow()
    with database.session() as session:
        (row,) = ledger.claim_batch(session, "slow", now, lease_seconds=60, limit=1)
    with database.session() as session:
        ledger.claim_batch(session, "fast", now + dt.timedelta(seconds=61), lease_seconds=60, limit=1)
    assert not mark(database, row.id, "slow", now)
    assert mark(database, row.id, "fast", now)


def test_paused_editions_are_not_claimed(database: Database) -> None:
    edition_id = seed(database, 3)
    with database.session() as session:
        session.get(Edition, edition_id).status = "paused"
    with database.session() as session:
        assert ledger.claim_batch(session, "w", utcnow(), lease_seconds=60, limit=10) == []
        assert session.scalars(select(Delivery.state)).all() == [DeliveryState.queued] * 3


def test_a_live_workers_renewed_lease_is_not_taken(database: Database) -> None:
    seed(database, 2)
    now = utcnow()
    with database.session() as session:
        ids = [d.id for d in ledger.claim_batch(session, "alive", now, lease_seconds=60, limit=2)]
    with database.session() as session:  # heartbeat at +50 s for the row still in hand
        assert ledger.renew_leases(session, "alive", now + dt.timedelta(seconds=50), 60, ids[:1]) == 1
    with database.session() as session:
        taken = [d.id for d in ledger.claim_batch(session, "other", now + dt.timedelta(seconds=70), lease_seconds=60,
                                                  limit=5)]
    assert taken == ids[1:]


def test_pause_returns_claims_and_cancel_closes_open_rows(database: Database) -> None:
    edition_id = seed(database, 4)
    now = utcnow()
    with database.session() as session:
        claimed = ledger.claim_batch(session, "w", now, lease_seconds=60, limit=2)
    with database.session() as session:
        assert ledger.set_edition_state(session, edition_id, "pause") == {"edition": edition_id, "status": "paused", "rows": 2}
    with database.session() as session:  # the worker that held them cannot start DATA any more
        assert not mark(database, claimed[0].id, "w", now)
        assert ledger_stats.counts_by_state(session, edition_id) == {"queued": 4}
    with database.session() as session:
        ledger.set_edition_state(session, edition_id, "resume")
        ledger.set_edition_state(session, edition_id, "cancel")
    with database.session() as session:
        assert ledger_stats.counts_by_state(session, edition_id) == {"cancelled": 4}
        assert ledger.claim_batch(session, "w", now, lease_seconds=60, limit=5) == []


def test_the_claim_reads_the_due_index_in_order_without_sorting(tmp_path: Path) -> None:
    """SQLite only uses a partial index when the query repeats its predicate: check the plans stay so."""
    database = open_database(f"sqlite:///{tmp_path / 'plan.db'}")
    seed(database, 3)
    now = utcnow()
    with database.engine.connect() as conn:
        for sql, index in ((ledger._DUE_IDS, "ix_delivery_due"), (ledger._EXPIRED_IDS, "ix_delivery_lease")):
            plan = " | ".join(str(row[3]) for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + sql.replace(":now", "?").replace(":editions", "(?)").replace(":limit", "?"),
                (now.isoformat(), 1, 100)))
            assert index in plan and "TEMP B-TREE" not in plan, plan
        ambiguous = " | ".join(str(row[3]) for row in conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN SELECT id FROM deliveries {ledger._AMBIGUOUS.replace(':now', '?')}", (now.isoformat(),)))
        assert "ix_delivery_lease" in ambiguous, ambiguous


def test_the_claim_on_postgresql_keeps_to_indexes_whatever_the_statistics(database: Database) -> None:
    """The pinned claim, before any ANALYZE (as right after a large import or enqueue): the due index walked in
    order, each claimed row's subscriber looked up by key, no hash join, and no JIT compiler (the cost of the
    disabled final sort would otherwise call it in: 0.26 s per claim)."""
    if database.is_sqlite:
        pytest.skip("SQLite has its own plan test above")
    from sqlalchemy import bindparam, text

    seed(database, 300)
    params = {"now": utcnow(), "lease": utcnow(), "worker": "w", "limit": 100}
    with database.session() as session:
        session.execute(ledger._PIN_PLANS)
        editions = ledger.active_editions(session)
        explain = text("EXPLAIN ANALYZE " + ledger._CLAIMS[ledger._DUE_IDS, True].text).bindparams(
            ledger._at("now"), ledger._at("lease"), bindparam("editions", expanding=True))
        plan = "\n".join(row[0] for row in session.execute(explain, {**params, "editions": editions}))
        session.rollback()
    assert "ix_delivery_due" in plan and "subscribers_pkey" in plan, plan
    assert "Hash Join" not in plan and "Seq Scan on subscribers" not in plan and "JIT" not in plan, plan


def test_the_ledger_round_on_postgresql_marks_by_key_whatever_the_statistics(database: Database) -> None:
    """Statistics taken while every row was queued (autovacuum's ANALYZE after an enqueue) make the lease index
    look empty; the `transmitting` mark must still find its row by key, not read every held row per message."""
    if database.is_sqlite:
        pytest.skip("SQLite finds a row by its rowid whatever the other indexes")
    from sqlalchemy import text

    from digest.db.ledger_commit import _pg_round

    seed(database, 3000)
    with database.session() as session:
        session.execute(text("ANALYZE deliveries"))
    with database.session() as session:
        claimed = ledger.claim_batch(session, "w", utcnow(), lease_seconds=60, limit=1000)
    with database.session() as session:
        session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
        session.execute(text(f"PREPARE round_plan AS {_pg_round(('sent', 'transmit'))}"))
        plan = "\n".join(row[0] for row in session.execute(text(
            f"EXPLAIN EXECUTE round_plan (now(), '250 ok', {claimed[0].id}, 'w', '<m@x>', now(), {claimed[1].id}, 'w')")))
        session.execute(text("DEALLOCATE round_plan"))
        session.rollback()
    assert plan.count("deliveries_pkey") == 2 and "ix_delivery_lease" not in plan, plan


def test_claims_come_in_due_order_with_address_and_suppression(database: Database) -> None:
    edition_id = seed(database, 5)
    now = utcnow()
    with database.session() as session:
        rows = session.scalars(select(Delivery).where(Delivery.edition_id == edition_id).order_by(Delivery.id)).all()
        for offset, row in zip((30, 10, 20, 0, 40), rows, strict=True):  # seconds ago
            row.next_attempt_at = now - dt.timedelta(seconds=offset)
        session.add(Suppression(email="r2@x.example", reason="test"))
    with database.session() as session:
        claimed = ledger.claim_batch(session, "w", now, lease_seconds=60, limit=10)
    assert [c.email for c in claimed] == ["r4@x.example", "r0@x.example", "r2@x.example", "r1@x.example",
                                          "r3@x.example"]
    assert [c.suppressed for c in claimed] == [False, False, True, False, False]
    with database.session() as session:
        ledger.mark_suppressed(session, [c.id for c in claimed if c.suppressed], "w")
    with database.session() as session:
        assert ledger_stats.counts_by_state(session, edition_id) == {"claimed": 4, "suppressed": 1}


def test_the_writer_commits_the_previous_outcome_with_the_next_mark(database: Database) -> None:
    """One commit per message; at any moment at most one of a connection's rows is transmitting."""
    edition_id = seed(database, 3)
    now = utcnow()
    with database.session() as session:
        ids = [c.id for c in ledger.claim_batch(session, "w", now, lease_seconds=60, limit=3)]
    writer = ledger.LedgerWriter(database.engine, "w")

    def states() -> list[str]:
        with database.session() as session:
            rows = session.execute(select(Delivery.id, Delivery.state).where(Delivery.edition_id == edition_id))
            by_id = {delivery_id: state for delivery_id, state in rows}
            return [str(by_id[i]) for i in ids]

    try:
        assert writer.transmitting(ids[0], "<a@x>", now + dt.timedelta(seconds=60))
        writer.sent(ids[0], "250 ok", now)
        assert states() == ["transmitting", "claimed", "claimed"] and writer.pending == 1  # a kill here: 1 ambiguous
        assert writer.transmitting(ids[1], "<b@x>", now + dt.timedelta(seconds=60))
        assert states() == ["sent", "transmitting", "claimed"] and writer.pending == 0
        writer.sent(ids[1], "250 ok", now)
        writer.flush()
        assert states() == ["sent", "sent", "claimed"]
        thief = ledger.LedgerWriter(database.engine, "thief")
        assert not thief.transmitting(ids[2], "<c@x>", now)  # not its claim
        thief.close()
    finally:
        writer.close()
    with database.session() as session:
        row = session.get(Delivery, ids[0])
        assert row.sent_at == now and row.last_reply == "250 ok" and row.message_id == "<a@x>" and row.attempts == 1


def test_server_replies_are_stored_as_they_came_whatever_they_hold(database: Database) -> None:
    """A reply (and a Message-ID) goes into the round's statement as a parameter: quotes, backslashes, braces,
    commas, the word NULL and non-ASCII arrive unchanged; a NUL, which PostgreSQL's text cannot hold, is dropped."""
    replies = ['250 2.0.0 Ok: queued as "A1,B2" {x}', "250 C:\\spool\\q\\ ok", "NULL", "",
               "250 accepté ✓ \x00end", '\\" ,{}']
    edition_id = seed(database, len(replies) + 1)
    now = utcnow()
    with database.session() as session:
        ids = [c.id for c in ledger.claim_batch(session, "w", now, lease_seconds=60, limit=len(replies) + 1)]
    writer = ledger.LedgerWriter(database.engine, "w")
    try:
        for index, reply in enumerate(replies):
            assert writer.transmitting(ids[index], f'<{index}"\\@x>', now + dt.timedelta(seconds=60))
            writer.sent(ids[index], reply, now)
        assert writer.transmitting(ids[-1], "<last@x>", now + dt.timedelta(seconds=60))
    finally:
        writer.close()
    with database.session() as session:
        rows = {row.id: row for row in session.scalars(select(Delivery).where(Delivery.edition_id == edition_id))}
    assert [rows[i].last_reply for i in ids[:-1]] == [reply.replace("\x00", "") for reply in replies]
    assert [rows[i].message_id for i in ids[:-1]] == [f'<{index}"\\@x>' for index in range(len(replies))]
    assert {str(rows[i].state) for i in ids[:-1]} == {"sent"} and str(rows[ids[-1]].state) == "transmitting"


def test_a_message_id_of_ours_finds_its_delivery_by_the_id_it_carries(database: Database) -> None:
    """Complaints name their original by Message-ID; there is no index on it: the id it carries finds the row,
    and the stored value must match."""
    from digest.dispatch.worker import message_id_for

    edition_id = seed(database, 2)
    with database.session() as session:
        rows = session.scalars(select(Delivery).where(Delivery.edition_id == edition_id).order_by(Delivery.id)).all()
        ours = message_id_for(rows[0], b"k" * 32, "digest.example")
        rows[0].message_id = ours
        first, second = rows[0].id, rows[1].id
    forged = ours.replace(f".{first}.", f".{second}.")  # the other row never carried this Message-ID
    with database.session() as session:
        assert ledger.delivery_for_message_id(session, ours).id == first
        assert ledger.delivery_for_message_id(session, f" {ours.strip('<>')} ").id == first
        assert ledger.delivery_for_message_id(session, forged) is None
        assert ledger.delivery_for_message_id(session, "<test.0a1b2c@digest.example>") is None
        assert ledger.delivery_for_message_id(session, ours.replace(f".{first}.", ".999999.")) is None


def test_erasing_a_subscriber_deletes_their_ledger_rows(database: Database) -> None:
    from digest.db.audience import erase_subscriber

    edition_id = seed(database, 2)
    with database.session() as session:
        victim = session.scalar(select(Subscriber.id).where(Subscriber.email == "r0@x.example"))
        assert erase_subscriber(session, victim)
    with database.session() as session:
        assert session.scalars(select(Delivery.subscriber_id).where(Delivery.edition_id == edition_id)).all() != []
        assert victim not in session.scalars(select(Delivery.subscriber_id)).all()
        assert ledger.delete_for_editions(session, [edition_id]) == 1


def test_the_writer_can_start_a_mark_and_finish_it_later(database: Database) -> None:
    """The commit is started (PostgreSQL: sent; SQLite: queued to the ledger thread) and waited for later, so it
    overlaps MAIL FROM / RCPT TO. The row is marked only once `finish_transmitting()` returned; a lost claim reads False."""
    seed(database, 3)
    now = utcnow()
    with database.session() as session:
        ids = [c.id for c in ledger.claim_batch(session, "w", now, lease_seconds=60, limit=3)]
    writer = ledger.LedgerWriter(database.engine, "w", synchronous_commit=False)
    thief = ledger.LedgerWriter(database.engine, "thief")
    try:
        writer.start_transmitting(ids[0], "<a@x>", now + dt.timedelta(seconds=60))
        assert writer.finish_transmitting()
        writer.sent(ids[0], "250 ok", now)
        writer.start_transmitting(ids[1], "<b@x>", now + dt.timedelta(seconds=60))
        writer.flush()  # an error between start and finish: flush settles the started mark first
        assert writer.pending == 0
        thief.start_transmitting(ids[2], "<c@x>", now + dt.timedelta(seconds=60))
        assert not thief.finish_transmitting()
    finally:
        writer.close()
        thief.close()
    with database.session() as session:
        rows = {d.id: d for d in session.scalars(select(Delivery).where(Delivery.id.in_(ids)))}
    assert [str(rows[i].state) for i in ids] == ["sent", "transmitting", "claimed"]
    assert rows[ids[1]].attempts == 1 and rows[ids[1]].message_id == "<b@x>"


def test_units_queued_during_a_round_go_in_the_next_and_fail_together(database: Database) -> None:
    """Units that queue while a round runs go in the next one, run by the first sender that waits; an error
    there fails each of its units (their writers keep their outcomes pending for the next commit), and the
    next round goes on."""
    import contextlib
    import threading
    import time

    from sqlalchemy import text

    seed(database, 4)
    now = utcnow()
    lease = now + dt.timedelta(seconds=60)
    with database.session() as session:
        ids = [c.id for c in ledger.claim_batch(session, "w", now, lease_seconds=60, limit=4)]
    lock = threading.Lock()
    committer = ledger.make_committer(database.engine, lock, senders=2)
    writers = [ledger.LedgerWriter(database.engine, "w", lock, committer=committer) for _ in range(2)]

    @contextlib.contextmanager
    def first_round_blocked() -> Iterator[None]:
        if database.is_sqlite:  # the round waits for the writer lock
            with lock:
                yield
            return
        with database.engine.connect() as other:  # the round waits for a row lock
            other.execute(text("SELECT 1 FROM deliveries WHERE id = :id FOR UPDATE"), {"id": ids[0]})
            yield
            other.commit()

    try:
        assert writers[1].transmitting(ids[1], "<b@x>", lease)
        writers[1].sent(ids[1], "250 ok", now)
        marked: list[bool] = []
        with first_round_blocked():
            sender = threading.Thread(target=lambda: marked.append(writers[0].transmitting(ids[0], "<a@x>", lease)))
            sender.start()
            while not committer._busy:  # its round runs (in that thread) and waits
                time.sleep(0.001)
            writers[1].start_transmitting(ids[2], "<c@x>", lease)  # queued with the broken unit below
            broken = committer.submit([("sent", ("not enough parameters",))])
        sender.join()
        assert marked == [True]
        with pytest.raises(Exception) as failed:
            writers[1].finish_transmitting()
        with pytest.raises(Exception) as also_failed:
            broken.wait()
        assert failed.value is also_failed.value  # one round, one error
        assert writers[1].pending == 1  # the `sent` of ids[1] waits for the next commit
        assert writers[1].transmitting(ids[3], "<d@x>", lease)
        assert committer.commits == 3 and committer._thread is None
        with database.session() as session:
            states = dict(session.execute(select(Delivery.id, Delivery.state).where(Delivery.id.in_(ids))).all())
        assert [str(states[i]) for i in ids] == ["transmitting", "sent", "claimed", "transmitting"]
    finally:
        for writer in writers:
            writer.close()
        committer.close()


def test_with_several_senders_a_round_starts_when_a_sender_needs_it_or_all_have_a_unit(database: Database) -> None:
    """A unit waits in the queue until its sender waits for it (or every sender has one queued), so the round
    takes the other senders' units with it."""
    import threading
    import time

    seed(database, 5)
    now = utcnow()
    lease = now + dt.timedelta(seconds=60)
    with database.session() as session:
        ids = [c.id for c in ledger.claim_batch(session, "w", now, lease_seconds=60, limit=5)]
    lock = threading.Lock()
    committer = ledger.make_committer(database.engine, lock, senders=3)
    writers = [ledger.LedgerWriter(database.engine, "w", lock, committer=committer) for _ in range(3)]
    try:
        writers[0].start_transmitting(ids[0], "<a@x>", lease)
        writers[1].start_transmitting(ids[1], "<b@x>", lease)
        time.sleep(0.05)
        assert committer.commits == 0  # two of three senders have a unit, nobody waits yet
        assert writers[1].finish_transmitting()
        assert committer.commits == 1
        assert writers[0].finish_transmitting() and committer.commits == 1  # it went in the same round
        for writer, delivery_id in zip(writers, ids[2:], strict=True):
            writer.start_transmitting(delivery_id, "<m@x>", lease)
        assert committer.commits == 2  # the third unit completed the set: its sender committed it at once
        assert all(writer.finish_transmitting() for writer in writers) and committer.commits == 2
    finally:
        for writer in writers:
            writer.close()
        committer.close()
    with database.session() as session:
        states = dict(session.execute(select(Delivery.id, Delivery.state).where(Delivery.id.in_(ids))).all())
    assert {str(states[i]) for i in ids} == {"transmitting"}


def test_senders_running_each_others_rounds_mark_every_row_once(database: Database) -> None:
    """Four sender threads, 60 marks each, with the rounds run by whichever sender waits first: every mark is
    committed, each in exactly one round, and no sender waits for ever."""
    import random
    import threading

    seed(database, 240)
    now = utcnow()
    lease = now + dt.timedelta(seconds=60)
    with database.session() as session:
        ids = [c.id for c in ledger.claim_batch(session, "w", now, lease_seconds=60, limit=240)]
    lock = threading.Lock()
    committer = ledger.make_committer(database.engine, lock, senders=4)
    results: list[list[bool]] = [[] for _ in range(4)]

    def sender(n: int) -> None:
        rng = random.Random(n)
        writer = ledger.LedgerWriter(database.engine, "w", lock, committer=committer)
        try:
            for delivery_id in ids[n::4]:
                writer.start_transmitting(delivery_id, f"<{delivery_id}@x>", lease)
                if rng.random() < 0.5:
                    threading.Event().wait(rng.random() / 1000)  # the envelope's round trips
                results[n].append(writer.finish_transmitting())
                writer.sent(delivery_id, "250 ok", now)
        finally:
            writer.close()

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    committer.close()
    assert not any(thread.is_alive() for thread in threads), "a sender waited for ever"
    assert [len(r) for r in results] == [60] * 4 and all(all(r) for r in results)
    assert committer.commits < 240 + 4  # rounds took several units (the closing flushes add one each at most)
    with database.session() as session:
        states = dict(session.execute(select(Delivery.id, Delivery.state).where(Delivery.id.in_(ids))).all())
    assert {str(state) for state in states.values()} == {"sent"} and len(states) == 240


def test_one_sender_on_postgresql_commits_from_its_own_thread(database: Database) -> None:
    """With one SMTP connection there is nothing to group: the round goes from the sender's thread (sent at
    `start_transmitting()`, collected at `finish_transmitting()`), with the same outcomes as the ledger thread."""
    if database.is_sqlite:
        pytest.skip("SQLite keeps its ledger thread for one sender (that is what overlaps its commit)")
    seed(database, 3)
    now = utcnow()
    lease = now + dt.timedelta(seconds=60)
    with database.session() as session:
        ids = [c.id for c in ledger.claim_batch(session, "w", now, lease_seconds=60, limit=3)]
    committer = ledger.make_committer(database.engine, senders=1)
    writer = ledger.LedgerWriter(database.engine, "w", committer=committer)
    try:
        writer.start_transmitting(ids[0], "<a@x>", lease)
        assert writer.finish_transmitting()
        writer.sent(ids[0], "250 ok", now)
        with pytest.raises(Exception):
            committer.submit([("sent", ("not enough parameters",))]).wait()
        assert writer.transmitting(ids[1], "<b@x>", lease)  # the connection is still good
        assert not ledger.LedgerWriter(database.engine, "thief", committer=committer).transmitting(ids[2], "<c@x>", lease)
        writer.flush()
        assert committer._thread is None and committer.commits == 3
    finally:
        writer.close()
        committer.close()
    with database.session() as session:
        states = dict(session.execute(select(Delivery.id, Delivery.state).where(Delivery.id.in_(ids))).all())
    assert [str(states[i]) for i in ids] == ["sent", "transmitting", "claimed"]
