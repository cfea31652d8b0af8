"""Signed links: made by hand in itsdangerous' exact format, read by itsdangerous, scoped, expiring."""

from __future__ import annotations

import time

import pytest
from itsdangerous import URLSafeTimedSerializer

from digest.audience.tokens import Signer
from digest.errors import TokenError

SECRET = b"a-secret-key-long-enough-for-tests-0123456789"


@pytest.mark.parametrize("scope", ["confirm", "unsubscribe", "preferences"])
@pytest.mark.parametrize("subscriber_id, list_id", [(1, 1), (123456, 7), (2**40, 2**31)])
def test_tokens_are_byte_identical_to_the_librarys(scope: str, subscriber_id: int, list_id: int) -> None:
    signer, library = Signer(SECRET), URLSafeTimedSerializer(SECRET, salt=f"digest.{scope}")
    for _ in range(3):  # the two must be made within one second (the timestamp's resolution)
        made, expected = signer.make(scope, subscriber_id, list_id), library.dumps([subscriber_id, list_id])  # type: ignore[arg-type]
        if made.split(".")[1] == expected.split(".")[1]:
            break
    assert made == expected
    assert signer.read(scope, made) == (subscriber_id, list_id)  # type: ignore[arg-type]


def test_a_token_of_one_scope_or_secret_is_refused_elsewhere() -> None:
    token = Signer(SECRET).make("unsubscribe", 5, 1)
    with pytest.raises(TokenError):
        Signer(SECRET).read("preferences", token)
    with pytest.raises(TokenError):
        Signer(b"another-secret-key-long-enough-0123456789").read("unsubscribe", token)


def test_altered_tokens_are_refused() -> None:
    signer = Signer(SECRET)
    token = signer.make("unsubscribe", 5, 1)
    value, stamp, mac = token.split(".")
    other = Signer(SECRET).make("unsubscribe", 6, 1).split(".")[0]
    for forged in (f"{other}.{stamp}.{mac}", f"{value}.{stamp}.{mac[:-2]}AA", token + "x", "", "a.b.c"):
        with pytest.raises(TokenError):
            signer.read("unsubscribe", forged)


def test_confirm_links_expire_and_unsubscribe_links_do_not() -> None:
    old = Signer(SECRET, clock=lambda: time.time() - 8 * 86400)  # made eight days ago
    with pytest.raises(TokenError, match="expired"):
        Signer(SECRET).read("confirm", old.make("confirm", 5, 1))
    assert Signer(SECRET).read("unsubscribe", Signer(SECRET, clock=lambda: time.time() - 5 * 365 * 86400)
                               .make("unsubscribe", 5, 1)) == (5, 1)
