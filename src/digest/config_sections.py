"""The sections of `digest.toml`: one pydantic model per table, each key with its type, default and help.

`digest.config` assembles them into `Settings` and loads them; docs/configuration.md is generated from these
declarations (scripts/gen_config_docs.py) and checked by the tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DatabaseSettings(_Section):
    url: str = Field("sqlite:///digest.db", description="SQLAlchemy URL: sqlite:///file.db or postgresql+psycopg://user@host/db")
    echo: bool = Field(False, description="Log every SQL statement (debugging only)")


class WebSettings(_Section):
    base_url: str = Field("http://127.0.0.1:8000", description="Public URL every link in an email starts with")
    secret_key: SecretStr | None = Field(None, description="HMAC key for tokens; prefer DIGEST_WEB__SECRET_KEY or secret_key_file")
    secret_key_file: Path | None = Field(None, description="File holding the secret key (`digest init` writes one)")
    host: str = Field("127.0.0.1", description="Address `digest serve` listens on")
    port: int = Field(8000, ge=1, le=65535, description="Port `digest serve` listens on")
    cookie_secure: bool | None = Field(None, description="Mark the admin session cookie Secure; unset means: when base_url is https")
    session_hours: float = Field(12, gt=0, le=24 * 30, description="An admin session ends this many hours after login")
    subscribe_per_ip_hour: int = Field(10, ge=1, description="Subscribe requests accepted from one IP address per hour")
    subscribe_per_address_day: int = Field(3, ge=1, description="Confirmation mails sent to one address per day")
    login_max_failures: int = Field(5, ge=1, description="Wrong passwords before an admin account is locked for a while")
    login_lockout_seconds: int = Field(60, ge=1, description="First lockout; it doubles with each further failure, up to a day")
    consent_version: str = Field("1", max_length=40, description="Version of the consent wording, stored with every consent record")
    consent_text: str = Field("I agree to receive this newsletter by email and can unsubscribe at any time from a link in every message.",
                              description="Consent wording shown next to the subscribe button")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// for local testing)")
        return value.rstrip("/")


class DomainLimit(_Section):
    concurrency: int = Field(0, ge=0, description="Messages in flight at once to this domain; 0 means smtp.domain_concurrency")
    rate_per_second: float = Field(0, ge=0, description="Messages per second to this domain; 0 means unlimited")


class SmtpSettings(_Section):
    host: str = Field("127.0.0.1", description="SMTP server host")
    port: int = Field(25, ge=1, le=65535, description="SMTP server port")
    starttls: bool = Field(False, description="Upgrade the connection with STARTTLS")
    ssl: bool = Field(False, description="Implicit TLS (usually port 465)")
    username: str | None = Field(None, description="AUTH user name")
    password: SecretStr | None = Field(None, description="AUTH password; prefer DIGEST_SMTP__PASSWORD or password_file")
    password_file: Path | None = Field(None, description="File holding the AUTH password")
    max_connections: int = Field(4, ge=1, le=64, description="Connections kept open to the server")
    rate_per_second: float = Field(0, ge=0, description="Global send rate limit; 0 means unlimited")
    timeout: float = Field(30, gt=0, description="Seconds to wait for the server on each command")
    helo_name: str | None = Field(None, description="Name sent in EHLO; defaults to the local host name")
    failover: list[str] = Field(default_factory=list, description='Other servers, "host:port", tried in order when the ones before are unreachable (same TLS and AUTH)')
    rate_per_hour: int = Field(0, ge=0, description="Most messages in any sliding hour, per worker process; 0 means unlimited")
    rate_per_day: int = Field(0, ge=0, description="Most messages in any sliding 24 hours, per worker process; 0 means unlimited")
    domain_concurrency: int = Field(0, ge=0, description="Most messages in flight at once to one recipient domain; 0 means only max_connections")
    domains: dict[str, DomainLimit] = Field(default_factory=dict, description='Per-domain limits, e.g. domains."gmail.com" = {concurrency = 2, rate_per_second = 5}')


class DispatchSettings(_Section):
    lease_seconds: int = Field(60, ge=5, description="A dead worker's claims come back after this many seconds")
    ambiguous: Literal["resend", "skip"] = Field("resend", description="Rows caught mid-DATA by a crash: resend (same Message-ID) or skip")
    batch_size: int = Field(1000, ge=1, le=10000, description="Deliveries claimed per batch (a worker holds up to two batches; a pause or cancel drops what it holds at its first refused row)")
    max_attempts: int = Field(8, ge=1, description="Temporary failures before a delivery is given up")
    retry_base_seconds: int = Field(300, ge=1, description="First retry delay; doubles on each attempt")
    retry_max_seconds: int = Field(86400, ge=1, description="Longest delay between retries")
    throttle_seconds: float = Field(30, ge=0, description="After a throttling reply (421, 450, 451, 452, 454) that connection or recipient domain waits this long")
    synchronous_commit: Literal["auto", "on", "off"] = Field("auto", description="PostgreSQL: synchronous_commit of the send path's ledger marks. off is safe against a worker crash, but a database-server crash can undo the last fraction of a second of marks, whose messages are then sent again; auto: off under ambiguous = resend, on under skip")


class BounceSettings(_Section):
    domain: str = Field(..., description="Domain routed to `digest bounces receive`; envelope senders become <local_part>+<delivery>-<tag>@domain (VERP)")
    local_part: str = Field("bounces", pattern=r"^[a-z0-9._-]{1,40}$", description="Local part of the VERP envelope sender")
    listen_host: str = Field("127.0.0.1", description="Address `digest bounces receive` listens on")
    listen_port: int = Field(2525, ge=1, le=65535, description="Port `digest bounces receive` listens on")
    lmtp: bool = Field(False, description="Speak LMTP instead of SMTP (for delivery from a local MTA)")
    hard_threshold: int = Field(1, ge=1, description="Hard bounces (5xx, DSN 5.1.x …) before an address is suppressed")
    soft_threshold: float = Field(3.0, gt=0, description="Soft-bounce score at which an address is suppressed (each soft bounce adds 1, decaying)")
    soft_half_life_days: float = Field(7, gt=0, description="A soft bounce's weight halves over this many days")
    unsubscribe_by_mail: bool = Field(True, description="Mail to a list's From address whose subject says unsubscribe (the mailto: in List-Unsubscribe) unsubscribes its sender")
    max_message_bytes: int = Field(5_000_000, ge=10_000, description="Largest report the intake accepts")


class DkimSettings(_Section):
    domain: str = Field(..., description="Signing domain (d=)")
    selector: str = Field(..., description="Selector (s=); the public key lives at <selector>._domainkey.<domain>")
    private_key_file: Path = Field(..., description="RSA private key, PEM")
    ed25519_key_file: Path | None = Field(None, description="Optional Ed25519 key for a second signature")


class GatherSettings(_Section):
    timeout: float = Field(20, gt=0, description="Total seconds allowed per fetch, however slowly the bytes trickle in")
    connect_timeout: float = Field(10, gt=0, description="Seconds allowed to open a connection")
    read_timeout: float = Field(15, gt=0, description="Seconds allowed between two reads of a response")
    max_bytes: int = Field(10_000_000, ge=1024, description="Largest response body accepted (after decompression)")
    user_agent: str = Field("digest/0.1 (+https://github.com/digest)", description="User-Agent header for fetches")
    concurrency: int = Field(8, ge=1, le=64, description="Fetches in flight at the same time, across all hosts")
    per_host: int = Field(2, ge=1, le=16, description="Fetches in flight at the same time to any one host")
    host_delay: float = Field(0.5, ge=0, description="Seconds between the starts of two fetches from the same host")
    max_redirects: int = Field(5, ge=0, le=20, description="Redirects followed per fetch")
    max_items: int = Field(200, ge=1, description="Most items taken from one source per run (the first ones in the feed)")
    full_text_pages: int = Field(20, ge=0, description="Most article pages fetched per run for a fetch_full_text or sitemap source")
    retry_after_max: int = Field(86_400, ge=60, description="Longest Retry-After (seconds) honoured from a 429/503 answer")
    max_age_days: int = Field(7, ge=1, description="Ignore items published longer ago than this")
    near_duplicate: float = Field(0.8, gt=0, le=1, description="Estimated word-shingle similarity (Jaccard) at which two texts are one article")
    parse_processes: int = Field(-1, ge=-1, le=64, description="Processes that parse fetched feeds while the main process fetches and stores: -1 = one per CPU core when at least 16 sources are due, 0 = parse in the fetching threads")


class GroupSettings(_Section):
    window_days: int = Field(7, ge=1, description="An article may join a story first seen at most this long ago")


class ScheduleSettings(_Section):
    grace_hours: float = Field(6, ge=0, description="After downtime, editions whose time passed less than this long ago are still built; older ones are recorded as skipped")
    tick_seconds: int = Field(60, ge=5, description="Seconds between scheduler ticks")


class TemplateSettings(_Section):
    dir: Path | None = Field(None, description="Folder whose templates override the bundled ones")


class AudienceSettings(_Section):
    folder: Path = Field(Path("subscribers"), description="Lists-as-files folder: each <slug>.toml there defines a list for "
                         "every command (scheduler, web, build) as if it were a [[lists]] entry; `digest subscribers sync` "
                         "imports its <slug>.csv files")


class SourceConfig(_Section):
    name: str = Field(..., min_length=1, description="Display name, unique")
    url: str = Field(..., min_length=1, description="http(s) URL or local file path")
    kind: Literal["auto", "rss", "atom", "jsonfeed", "page", "sitemap"] = Field("auto", description="Format; auto detects")
    topics: list[str] = Field(default_factory=list, description="Topics this source's articles belong to")
    weight: float = Field(1.0, ge=0, description="Ranking weight")
    enabled: bool = Field(True, description="Gather this source")
    fetch_full_text: bool = Field(False, description="For summary-only feeds: fetch each new item's page and extract the article text")


class ListConfig(_Section):
    slug: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="Short identifier used in commands and URLs")
    name: str = Field(..., min_length=1, description="Display name")
    from_: str = Field(..., alias="from", description='Sender, e.g. "Example News <news@example.org>"')
    schedule: str = Field("0 7 * * *", description="Cron expression for editions, in the list's time zone")
    timezone: str = Field("UTC", description="IANA time zone of the schedule")
    double_opt_in: bool = Field(True, description="New subscribers confirm by email first")
    max_stories: int = Field(10, ge=1, le=100, description="Most stories in an edition")
    min_stories: int = Field(1, ge=0, description="Fewer stories than this: the edition is skipped")
    topics: list[str] = Field(default_factory=list, description="Only stories with these topics (empty: all)")
    description: str = Field("", description="Shown on the subscribe page")
    address: str = Field("", description="Postal/sender line shown in every footer")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Asia/Seoul") from None
        return value

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from digest.schedule.periods import trigger

        try:
            trigger(value, "UTC")
        except ValueError as exc:
            raise ValueError(f"not a 5-field cron expression ({exc}); e.g. '0 7 * * *'") from None
        return value

    @field_validator("from_")
    @classmethod
    def _valid_from(cls, value: str) -> str:
        from email.utils import parseaddr

        if "\r" in value or "\n" in value:
            raise ValueError("must not contain line breaks")
        _, addr = parseaddr(value)
        if "@" not in addr:
            raise ValueError('needs an address, e.g. "News <news@example.org>"')
        return value
