"""DKIM signatures made with `cryptography`, verified by dkimpy against a fake DNS answer."""

from __future__ import annotations

import base64
import datetime as dt
import sys
import types
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from digest.config import DkimSettings
from digest.dispatch.dkim import DkimSigner, sign_message, signer_for
from digest.errors import ConfigError
from digest.render.digest_email import greeting, render_digest
from digest.render.headers import default_unsubscribe_mailto, list_id
from digest.render.lint import lint_message
from digest.render.samples import sample_list, sample_stories
from digest.render.skeleton import MessageSkeleton, Recipient

dkim = pytest.importorskip("dkim")

FROM = "Example News <news@example.org>"


@pytest.fixture(scope="module")
def keys() -> tuple[rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey]:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048), ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def message() -> bytes:
    body = render_digest(sample_stories(10, "ko"), sample_list("ko"), locale="ko", date_label="2026-03-02",
                         subject="오늘의 다이제스트 · 2026-03-02")
    skeleton = MessageSkeleton(html_body=body.html, text_body=body.text, token=body.token, subject=body.subject,
                               from_header=FROM, list_id=list_id("오늘의 다이제스트", "daily", "example.org"),
                               feedback_id="7:daily:digest", unsubscribe_mailto=default_unsubscribe_mailto(FROM))
    greet_html, greet_text = greeting("ko", "김민지")
    return skeleton.render(Recipient(
        email="min@example.com", name="김민지", message_id="<7.1.x@example.org>",
        date=dt.datetime(2026, 3, 2, tzinfo=dt.UTC), greeting_html=greet_html, greeting_text=greet_text,
        unsubscribe_url="https://news.example.org/u/tok", preferences_url="https://news.example.org/p/tok"))


def dns_for(signer: DkimSigner):  # type: ignore[no-untyped-def]
    records = signer.dns_records()

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        return records.get(name.decode().rstrip("."), "").encode()
    return dnsfunc


def verify(signed: bytes, signer: DkimSigner, index: int = 0) -> bool:
    try:
        return bool(dkim.DKIM(signed).verify(idx=index, dnsfunc=dns_for(signer)))
    except dkim.DKIMException:  # e.g. "body hash mismatch" is raised, not returned
        return False


def test_rsa_signature_verifies_and_covers_the_list_headers(keys, message) -> None:  # type: ignore[no-untyped-def]
    signer = DkimSigner("example.org", "s2026", keys[0])
    signed = signer.sign(message)
    assert verify(signed, signer)
    assert lint_message(signed) == []
    header = signed.split(b"\r\n\r\n")[0].decode()
    h = header.split("h=", 1)[1].split(";", 1)[0].replace("\r\n\t", "").replace(" ", "")
    assert h == ("from:to:subject:date:message-id:mime-version:content-type:list-id:list-unsubscribe:"
                 "list-unsubscribe-post:feedback-id:from")
    assert "c=relaxed/relaxed" in header and "a=rsa-sha256" in header


@pytest.mark.parametrize("tamper", [
    lambda m: m.replace(b"https://news.example.org/u/tok", b"https://evil.example/u/tok", 1),
    lambda m: m.replace(b"Subject: ", b"Subject: RE: ", 1),
    lambda m: m.replace(b"\r\n\r\n", b"\r\nFrom: Bank <ceo@bank.example>\r\n\r\n", 1),  # over-signed From
    lambda m: m.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", b"", 1),
    lambda m: m[:-200] + m[-200:].replace(b"=", b"x", 1),
])
def test_tampering_breaks_the_signature(keys, message, tamper) -> None:  # type: ignore[no-untyped-def]
    signer = DkimSigner("example.org", "s2026", keys[0])
    assert not verify(tamper(signer.sign(message)), signer)


def test_relaxed_canonicalisation_tolerates_refolding(keys, message) -> None:  # type: ignore[no-untyped-def]
    signer = DkimSigner("example.org", "s2026", keys[0])
    signed = signer.sign(message).replace(b"List-Unsubscribe: <https", b"List-Unsubscribe:    <https", 1)
    assert verify(signed, signer)


@pytest.fixture
def nacl_shim(monkeypatch):  # type: ignore[no-untyped-def]
    """dkimpy verifies Ed25519 with PyNaCl; map the few calls it makes onto `cryptography`."""
    try:
        import nacl.signing  # noqa: F401
        return
    except ImportError:
        pass

    class BadSignatureError(Exception):
        pass

    class VerifyKey:
        def __init__(self, key: bytes, encoder: object = None) -> None:
            self.key = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(key))

        def verify(self, data: bytes, signature: bytes) -> bytes:
            try:
                self.key.verify(signature, data)
            except InvalidSignature:
                raise BadSignatureError() from None
            return data

    shim = types.SimpleNamespace(signing=types.SimpleNamespace(VerifyKey=VerifyKey),
                                 encoding=types.SimpleNamespace(Base64Encoder=object),
                                 exceptions=types.SimpleNamespace(BadSignatureError=BadSignatureError,
                                                                  ValueError=ValueError))
    monkeypatch.setattr(sys.modules["dkim"], "nacl", shim, raising=False)


def test_ed25519_signature_beside_rsa(keys, message, nacl_shim) -> None:  # type: ignore[no-untyped-def]
    signer = DkimSigner("example.org", "s2026", keys[0], keys[1], "s2026-ed25519")
    signed = signer.sign(message)
    assert signed.count(b"DKIM-Signature:") == 2 and b"a=ed25519-sha256" in signed
    assert verify(signed, signer, 0) and verify(signed, signer, 1)
    assert not verify(signed.replace(b"tok", b"tik"), signer, 1)


def write_key(path: Path, key: object) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,  # type: ignore[attr-defined]
                                       serialization.NoEncryption()))
    return path


def test_settings_load_keys_once_and_sign(tmp_path, keys, message, nacl_shim) -> None:  # type: ignore[no-untyped-def]
    settings = DkimSettings(domain="example.org", selector="s1", private_key_file=write_key(tmp_path / "d.pem", keys[0]),
                            ed25519_key_file=write_key(tmp_path / "e.pem", keys[1]))
    signer = signer_for(settings)
    assert signer is not None and signer_for(settings) is signer
    assert set(signer.dns_records()) == {"s1._domainkey.example.org", "s1-ed25519._domainkey.example.org"}
    signed = sign_message(settings, message)
    assert verify(signed, signer, 0) and verify(signed, signer, 1)
    assert sign_message(None, message) is message


def test_bad_keys_are_config_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    small = write_key(tmp_path / "small.pem", rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(ConfigError, match="1024 bits"):
        DkimSigner.from_settings(DkimSettings(domain="e.org", selector="s", private_key_file=small))
    wrong = write_key(tmp_path / "ed.pem", ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(ConfigError, match="not the expected key type"):
        DkimSigner.from_settings(DkimSettings(domain="e.org", selector="s", private_key_file=wrong))
    with pytest.raises(ConfigError, match="cannot read"):
        DkimSigner.from_settings(DkimSettings(domain="e.org", selector="s", private_key_file=tmp_path / "none.pem"))
