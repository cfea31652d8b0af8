"""`digest bounces receive`: an SMTP (or LMTP) server for the bounce domain, and `process PATH` for mailboxes.

The intake accepts mail only for genuine VERP addresses, the bare bounce address and (for the
mailto: unsubscribe) the lists' From addresses; everything else is refused at RCPT, so it cannot
become an open relay or a spam sink. Each accepted message is classified and applied at once.
"""

from __future__ import annotations

import asyncio
import logging
import mailbox
from collections.abc import Iterator
from email.message import Message
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP
from sqlalchemy import select

from digest.bounces.apply import Outcome, Summary, process_bytes, process_message
from digest.bounces.classify import parse
from digest.config import BounceSettings, Settings
from digest.db.models import MailingList, utcnow
from digest.db.session import Database
from digest.dispatch.verp import parse_verp
from digest.errors import ConfigError, DigestError

log = logging.getLogger(__name__)


def bounce_settings(settings: Settings) -> BounceSettings:
    if settings.bounces is None:
        raise ConfigError("bounces", "no [bounces] section", 'add [bounces] with domain = "bounces.example.org"')
    return settings.bounces


class IntakeHandler:
    def __init__(self, database: Database, settings: Settings, *, lmtp: bool = False) -> None:
        self.database, self.settings, self.lmtp = database, settings, lmtp
        self.bounces = bounce_settings(settings)
        self.secret = settings.secret_key()
        self.summary = Summary()
        with database.session() as session:
            self.list_addresses = {parseaddr(m.from_address)[1].lower() for m in session.scalars(select(MailingList))}

    def accepts(self, address: str) -> bool:
        address = address.strip().strip("<>").lower()
        if address == f"{self.bounces.local_part}@{self.bounces.domain}".lower():
            return True
        if parse_verp(address, self.secret, self.bounces) is not None:
            return True
        return self.bounces.unsubscribe_by_mail and address in self.list_addresses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:  # noqa: N802
        if not self.accepts(address):
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        data = envelope.original_content or envelope.content
        loop = asyncio.get_running_loop()
        try:
            outcome: Outcome = await loop.run_in_executor(
                None, lambda: process_bytes(self.database, self.settings, data, list(envelope.rcpt_tos)))
        except DigestError as exc:
            log.error("intake could not apply a message: %s", exc)
            reply = "451 4.3.0 Could not process the report now; try later"
        else:
            self.summary.add(outcome)
            log.info("intake: %s → %s %s", outcome.kind, outcome.action, outcome.email)
            reply = "250 2.0.0 OK"
        # LMTP answers once per accepted recipient.
        return "\r\n".join([reply] * len(envelope.rcpt_tos)) if self.lmtp else reply


class _IntakeController(Controller):
    def __init__(self, handler: IntakeHandler, *, lmtp: bool, **kwargs: Any) -> None:
        self._lmtp = lmtp
        super().__init__(handler, **kwargs)

    def factory(self) -> SMTP:
        cls = LMTP if self._lmtp else SMTP
        return cls(self.handler, **self.SMTP_kwargs)


def start_intake(database: Database, settings: Settings, *, host: str | None = None, port: int | None = None,
                 lmtp: bool | None = None) -> tuple[Controller, IntakeHandler]:
    """Start the intake in a background thread; call `.stop()` on the controller to end it."""
    b = bounce_settings(settings)
    use_lmtp = b.lmtp if lmtp is None else lmtp
    handler = IntakeHandler(database, settings, lmtp=use_lmtp)
    controller = _IntakeController(handler, lmtp=use_lmtp, hostname=host or b.listen_host,
                                   port=port if port is not None else b.listen_port,
                                   data_size_limit=b.max_message_bytes, decode_data=False)
    controller.start()
    return controller, handler


def iter_messages(path: Path) -> Iterator[Message]:
    """A maildir (cur/ new/), an mbox file, a folder of .eml files, or one message file."""
    if path.is_dir():
        if (path / "cur").is_dir() or (path / "new").is_dir():
            yield from mailbox.Maildir(path, factory=None, create=False)
            return
        for item in sorted(path.iterdir()):
            if item.is_file():
                yield parse(item.read_bytes())
        return
    if not path.is_file():
        raise DigestError(f"{path} is neither a maildir, an mbox nor a message file")
    with path.open("rb") as handle:
        is_mbox = handle.read(5) == b"From "
    if is_mbox:
        yield from mailbox.mbox(path, factory=None, create=False)
    else:
        yield parse(path.read_bytes())


def process_path(database: Database, settings: Settings, path: Path) -> Summary:
    """Apply every message of a mailbox (the envelope is gone: VERP is read from Delivered-To, To …)."""
    bounce_settings(settings)
    summary = Summary()
    now = utcnow()
    for msg in iter_messages(path):
        summary.add(process_message(database, settings, msg, [], now))
    return summary
