"""The send path's link signer makes exactly the tokens `Signer` makes, and `Signer` reads them."""

from __future__ import annotations

import pytest

from digest.audience.tokens import Signer
from digest.dispatch.links import LinkSigner
from digest.errors import TokenError

SECRET = b"a-secret-key-long-enough-for-tests-0123456789"


@pytest.mark.parametrize("scope", ["unsubscribe", "preferences"])
@pytest.mark.parametrize("subscriber_id, list_id", [(1, 1), (123456, 7), (2**40, 2**31)])
def test_links_are_byte_identical_to_the_signers(scope: str, subscriber_id: int, list_id: int) -> None:
    signer, links = Signer(SECRET), LinkSigner(SECRET)
    for _ in range(3):  # the two must be made within one second (the timestamp's resolution)
        made, expected = links.make(scope, subscriber_id, list_id), signer.make(scope, subscriber_id, list_id)
        if made.split(".")[1] == expected.split(".")[1]:
            break
    assert made == expected
    assert signer.read(scope, made) == (subscriber_id, list_id)


def test_a_link_of_one_scope_is_refused_in_another() -> None:
    token = LinkSigner(SECRET).make("unsubscribe", 5, 1)
    with pytest.raises(TokenError):
        Signer(SECRET).read("preferences", token)
    with pytest.raises(TokenError):
        Signer(b"another-secret-key-long-enough-0123456789").read("unsubscribe", token)
