"""Request and response shapes of the REST API (pydantic): they validate input, check output, and are the
OpenAPI schema's components, so the documentation cannot drift from what the code accepts and returns."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
SubscriptionStatusName = Literal["pending", "confirmed", "unsubscribed", "paused"]
DeliveryStateName = Literal["queued", "claimed", "transmitting", "sent", "deferred", "failed", "suppressed", "skipped",
                            "cancelled"]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Email = Annotated[str, Field(min_length=3, max_length=320)]
Id = Annotated[int, Field(ge=1, le=2**31 - 1)]
Strings = list[str]  # fields named `list` shadow the builtin inside their classes


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Query(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Error(_Out):
    error: str


class Page(_Query):
    limit: int = Field(50, ge=1, le=500, description="Most items returned")
    offset: int = Field(0, ge=0, le=10**9, description="Items skipped")


class SubscriberQuery(Page):
    q: str = Field("", max_length=200, description="Part of the address or name")
    list: Slug | None = Field(None, description="Only subscribers of this list")
    status: SubscriptionStatusName | None = Field(None, description="Only subscriptions in this state")


class EditionQuery(Page):
    list: Slug | None = Field(None, description="Only editions of this list")
    status: str | None = Field(None, max_length=20, description="Only editions in this state")


class DeliveryQuery(Page):
    edition: Id | None = Field(None, description="Only deliveries of this edition")
    state: DeliveryStateName | None = Field(None, description="Only deliveries in this state")


class LedgerQuery(_Query):
    days: int = Field(14, ge=1, le=366, description="Days back from today (UTC)")


class SuppressionQuery(Page):
    q: str = Field("", max_length=200, description="Part of the address")


class ListOut(_Out):
    slug: str
    name: str
    from_address: str
    schedule: str
    timezone: str
    double_opt_in: bool
    max_stories: int
    topics: list[str]
    counts: dict[str, int]


class SubscriptionOut(_Out):
    list: str
    status: SubscriptionStatusName
    topics: Strings
    frequency: Literal["daily", "weekly"]
    weekly_day: Weekday
    created_at: dt.datetime | None
    confirmed_at: dt.datetime | None
    unsubscribed_at: dt.datetime | None
    consent_source: str


class SubscriberOut(_Out):
    id: int
    email: str
    name: str
    timezone: str
    send_hour: int | None
    locale: str
    created_at: dt.datetime | None
    suppressed: bool
    subscriptions: list[SubscriptionOut]


class SubscriberPage(_Out):
    items: list[SubscriberOut]
    total: int
    limit: int
    offset: int


class SubscriberIn(_In):
    email: Email
    list: Slug
    name: str = Field("", max_length=200)
    timezone: str = Field("UTC", max_length=64)
    send_hour: int | None = Field(None, ge=0, le=23)
    topics: Strings = Field(default_factory=lambda: [], max_length=100)
    locale: str = Field("en", max_length=20)
    frequency: Literal["daily", "weekly"] = "daily"
    weekly_day: Weekday = "mon"
    confirmed: bool = Field(False, description="You hold consent: no confirmation mail; otherwise double opt-in")


class SubscriberPatch(_In):
    name: str | None = Field(None, max_length=200)
    timezone: str | None = Field(None, max_length=64)
    send_hour: int | None = Field(None, ge=0, le=23)
    locale: str | None = Field(None, max_length=20)


class SourceOut(_Out):
    id: int
    name: str
    url: str
    kind: str
    enabled: bool
    state: Literal["ok", "new", "failing", "retired", "disabled"]
    topics: list[str]
    last_success_at: dt.datetime | None
    last_error: str | None
    last_error_at: dt.datetime | None
    consecutive_failures: int
    items_seen: int
    retired_at: dt.datetime | None


class EditionOut(_Out):
    id: int
    list: str
    period: str
    kind: str
    status: str
    subject: str
    skip_reason: str
    story_count: int
    created_at: dt.datetime | None
    counts: dict[str, int]


class EditionActionOut(_Out):
    edition: int
    status: str
    requeued: int


class DeliveryOut(_Out):
    id: int
    edition_id: int
    email: str
    state: DeliveryStateName
    attempts: int
    last_reply: str
    message_id: str
    sent_at: dt.datetime | None
    next_attempt_at: dt.datetime | None
    bounce_kind: str | None


class DeliveryPage(_Out):
    items: list[DeliveryOut]
    limit: int
    offset: int
    counts: dict[str, int]


class LedgerDay(_Out):
    day: dt.date
    sent: int
    deferred: int
    bounced: int


class LedgerOut(_Out):
    counts: dict[str, int]
    days: list[LedgerDay]


class SuppressionOut(_Out):
    email: str
    reason: str
    kind: str
    created_at: dt.datetime | None


class SuppressionPage(_Out):
    items: list[SuppressionOut]
    total: int
    limit: int
    offset: int


class SuppressionIn(_In):
    email: Email
    reason: str = Field("added through the API", max_length=500)
