"""Double opt-in: the confirmation email, sent at once (transactional, not through the digest ledger)."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass, field
from email.utils import parseaddr

from digest.audience.tokens import Signer
from digest.config import Settings
from digest.db import audience as queries
from digest.db.models import MailingList, Subscriber, utcnow
from digest.db.session import Database
from digest.dispatch.smtp import SmtpTransport
from digest.errors import DispatchError
from digest.render.digest_email import ListView, render_confirm
from digest.render.message import Envelope, build_message, list_id, personalise, sender_domain

log = logging.getLogger(__name__)


@dataclass
class ConfirmReport:
    sent: int = 0
    errors: list[str] = field(default_factory=list)


def send_confirmations(database: Database, settings: Settings, pending: list[tuple[int, int]],
                       now: dt.datetime | None = None) -> ConfirmReport:
    """Mail a signed confirm link to each (subscriber, list); one failure never stops the rest."""
    report = ConfirmReport()
    if not pending:
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
