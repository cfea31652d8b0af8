"""The delivery ledger: claims, leases, crash recovery, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from digest.db import deliveries as ledger
from digest.db.models import (Delivery, DeliveryState, Edition, EditionVariant, MailingList, Subscriber, Subscription,
                              SubscriptionStatus, utcnow)
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


@pytest.mark.parametrize("policy, expected", [("resend", DeliveryState.queued), ("skip", DeliveryState.skipped)])
def test_rows_caught_mid_data_follow_the_ambiguity_policy(database: Database, policy: str,
                                                         expected: DeliveryState) -> None:
    seed(database, 2)
    now = utcnow()
    with database.session() as session:
        rows = ledger.claim_batch(session, "w1", now, lease_seconds=60, limit=2)
        ids = [r.id for r in rows]
    with database.session() as session:
        assert ledger.mark_transmitting(session, ids[0], "w1", message_id="<m@x>", now=now, lease_seconds=60)
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
    with database.session() as session:
        assert not ledger.mark_transmitting(session, row.id, "slow", message_id="<m@x>", now=now, lease_seconds=60)
        assert ledger.mark_transmitting(session, row.id, "fast", message_id="<m@x>", now=now, lease_seconds=60)


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
        assert not ledger.mark_transmitting(session, claimed[0].id, "w", message_id="<m@x>", now=now, lease_seconds=60)
        assert ledger.counts_by_state(session, edition_id) == {"queued": 4}
    with database.session() as session:
        ledger.set_edition_state(session, edition_id, "resume")
        ledger.set_edition_state(session, edition_id, "cancel")
    with database.session() as session:
        assert ledger.counts_by_state(session, edition_id) == {"cancelled": 4}
        assert ledger.claim_batch(session, "w", now, lease_seconds=60, limit=5) == []
