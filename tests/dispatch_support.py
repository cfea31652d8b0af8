"""Helpers for the dispatch and bounce tests: a fast seeder and a recording SMTP server that misbehaves on request."""

from __future__ import annotations

import asyncio
import socket
import textwrap
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import insert, select

from digest.config import Settings, load_settings
from digest.db.models import (Delivery, Edition, EditionVariant, MailingList, Subscriber, Subscription,
                              SubscriptionStatus, utcnow)
from digest.db.session import Database

SECRET = "test-secret-key-that-is-long-enough-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_settings(folder: Path, db_url: str, smtp_port: int, extra: str = "") -> tuple[Path, Settings]:
    (folder / "secret.key").write_text(SECRET + "\n")
    config = folder / "digest.toml"
    config.write_text(textwrap.dedent(f"""
        [database]
        url = "{db_url}"

        [web]
        base_url = "https://news.digest.example"
        secret_key_file = "secret.key"

        [[lists]]
        slug = "daily"
        name = "Test Daily"
        from = "Test Daily <news@digest.example>"
        """) + textwrap.dedent(extra).replace("[smtp]", f"[smtp]\nport = {smtp_port}")
        + ("" if "[smtp]" in extra else f"\n[smtp]\nport = {smtp_port}\n"), encoding="utf-8")
    return config, load_settings(config)


def seed(database: Database, emails: list[str]) -> int:
    """One ready edition of list 'daily' with a queued delivery per address, inserted set-based."""
    now = utcnow()
    with database.session() as session:
        mailing_list = session.scalar(select(MailingList).where(MailingList.slug == "daily"))
        if mailing_list is None:
            mailing_list = MailingList(slug="daily", name="Test Daily", from_address="Test Daily <news@digest.example>",
                                       schedule="0 7 * * *", timezone="UTC")
            session.add(mailing_list)
            session.flush()
        edition = Edition(list_id=mailing_list.id, period=f"p{time.time_ns()}", status="ready", subject="Hello",
                          created_at=now)
        session.add(edition)
        session.flush()
        token = "t7f3a9c"
        greet, unsub = f"ZQ{token}GREETINGQZ", f"ZQ{token}UNSUBSCRIBEQZ"
        variant = EditionVariant(edition_id=edition.id, variant_key=":en", subject="Today's digest",
                                 html=f"<p>{greet}</p><p>{'News of the day. ' * 40}</p><a href=\"{unsub}\">unsubscribe</a>",
                                 text=f"{greet}\n\n{'News of the day. ' * 40}\n\nUnsubscribe: {unsub}\n",
                                 placeholder_token=token)
        session.add(variant)
        session.flush()
        session.execute(insert(Subscriber), [{"email": e, "name": "", "timezone": "UTC", "locale": "en",
                                              "created_at": now} for e in emails])
        ids = dict(session.execute(select(Subscriber.email, Subscriber.id).where(Subscriber.email.in_(emails))).all())
        session.execute(insert(Subscription), [{"list_id": mailing_list.id, "subscriber_id": ids[e],
                                                "status": SubscriptionStatus.confirmed, "topics": [], "topics_key": "",
                                                "created_at": now, "consent_source": "test"} for e in emails])
        session.execute(insert(Delivery), [{"edition_id": edition.id, "subscriber_id": ids[e], "variant_id": variant.id,
                                            "next_attempt_at": now, "created_at": now} for e in emails])
        return edition.id


@dataclass
class Record:
    at: float
    rcpt: str
    peer: Any
    message_id: str
    mail_from: str = ""
    data: bytes = b""  # the message as received (dot-stuffing undone by the server)


@dataclass
class FaultyHandler:
    """Accepts and records mail; per-address faults can be switched on."""

    records: list[Record] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    temp_fail: dict[str, int] = field(default_factory=dict)  # address → how many 451s before accepting
    perm_rcpt: dict[str, str] = field(default_factory=dict)  # address → 5xx reply at RCPT
    perm_data: dict[str, str] = field(default_factory=dict)  # address → 5xx reply after DATA
    drop_once: set[str] = field(default_factory=set)  # close the connection at RCPT, once
    stall_once: set[str] = field(default_factory=set)  # hang after DATA longer than the client's timeout, once
    throttle_once: set[str] = field(default_factory=set)  # 421 at RCPT, once
    stall_seconds: float = 1.5
    # Hang after DATA, then accept anyway: kill the client meanwhile and the message is delivered but unconfirmed.
    slow_accept: set[str] = field(default_factory=set)
    slow_accept_started: threading.Event = field(default_factory=threading.Event)
    envelopes: int = 0  # RCPT commands seen (each message opened, whether or not DATA followed)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        a = address.lower()
        with self.lock:
            self.envelopes += 1
            if a in self.drop_once:
                self.drop_once.discard(a)
                server.transport.close()
                return "421 4.4.2 connection dropped"
            if a in self.throttle_once:
                self.throttle_once.discard(a)
                return "421 4.7.0 too many connections, slow down"
            if a in self.perm_rcpt:
                return self.perm_rcpt[a]
            if self.temp_fail.get(a, 0) > 0:
                self.temp_fail[a] -= 1
                return "451 4.7.1 greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        a = envelope.rcpt_tos[0].lower()
        with self.lock:
            stall = a in self.stall_once
            self.stall_once.discard(a)
        if stall:
            await asyncio.sleep(self.stall_seconds)
            return "451 4.3.0 we were stuck; not accepted"
        if a in self.perm_data:
            return self.perm_data[a]
        with self.lock:
            slow = a in self.slow_accept
            self.slow_accept.discard(a)
        data = envelope.original_content or envelope.content
        message_id = ""
        for line in data.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                message_id = line.split(b":", 1)[1].strip().decode()
                break
            if not line:
                break
        with self.lock:
            self.records.append(Record(time.monotonic(), a, session.peer, message_id, envelope.mail_from, data))
        if slow:  # the message is stored; the reply is late
            self.slow_accept_started.set()
            await asyncio.sleep(self.stall_seconds)
        return "250 2.0.0 accepted"

    def received(self) -> Counter[str]:
        with self.lock:
            return Counter(r.rcpt for r in self.records)


class RecordingServer:
    def __init__(self) -> None:
        self.handler = FaultyHandler()
        self.port = free_port()
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, decode_data=False)

    def __enter__(self) -> RecordingServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
