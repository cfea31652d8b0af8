"""Double opt-in: the confirmation email, sent at once (transactional, not through the digest ledger)."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from functools import lru_cache
from pathlib import Path
from dataclasses import dataclass, field
from email.utils import parseaddr

from digest.audience.tokens import Signer
from digest.config import Settings
from digest.db import audience as queries
from digest.db.models import MailingList, Subscriber, utcnow
from digest.db.session import Database
from digest.dispatch.smtp import SmtpTransport
from digest.errors import DispatchError
from digest.dispatch.dkim import sign_message
from digest.render.digest_email import ListView, RenderedBody, render_confirm
from digest.render.message import Envelope, build_message, list_id, personalise, sender_domain

log = logging.getLogger(__name__)


@dataclass
class ConfirmReport:
    sent: int = 0
    errors: list[str] = field(default_factory=list)


@lru_cache(maxsize=64)
def _confirm_body(name: str, slug: str, address: str, locale: str, override_dir: Path | None) -> RenderedBody:
    """The confirm email of a list in one language, compiled once per process (recipients only fill the link)."""
    return render_confirm(ListView(name, slug, address), locale=locale, override_dir=override_dir)


def send_confirmations(database: Database, settings: Settings, pending: list[tuple[int, int]],
                       now: dt.datetime | None = None) -> ConfirmReport:
    """Mail a signed confirm link to each (subscriber, list); one failure never stops the rest.

    The database is read first, in one short transaction, so no write lock is held while mail is built or sent.
    """
    report = ConfirmReport()
    if not pending:
        return report
    signer = Signer(settings.secret_key())
    outgoing: list[tuple[int, int, str, str, str, str, str]] = []
    with database.session() as session:
        for subscriber_id, list_id_ in pending:
            subscriber = session.get(Subscriber, subscriber_id)
            mailing_list = session.get(MailingList, list_id_)
            if subscriber is None or mailing_list is None or queries.is_suppressed(session, subscriber.email):
                continue
            outgoing.append((subscriber.id, mailing_list.id, subscriber.email, subscriber.name, subscriber.locale,
                             mailing_list.slug, mailing_list.from_address))
    with SmtpTransport(settings.smtp, settings.smtp_password()) as transport:
        for subscriber_id, list_id_, email, name, locale, slug, from_address in outgoing:
            conf = settings.get_list(slug)
            body = _confirm_body(conf.name, conf.slug, conf.address, locale, settings.templates.dir)
            confirm_url = f"{settings.web.base_url}/confirm/{signer.make('confirm', subscriber_id, list_id_)}"
            html_body, text_body = personalise(body.html, body.text, body.token, greeting_html="", greeting_text="",
                                               unsubscribe_url="", preferences_url="", confirm_url=confirm_url)
            domain = sender_domain(from_address)
            envelope = Envelope(from_header=from_address, to_email=email, to_name=name, subject=body.subject,
                                message_id=f"<confirm.{secrets.token_hex(12)}@{domain}>",
                                list_id=list_id(conf.name, slug, domain), bulk=False, date=now or utcnow())
            try:
                message = sign_message(settings.dkim, build_message(envelope, html_body=html_body, text_body=text_body))
                transport.send(parseaddr(from_address)[1], email, message)
                report.sent += 1
            except DispatchError as exc:
                report.errors.append(f"{email}: {exc}")
                log.warning("confirmation to %s failed: %s", email, exc)
    return report
    signer = Signer(settings.secret_key())
    bodies: dict[tuple[int, str], object] = {}
    with database.session() as session, SmtpTransport(settings.smtp, settings.smtp_password()) as transport:
        for subscriber_id, list_id_ in pending:
            subscriber = session.get(Subscriber, subscriber_id)
            mailing_list = session.get(MailingList, list_id_)
            if subscriber is None or mailing_list is None or queries.is_suppressed(session, subscriber.email):
                continue
            conf = settings.get_list(mailing_list.slug)
            key = (list_id_, subscriber.locale)
            body = bodies.get(key)
            if body is None:
                body = render_confirm(ListView(conf.name, conf.slug, conf.address), locale=subscriber.locale,
                                      override_dir=settings.templates.dir)
                bodies[key] = body
            confirm_url = f"{settings.web.base_url}/confirm/{signer.make('confirm', subscriber.id, mailing_list.id)}"
            html_body, text_body = personalise(body.html, body.text, body.token, greeting_html="", greeting_text="",  # type: ignore[attr-defined]
                                               unsubscribe_url="", preferences_url="", confirm_url=confirm_url)
            domain = sender_domain(mailing_list.from_address)
            envelope = Envelope(from_header=mailing_list.from_address, to_email=subscriber.email, to_name=subscriber.name,
                                subject=body.subject, message_id=f"<confirm.{secrets.token_hex(12)}@{domain}>",  # type: ignore[attr-defined]
                                list_id=list_id(mailing_list.name, mailing_list.slug, domain), bulk=False,
                                date=now or utcnow())
            try:
                transport.send(parseaddr(mailing_list.from_address)[1], subscriber.email,
                               build_message(envelope, html_body=html_body, text_body=text_body))
                report.sent += 1
            except DispatchError as exc:
                report.errors.append(f"{subscriber.email}: {exc}")
                log.warning("confirmation to %s failed: %s", subscriber.email, exc)
    return report
