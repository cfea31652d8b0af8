"""Double opt-in: the confirm mail is queued in the outbox with the sign-up and sent later by the mailer.

The sign-up (web form, API, admin or CSV import) only writes an outbox row in its own transaction, so it
never waits on SMTP and a crash cannot lose the mail. `send_due` claims due rows with a lease, builds and
sends each message, then deletes what went out and reschedules what did not (4xx: backoff; 5xx: given up).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.audience.tokens import Signer
from digest.config import Settings
from digest.db import audience as queries
from digest.db import outbox
from digest.db.models import MailingList, Subscriber, utcnow
from digest.db.session import Database
from digest.dispatch.dkim import sign_message
from digest.dispatch.smtp import SmtpTransport
from digest.errors import DigestError, DispatchError, PermanentDispatchError
from digest.render.digest_email import ListView, RenderedBody, render_confirm
from digest.render.message import list_id, sender_domain
from digest.render.skeleton import Recipient, cached_skeleton

log = logging.getLogger(__name__)

LEASE = dt.timedelta(minutes=5)
MAX_ATTEMPTS = 8  # backoff 1, 2, 4 … 64 minutes: about two hours of trying before a mail is given up
Pending = tuple[int, int]  # (subscriber_id, list_id)


@dataclass
class ConfirmReport:
    sent: int = 0
    retrying: int = 0
    given_up: int = 0
    dropped: int = 0  # erased or suppressed since the sign-up: nothing to send
    errors: list[str] = field(default_factory=list)


def queue_confirmations(session: Session, pending: Iterable[Pending]) -> int:
    """Queue a confirm mail per (subscriber, list) in the caller's transaction; the mailer sends it."""
    return outbox.queue(session, pending, kind="confirm")


@dataclass(frozen=True)
class _Outgoing:
    mail_id: int
    attempts: int
    subscriber_id: int
    list_id: int
    email: str
    name: str
    locale: str
    slug: str
    from_address: str


@lru_cache(maxsize=64)
def _confirm_body(name: str, slug: str, address: str, locale: str, override_dir: Path | None) -> RenderedBody:
    """The confirm email of a list in one language, compiled once per process (recipients only fill the link)."""
    return render_confirm(ListView(name, slug, address), locale=locale, override_dir=override_dir)


def confirm_message(settings: Settings, signer: Signer, mail: _Outgoing, now: dt.datetime) -> bytes:
    """The confirm mail for one recipient: the list's frozen skeleton plus this recipient's link (no EmailMessage)."""
    conf = settings.get_list(mail.slug)
    body = _confirm_body(conf.name, conf.slug, conf.address, mail.locale, settings.templates.dir)
    domain = sender_domain(mail.from_address)
    skeleton = cached_skeleton(body.html, body.text, body.token, body.subject, mail.from_address,
                               list_id(conf.name, mail.slug, domain), bulk=False)
    confirm_url = f"{settings.web.base_url}/confirm/{signer.make('confirm', mail.subscriber_id, mail.list_id)}"
    message = skeleton.render(Recipient(email=mail.email, name=mail.name, date=now, confirm_url=confirm_url,
                                        message_id=f"<confirm.{secrets.token_hex(12)}@{domain}>"))
    return sign_message(settings.dkim, message)


def send_due(database: Database, settings: Settings, *, now: dt.datetime | None = None,
             limit: int = 200) -> ConfirmReport:
    """Send up to `limit` due confirm mails over one SMTP connection; one failure never stops the rest.

    No write lock is held while mail is built or sent: claim (one transaction), SMTP, outcome (one transaction).
    A crash between sending and recording leaves the rows claimed; after the lease they go out again (a
    second confirm mail is harmless, a lost one is not).
    """
    report = ConfirmReport()
    now = now or utcnow()
    with database.session() as session:
        claimed = outbox.claim(session, now, LEASE, limit)
        outgoing, gone = _resolve(session, claimed)
    report.dropped = len(gone)
    sent: list[int] = list(gone)
    later: list[tuple[_Outgoing, str, bool]] = []
    if outgoing:
        signer = Signer(settings.secret_key())
        try:
            with SmtpTransport(settings.smtp, settings.smtp_password()) as transport:
                for mail in outgoing:
                    try:
                        message = confirm_message(settings, signer, mail, now)
                    except DigestError as exc:  # e.g. the list left the config, or its template stopped rendering
                        later.append((mail, f"cannot build the message: {exc}", False))
                        continue
                    try:
                        transport.send(parseaddr(mail.from_address)[1], mail.email, message)
                        sent.append(mail.mail_id)
                        report.sent += 1
                    except DispatchError as exc:
                        later.append((mail, str(exc), isinstance(exc, PermanentDispatchError)))
        except DispatchError as exc:  # no connection at all: every unsent mail waits for the next round
            done_ids = set(sent)
            later = [(m, str(exc), False) for m in outgoing if m.mail_id not in done_ids]
    with database.session() as session:
        outbox.done(session, sent)
        for mail, error, permanent in later:
            report.errors.append(f"{mail.email}: {error}")
            log.warning("confirmation to %s failed: %s", mail.email, error)
            if permanent or mail.attempts + 1 >= MAX_ATTEMPTS:
                outbox.give_up(session, mail.mail_id, error, now)
                report.given_up += 1
            else:
                outbox.retry_later(session, mail.mail_id, error, now + dt.timedelta(minutes=2 ** mail.attempts))
                report.retrying += 1
    return report


def send_all_due(database: Database, settings: Settings, *, now: dt.datetime | None = None) -> ConfirmReport:
    """Drain the outbox now (CLI import, tests): rounds of `send_due` until nothing due was sent."""
    total = ConfirmReport()
    while True:
        report = send_due(database, settings, now=now)
        total.sent += report.sent
        total.retrying += report.retrying
        total.given_up += report.given_up
        total.dropped += report.dropped
        total.errors += report.errors
        if report.sent + report.dropped == 0:
            return total


def _resolve(session: Session, claimed: list[outbox.Claimed]) -> tuple[list[_Outgoing], list[int]]:
    """Who each claimed mail goes to, in three queries per batch; ids of mails nobody should get any more."""
    people = {p.id: p for p in session.scalars(select(Subscriber).where(
        Subscriber.id.in_({row.subscriber_id for row in claimed})))}
    lists = {m.id: m for m in session.scalars(select(MailingList).where(MailingList.id.in_({row.list_id for row in claimed})))}
    blocked = queries.suppressed_among(session, [p.email for p in people.values()])
    outgoing, gone = [], []
    for row in claimed:
        subscriber, mailing_list = people.get(row.subscriber_id), lists.get(row.list_id)
        if subscriber is None or mailing_list is None or subscriber.email in blocked:
            gone.append(row.id)
            continue
        outgoing.append(_Outgoing(row.id, row.attempts, subscriber.id, mailing_list.id, subscriber.email,
                                  subscriber.name, subscriber.locale, mailing_list.slug, mailing_list.from_address))
    return outgoing, gone
