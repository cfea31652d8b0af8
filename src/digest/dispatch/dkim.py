"""DKIM signing (RFC 6376, relaxed/relaxed) at OpenSSL speed, RSA-SHA256 plus optional Ed25519 (RFC 8463).

dkimpy signs with pure-Python RSA (~13 ms per message); `cryptography` does the same in
under 1 ms. We canonicalise and hash here and leave verification to dkimpy in the tests.
The signed header list includes List-Unsubscribe-Post and Feedback-ID (RFC 8058 §4 needs
the one-click pair signed) and over-signs From so a second From cannot be added.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from digest.config import DkimSettings
from digest.errors import ConfigError

SIGNED_HEADERS = ("from", "to", "subject", "date", "message-id", "mime-version", "content-type", "list-id",
                  "list-unsubscribe", "list-unsubscribe-post", "feedback-id")
OVERSIGNED = ("from",)
MIN_RSA_BITS = 2048

_WSP_RUN = re.compile(rb"[ \t]+")
_TRAILING_WSP = re.compile(rb"[ \t]+\r\n")


def canonical_body(body: bytes) -> bytes:
    """Relaxed body canonicalisation; skips the regex passes when the body is already canonical."""
    if b"\t" in body or b"  " in body or b" \r\n" in body:
        body = _WSP_RUN.sub(b" ", _TRAILING_WSP.sub(b"\r\n", body))
    body = body.rstrip(b"\r\n")
    return body + b"\r\n" if body else b""


def canonical_header(name: bytes, value: bytes) -> bytes:
    value = _WSP_RUN.sub(b" ", value.replace(b"\r\n", b"")).strip(b" ")
    return name.strip().lower() + b":" + value


def split_message(message: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """([(name, raw value with folds)], body) of a CRLF message."""
    end = message.find(b"\r\n\r\n")
    head, body = (message, b"") if end < 0 else (message[:end], message[end + 4:])
    headers: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, value + b"\r\n" + line)
        else:
            name, _, value = line.partition(b":")
            headers.append((name, value))
    return headers, body


@dataclass
class DkimSigner:
    domain: str
    selector: str
    rsa_key: rsa.RSAPrivateKey
    ed25519_key: ed25519.Ed25519PrivateKey | None = None
    ed25519_selector: str | None = None  # defaults to `selector`; Ed25519 keys usually get their own
    headers: tuple[str, ...] = SIGNED_HEADERS

    @classmethod
    def from_settings(cls, settings: DkimSettings) -> DkimSigner:
        rsa_key = _load_key(settings.private_key_file, "dkim.private_key_file", rsa.RSAPrivateKey)
        if rsa_key.key_size < MIN_RSA_BITS:
            raise ConfigError("dkim.private_key_file", f"RSA key has {rsa_key.key_size} bits",
                              "generate a 2048-bit key: openssl genrsa -out dkim.pem 2048")
        ed_key = None
        if settings.ed25519_key_file is not None:
            ed_key = _load_key(settings.ed25519_key_file, "dkim.ed25519_key_file", ed25519.Ed25519PrivateKey)
        # One TXT record per selector: the Ed25519 key is published under "<selector>-ed25519".
        return cls(settings.domain, settings.selector, rsa_key, ed_key, f"{settings.selector}-ed25519")

    def sign(self, message: bytes, *, timestamp: int | None = None) -> bytes:
        """The message with DKIM-Signature header(s) prepended (RSA first, then Ed25519)."""
        headers, body = split_message(message)
        body_hash = base64.b64encode(hashlib.sha256(canonical_body(body)).digest()).decode("ascii")
        present = {name.strip().lower().decode("ascii", "replace") for name, _ in headers}
        names = [h for h in self.headers if h in present] + [h for h in OVERSIGNED if h in present]
        signed = _select(headers, names)
        stamp = int(time.time()) if timestamp is None else timestamp
        out = [self._signature("rsa-sha256", self.selector, names, signed, body_hash, stamp)]
        if self.ed25519_key is not None:
            out.append(self._signature("ed25519-sha256", self.ed25519_selector or self.selector, names, signed,
                                       body_hash, stamp))
        return b"".join(out) + message

    def _signature(self, algorithm: str, selector: str, names: list[str], signed: bytes, body_hash: str,
                   stamp: int) -> bytes:
        value = (f" v=1; a={algorithm}; c=relaxed/relaxed; d={self.domain}; s={selector};\r\n"
                 f"\tt={stamp}; h={_fold_names(names)};\r\n\tbh={body_hash};\r\n\tb=")
        data = signed + canonical_header(b"DKIM-Signature", value.encode("ascii"))
        if algorithm == "rsa-sha256":
            signature = self.rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        else:
            assert self.ed25519_key is not None
            signature = self.ed25519_key.sign(hashlib.sha256(data).digest())  # RFC 8463: sign the hash
        encoded = base64.b64encode(signature).decode("ascii")
        folded = "\r\n\t ".join(encoded[i:i + 64] for i in range(0, len(encoded), 64))
        return f"DKIM-Signature:{value}{folded}\r\n".encode("ascii")

    def dns_records(self) -> dict[str, str]:
        """TXT records to publish: {name: value}."""
        rsa_der = self.rsa_key.public_key().public_bytes(serialization.Encoding.DER,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo)
        records = {f"{self.selector}._domainkey.{self.domain}":
                   f"v=DKIM1; k=rsa; p={base64.b64encode(rsa_der).decode('ascii')}"}
        if self.ed25519_key is not None:
            raw = self.ed25519_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                             serialization.PublicFormat.Raw)
            name = f"{self.ed25519_selector or self.selector}._domainkey.{self.domain}"
            value = f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode('ascii')}"
            if name in records:
                raise ConfigError("dkim.ed25519_key_file", "both keys would share one selector's DNS name",
                                  "give the Ed25519 key its own selector")
            records[name] = value
        return records


def _select(headers: list[tuple[bytes, bytes]], names: list[str]) -> bytes:
    """Canonical signed headers in h= order; repeated names take instances from the bottom up."""
    used: dict[str, int] = {}
    out: list[bytes] = []
    for name in names:
        instances = [(n, v) for n, v in headers if n.strip().lower().decode("ascii", "replace") == name]
        taken = used.get(name, 0)
        used[name] = taken + 1
        if taken < len(instances):  # past the last instance: an over-signed (null) entry
            header_name, value = instances[-1 - taken]
            out.append(canonical_header(header_name, value) + b"\r\n")
    return b"".join(out)


def _fold_names(names: list[str]) -> str:
    lines, line = [], ""
    for name in names:
        piece = f"{line}:{name}" if line else name
        if len(piece) > 60 and line:
            lines.append(line)
            piece = name
        line = piece
    return ":\r\n\t".join(lines + [line])


def _load_key(path: Path, key: str, kind: type) -> object:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror}", "point it at a readable PEM file") from None
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(key, f"{path} is not an unencrypted PEM private key ({exc})",
                          "write it with `openssl genpkey` and no passphrase") from None
    if not isinstance(loaded, kind):
        raise ConfigError(key, f"{path} holds a {type(loaded).__name__}, not the expected key type",
                          "RSA for private_key_file, Ed25519 for ed25519_key_file")
    return loaded


_signers: dict[tuple[object, ...], DkimSigner] = {}


def signer_for(settings: DkimSettings | None) -> DkimSigner | None:
    """The signer for these settings, loaded once per process (keys are read from disk once)."""
    if settings is None:
        return None
    key = (settings.domain, settings.selector, str(settings.private_key_file), str(settings.ed25519_key_file))
    signer = _signers.get(key)
    if signer is None:
        signer = _signers[key] = DkimSigner.from_settings(settings)
    return signer


def sign_message(settings: DkimSettings | None, message: bytes) -> bytes:
    """Sign when [dkim] is configured; otherwise return the message unchanged."""
    signer = signer_for(settings)
    return signer.sign(message) if signer is not None else message
