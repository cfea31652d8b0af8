"""The data model. Unique keys make every repeat harmless:

article (source, guid) · edition (list, period) · delivery (edition, subscriber)
· subscription (list, subscriber) · edition variant (edition, variant key).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (JSON, DateTime, Enum, Float, ForeignKey, Index, Integer, LargeBinary, String, Text,
                        UniqueConstraint, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; use an aware UTC datetime")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON, list[int]: JSON}


class Source(Base):
    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    url: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(20), default="auto")
    topics: Mapped[list[str]] = mapped_column(default=list)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    enabled: Mapped[bool] = mapped_column(default=True)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    last_success_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[dt.datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    items_seen: Mapped[int] = mapped_column(default=0)
    retired_at: Mapped[dt.datetime | None]
    # The URL as last configured: a 301 may move `url` on, and only a change in the config moves it back.
    config_url: Mapped[str | None] = mapped_column(Text)
    # Retry-After from a 429/503 answer: the source is not asked again before this.
    next_fetch_at: Mapped[dt.datetime | None]
    last_status: Mapped[int | None]


class Story(Base):
    __tablename__ = "stories"

    id: Mapped[int] = mapped_column(primary_key=True)
    headline: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text, default="")
    topics: Mapped[list[str]] = mapped_column(default=list)
    first_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    related_story_ids: Mapped[list[int]] = mapped_column(default=list)

    articles: Mapped[list[Article]] = relationship(back_populates="story", order_by="Article.published_at")


class Article(Base):
    __tablename__ = "articles"
    __table_args__ = (UniqueConstraint("source_id", "guid", name="uq_article_source_guid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    guid: Mapped[str] = mapped_column(String(1000))
    url: Mapped[str] = mapped_column(Text, default="")
    canonical_url: Mapped[str] = mapped_column(String(2000), default="", index=True)
    title: Mapped[str] = mapped_column(Text, default="")
    summary_html: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str] = mapped_column(String(20), default="")
    image_url: Mapped[str] = mapped_column(Text, default="")
    topics: Mapped[list[str]] = mapped_column(default=list)
    published_at: Mapped[dt.datetime] = mapped_column(index=True)
    fetched_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    story_id: Mapped[int | None] = mapped_column(ForeignKey("stories.id", ondelete="SET NULL"), index=True)
    # MinHash signature of the text (see gather/dedupe.py); None when the text is too short to compare.
    fingerprint: Mapped[bytes | None] = mapped_column(LargeBinary)

    source: Mapped[Source] = relationship()
    story: Mapped[Story | None] = relationship(back_populates="articles")
    sightings: Mapped[list[ArticleSighting]] = relationship(back_populates="article", order_by="ArticleSighting.seen_at",
                                                            cascade="all, delete-orphan", passive_deletes=True)


class ArticleSighting(Base):
    """One source carrying one article: the origin, and every syndicated or re-posted copy deduped into it."""

    __tablename__ = "article_sightings"
    __table_args__ = (
        UniqueConstraint("article_id", "source_id", name="uq_sighting_article_source"),
        Index("ix_sighting_source_guid", "source_id", "guid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    guid: Mapped[str] = mapped_column(String(1000))
    url: Mapped[str] = mapped_column(Text, default="")
    seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    how: Mapped[str] = mapped_column(String(20), default="origin")  # origin | url | text

    article: Mapped[Article] = relationship(back_populates="sightings")
    source: Mapped[Source] = relationship()


class MailingList(Base):
    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(Text)
    from_address: Mapped[str] = mapped_column(Text)
    schedule: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64))
    double_opt_in: Mapped[bool] = mapped_column(default=True)
    max_stories: Mapped[int] = mapped_column(default=10)
    topics: Mapped[list[str]] = mapped_column(default=list)


class Subscriber(Base):
    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(Text, default="")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    send_hour: Mapped[int | None]
    locale: Mapped[str] = mapped_column(String(20), default="en")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SubscriptionStatus(enum.StrEnum):
    pending = "pending"
    confirmed = "confirmed"
    unsubscribed = "unsubscribed"
    # Chosen in the preference centre: kept, but not enqueued (enqueue takes only confirmed rows) until resumed.
    paused = "paused"


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("list_id", "subscriber_id", name="uq_subscription_list_subscriber"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    status: Mapped[SubscriptionStatus] = mapped_column(Enum(SubscriptionStatus, native_enum=False, length=20))
    topics: Mapped[list[str]] = mapped_column(default=list)
    # Subscribers with the same topic choice share one compiled variant; '' means every topic.
    topics_key: Mapped[str] = mapped_column(String(64), default="")
    # "daily": every edition of the list; "weekly": one edition a week, on weekly_day (0 = Monday).
    frequency: Mapped[str] = mapped_column(String(10), default="daily", server_default="daily")
    weekly_day: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[dt.datetime | None]
    unsubscribed_at: Mapped[dt.datetime | None]
    consent_source: Mapped[str] = mapped_column(Text, default="")
    paused_at: Mapped[dt.datetime | None]

    subscriber: Mapped[Subscriber] = relationship()
    mailing_list: Mapped[MailingList] = relationship()


class Edition(Base):
    __tablename__ = "editions"
    __table_args__ = (UniqueConstraint("list_id", "period", name="uq_edition_list_period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(10), default="daily", server_default="daily")  # daily | weekly
    status: Mapped[str] = mapped_column(String(20), default="building")  # building|ready|skipped|sending|done|paused|cancelled
    subject: Mapped[str] = mapped_column(Text, default="")
    story_ids: Mapped[list[int]] = mapped_column(default=list)
    skip_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    mailing_list: Mapped[MailingList] = relationship()
    variants: Mapped[list[EditionVariant]] = relationship(back_populates="edition")


class EditionVariant(Base):
    """One compiled body per (edition, topic choice); recipients only fill placeholders."""

    __tablename__ = "edition_variants"
    __table_args__ = (UniqueConstraint("edition_id", "variant_key", name="uq_variant_edition_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"))
    variant_key: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    placeholder_token: Mapped[str] = mapped_column(String(64))
    story_ids: Mapped[list[int]] = mapped_column(default=list)

    edition: Mapped[Edition] = relationship(back_populates="variants")


# Partial-index predicates of `deliveries` (see `Delivery`); queries repeat them verbatim.
DUE_PREDICATE = "state IN ('queued', 'deferred')"
HELD_PREDICATE = "state IN ('claimed', 'transmitting')"


class DeliveryState(enum.StrEnum):
    queued = "queued"
    claimed = "claimed"
    transmitting = "transmitting"
    sent = "sent"
    deferred = "deferred"
    failed = "failed"
    suppressed = "suppressed"
    skipped = "skipped"
    cancelled = "cancelled"


class Delivery(Base):
    """The ledger and the queue.

    No foreign keys: a per-row FK check costs PostgreSQL more than the insert itself on a million-row
    enqueue, and nothing but digest writes here. Deleting a subscriber, an edition or a variant deletes
    its deliveries explicitly (`digest.db.deliveries.delete_for_*`). The partial indexes hold only the rows
    their queries look for: the due queue in claim order and the rows in a worker's hands (none by worker
    alone: every update by worker also names the row; none by Message-ID: it carries the row's id).
    Their predicates use literal states: a query matches them by repeating the same term (SQLite's rule).
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("edition_id", "subscriber_id", name="uq_delivery_edition_subscriber"),
        Index("ix_delivery_due", "next_attempt_at", "id", sqlite_where=text(DUE_PREDICATE),
              postgresql_where=text(DUE_PREDICATE)),
        Index("ix_delivery_lease", "lease_until", sqlite_where=text(HELD_PREDICATE),
              postgresql_where=text(HELD_PREDICATE)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(Integer)
    subscriber_id: Mapped[int] = mapped_column(Integer)
    variant_id: Mapped[int] = mapped_column(Integer)
    state: Mapped[DeliveryState] = mapped_column(Enum(DeliveryState, native_enum=False, length=20), default=DeliveryState.queued)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[dt.datetime | None]
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_reply: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # A DSN or complaint that came back later for this delivery (VERP): hard | soft | complaint.
    bounce_kind: Mapped[str | None] = mapped_column(String(20))
    bounced_at: Mapped[dt.datetime | None]

    subscriber: Mapped[Subscriber] = relationship(primaryjoin="foreign(Delivery.subscriber_id) == Subscriber.id",
                                                  viewonly=True)
    edition: Mapped[Edition] = relationship(primaryjoin="foreign(Delivery.edition_id) == Edition.id", viewonly=True)


class Suppression(Base):
    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(20), default="admin")  # admin | hard_bounce | soft_bounce | complaint


class BounceScore(Base):
    """Per address: hard bounces counted, soft bounces as a decaying score; thresholds turn them into suppression."""

    __tablename__ = "bounce_scores"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    hard_count: Mapped[int] = mapped_column(default=0)
    soft_count: Mapped[int] = mapped_column(default=0)
    soft_score: Mapped[float] = mapped_column(Float, default=0.0)
    last_bounce_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_reason: Mapped[str] = mapped_column(Text, default="")


class Event(Base):
    """Append-only audit trail: consent, unsubscribes, bounces, skipped editions."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id", ondelete="SET NULL"))
    edition_id: Mapped[int | None] = mapped_column(ForeignKey("editions.id", ondelete="SET NULL"))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Consent(Base):
    """Proof of consent, kept per subscriber and list: when, from where, how, and which wording they agreed to."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    list_id: Mapped[int | None] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(20))  # requested | confirmed | imported | preferences | withdrawn
    ip: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[str] = mapped_column(Text, default="")
    wording_version: Mapped[str] = mapped_column(String(40), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AdminUser(Base):
    """A person who may use the admin UI; the password is an argon2 hash."""

    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(10), default="viewer")  # admin | viewer
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[dt.datetime | None]
    last_login_at: Mapped[dt.datetime | None]
    # Part of every session cookie: bumping it (logout, password change) ends all of the user's sessions.
    session_epoch: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A bearer token for /api; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(10), default="viewer")  # admin | viewer
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class OutboxMail(Base):
    """A transactional mail (the double opt-in confirm) waiting to go out.

    Written in the same transaction as the sign-up it belongs to, so a crash can delay the mail but never lose
    it; a mailer process sends it and deletes the row. Never held while the web request answers.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "failed_at", "not_before"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="confirm")
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    not_before: Mapped[dt.datetime] = mapped_column(default=utcnow)
    claimed_until: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    failed_at: Mapped[dt.datetime | None]


class RateCount(Base):
    """Events per key and fixed window, shared by every web process (keys are hashed: no addresses kept here)."""

    __tablename__ = "rate_counts"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[int] = mapped_column(Integer, primary_key=True)  # unix seconds, a multiple of the window
    count: Mapped[int] = mapped_column(default=0)
