"""An SMTP transport: one reused connection, MAIL/RCPT first, then a callback, then the message.

The callback runs once the DATA command is written, before the message is: that is where the
ledger's `transmitting` mark must have committed. A crash before it leaves the row safely
re-sendable (a connection closed in the middle of DATA delivers nothing), a crash after it leaves
the row ambiguous (see `digest.db.deliveries`). A refused mark closes the connection unsent. A
live transport that loses the connection after the server's 354 raises `AmbiguousDispatchError`,
so the worker applies the same policy as after a crash.

Servers are tried in order (`smtp.host`, then `smtp.failover`) on every
(re)connect, so the primary is used again as soon as it is back. A 421 reply
closes the connection (RFC 5321 §3.8); the next send reconnects.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from digest.config import SmtpSettings
from digest.errors import ConfigError, DispatchError, PermanentDispatchError, TransientDispatchError

log = logging.getLogger(__name__)



class AmbiguousDispatchError(TransientDispatchError):
    """The connection failed after the message was handed over: the server may or may not have it."""


class ClaimLostError(TransientDispatchError):
    """The ledger refused the row before DATA (lease lost, edition paused or cancelled): nothing was sent."""


def stage_of(exc: DispatchError) -> str:
    """Where the exchange failed: connect, MAIL FROM, RCPT TO, DATA (or '' when unknown)."""
    return str(getattr(exc, "stage", ""))


@dataclass
class SendResult:
    code: int
    reply: str
    server: str = ""


def parse_servers(settings: SmtpSettings) -> list[tuple[str, int]]:
    servers = [(settings.host, settings.port)]
    for item in settings.failover:
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError("smtp.failover", f"{item!r} is not host:port", 'write e.g. "relay2.example.org:587"')
        servers.append((host.strip("[]"), int(port)))
    return servers


class SmtpTransport:
    def __init__(self, settings: SmtpSettings, password: str | None = None) -> None:
        self.settings = settings
        self.password = password
        self.servers = parse_servers(settings)
        self.server = ""
        self._conn: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> smtplib.SMTP:
        problems = []
        for host, port in self.servers:
            try:
                conn = self._open(host, port)
            except PermanentDispatchError:
                raise
            except (OSError, smtplib.SMTPException) as exc:
                problems.append(f"{host}:{port}: {exc}")
                continue
            self.server = f"{host}:{port}"
            log.info("connected to SMTP %s", self.server)
            return conn
        raise _staged(TransientDispatchError(f"cannot connect to SMTP: {'; '.join(problems)}"), "connect")

    def _open(self, host: str, port: int) -> smtplib.SMTP:
        s = self.settings
        if s.ssl:
            conn: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=s.timeout, local_hostname=s.helo_name,
                                                  context=ssl.create_default_context())
        else:
            conn = smtplib.SMTP(host, port, timeout=s.timeout, local_hostname=s.helo_name)
        try:
            conn.ehlo()
            if s.starttls and not s.ssl:
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
            if s.username:
                conn.login(s.username, self.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            conn.close()
            raise _staged(PermanentDispatchError(f"SMTP AUTH refused by {host}:{port}: {exc.smtp_code} "
                                                 f"{_text(exc.smtp_error)}", exc.smtp_code), "connect") from None
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def wire(message: bytes) -> bytes:
        """The message as DATA carries it: dot-stuffed (RFC 5321 §4.5.2) and ended by CRLF "." CRLF."""
        if b"\n." in message:  # QP soft breaks often put a "." first on a line
            message = message.replace(b"\n.", b"\n..")  # a fifth of the cost of the regular expression
        if message.startswith(b"."):
            message = b"." + message
        return message + (b".\r\n" if message.endswith(b"\r\n") else b"\r\n.\r\n")

    def send(self, sender: str, recipient: str, message: bytes, before_data: Callable[[], bool] | None = None,
             before_mail: Callable[[], None] | None = None, after_data: Callable[[], None] | None = None,
             wire: bytes | None = None) -> SendResult:
        """Send one message. Raises Transient/Permanent/AmbiguousDispatchError with the server's reply.

        `before_mail` runs once MAIL FROM is written, while the server reads it (the ledger starts its commit
        there, to overlap the envelope's round trips); `before_data` once the DATA command is written, before
        the message: False means do not send (the connection is then closed);
        `after_data` once the message is written, while the server works on it (the sender builds its
        next message there). `wire`: `wire(message)` made beforehand, off the path between two replies."""
        conn, (code, reply) = self._mail_from(sender, before_mail)
        handed_over = False
        try:
            if code != 250:
                raise self._refused(code, reply, "MAIL FROM")
            conn.putcmd("rcpt", f"TO:{_path(recipient)}")
            code, reply = conn.getreply()
            if code not in (250, 251):
                raise self._refused(code, reply, "RCPT TO")
            conn.putcmd("data")
            if before_data is not None:  # while the server reads DATA: the ledger's answer costs no round trip
                self._settle(before_data)
            code, reply = conn.getreply()
            if code != 354:
                raise self._refused(code, reply, "DATA")
            handed_over = True  # from here on, a dropped connection leaves the outcome unknown
            conn.send(wire if wire is not None else self.wire(message))
            if after_data is not None:
                after_data()
            code, reply = conn.getreply()
            if code != 250:
                raise self._refused(code, reply, "DATA", after_data=True)
            return SendResult(code, _text(reply), self.server)
        except (smtplib.SMTPServerDisconnected, TimeoutError, OSError) as exc:
            self.close()
            if handed_over:
                raise _staged(AmbiguousDispatchError(f"connection lost after DATA: {exc}"), "DATA") from None
            raise _staged(TransientDispatchError(f"connection lost: {exc}"), "connection") from None

    def _settle(self, before_data: Callable[[], bool]) -> None:
        """Run `before_data` once DATA is written. If it refuses (or fails) the message must not go: a connection
        closed before the end-of-data mark leaves the server no transaction to deliver."""
        try:
            go = before_data()
        except BaseException:
            self._drop()
            raise
        if not go:
            self._drop()
            raise _staged(ClaimLostError("claim lost before DATA; not sent"), "DATA")

    def _drop(self) -> None:
        """Close without QUIT: after DATA, a QUIT would be a line of the message."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def _refused(self, code: int, reply: bytes | str, stage: str, after_data: bool = False) -> DispatchError:
        if code == 421:  # the server is closing the channel: do not reuse it
            self.close()
        elif not after_data:
            self._reset()
        return _error(code, reply, stage)

    def _mail_from(self, sender: str, before: Callable[[], None] | None = None) -> tuple[smtplib.SMTP, tuple[int, bytes]]:
        """MAIL FROM on the pooled connection; a connection the server closed while idle is reopened once."""
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = self._connect()
            try:
                self._conn.putcmd("mail", f"FROM:{_path(sender)}")
                if before is not None:  # while the server reads MAIL FROM: waking the database's backend here
                    before()            # costs the sender its core, not the server its next command
                    before = None
                return self._conn, self._conn.getreply()
            except (smtplib.SMTPServerDisconnected, TimeoutError, OSError) as exc:
                self.close()
                if attempt == 2:
                    raise _staged(TransientDispatchError(f"connection lost at MAIL FROM: {exc}"), "connection") from None
        raise AssertionError("unreachable")

    def _reset(self) -> None:
        try:
            if self._conn is not None:
                self._conn.rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()


_PLAIN_ADDRESS = re.compile(r"[^\s<>()\[\]\\,;:\"]+@[^\s<>()\[\]\\,;:\"@]+")


def _path(address: str) -> str:
    """`<address>` for MAIL FROM / RCPT TO. Stored addresses are already bare and normalised, so this skips
    smtplib's `quoteaddr` (an RFC 2822 parse, a quarter of the client's CPU per message on loopback)."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _staged(exc: DispatchError, stage: str) -> DispatchError:
    exc.stage = stage  # type: ignore[attr-defined]
    return exc


def _error(code: int, reply: bytes | str, stage: str) -> DispatchError:
    text = f"{stage}: {code} {_text(reply)}".strip()
    if 500 <= code < 600:
        return _staged(PermanentDispatchError(text, code), stage)
    return _staged(TransientDispatchError(text, code), stage)
