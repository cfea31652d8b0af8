"""An SMTP transport: one reused connection, MAIL/RCPT first, then a callback, then DATA.

The callback between RCPT and DATA is where the ledger marks a row
"transmitting": a crash before it leaves the row safely re-sendable, a crash
after it leaves the row ambiguous (see `digest.db.deliveries`).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from digest.config import SmtpSettings
from digest.errors import PermanentDispatchError, TransientDispatchError

log = logging.getLogger(__name__)


@dataclass
class SendResult:
    code: int
    reply: str


class SmtpTransport:
    def __init__(self, settings: SmtpSettings, password: str | None = None) -> None:
        self.settings = settings
        self.password = password
        self._conn: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        try:
            if s.ssl:
                conn: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, local_hostname=s.helo_name,
                                                      context=ssl.create_default_context())
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout, local_hostname=s.helo_name)
            conn.ehlo()
            if s.starttls and not s.ssl:
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
            if s.username:
                conn.login(s.username, self.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentDispatchError(f"SMTP AUTH refused: {exc.smtp_code} {_text(exc.smtp_error)}", exc.smtp_code) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientDispatchError(f"cannot connect to SMTP {s.host}:{s.port}: {exc}") from None
        log.info("connected to SMTP %s:%d", s.host, s.port)
        return conn

    def send(self, sender: str, recipient: str, message: bytes,
             before_data: Callable[[], bool] | None = None) -> SendResult:
        """Send one message. Raises Transient/PermanentDispatchError with the server's reply."""
        conn, (code, reply) = self._mail_from(sender)
        try:
            if code != 250:
                self._reset()
                raise _error(code, reply, "MAIL FROM")
            code, reply = conn.rcpt(recipient)
            if code not in (250, 251):
                self._reset()
                raise _error(code, reply, "RCPT TO")
            if before_data is not None and not before_data():
                self._reset()
                raise TransientDispatchError("claim lost before DATA; not sent")
            code, reply = conn.data(message)
            if code != 250:
                raise _error(code, reply, "DATA")
            return SendResult(code, _text(reply))
        except smtplib.SMTPServerDisconnected as exc:
            self._conn = None
            raise TransientDispatchError(f"server disconnected: {exc}") from None
        except smtplib.SMTPResponseException as exc:
            raise _error(exc.smtp_code, exc.smtp_error, "SMTP") from None
        except (TimeoutError, OSError) as exc:
            self.close()
            raise TransientDispatchError(f"connection trouble: {exc}") from None

    def _mail_from(self, sender: str) -> tuple[smtplib.SMTP, tuple[int, bytes]]:
        """MAIL FROM on the pooled connection; a connection the server closed while idle is reopened once."""
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = self._connect()
            try:
                return self._conn, self._conn.mail(sender)
            except smtplib.SMTPServerDisconnected:
                self._conn = None
                if attempt == 2:
                    raise TransientDispatchError("server disconnected at MAIL FROM") from None
            except (TimeoutError, OSError) as exc:
                self.close()
                raise TransientDispatchError(f"connection trouble: {exc}") from None
        raise AssertionError("unreachable")

    def _reset(self) -> None:
        try:
            if self._conn is not None:
                self._conn.rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._conn = None


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _error(code: int, reply: bytes | str, stage: str) -> Exception:
    text = f"{stage}: {code} {_text(reply)}".strip()
    if 500 <= code < 600:
        return PermanentDispatchError(text, code)
    return TransientDispatchError(text, code)
