"""Per-recipient messages from a frozen skeleton: exact headers, MIME shape, encodings, no injection."""

from __future__ import annotations

import datetime as dt
import quopri
import random
import re
import time
from dataclasses import replace
from email import message_from_bytes, policy

import pytest

from digest.dispatch.dkim import canonical_body, split_message
from digest.render.digest_email import greeting, render_digest
from digest.render.headers import default_unsubscribe_mailto, list_id
from digest.render.lint import lint_message
from digest.render.message import Envelope, build_message, personalise
from digest.render.samples import sample_list, sample_stories
from digest.render.skeleton import MessageSkeleton, Recipient, cached_skeleton, qp_encode

FROM = "Example News <news@example.org>"
WHEN = dt.datetime(2026, 3, 2, 7, 0, tzinfo=dt.timezone(dt.timedelta(hours=9)))


def make_skeleton(body, subject=None):  # type: ignore[no-untyped-def]
    return MessageSkeleton(html_body=body.html, text_body=body.text, token=body.token,
                           subject=subject or body.subject, from_header=FROM,
                           list_id=list_id("Daily Digest", "daily", "example.org"), feedback_id="7:daily:digest",
                           unsubscribe_mailto=default_unsubscribe_mailto(FROM))


def recipient(**changes):  # type: ignore[no-untyped-def]
    greet_html, greet_text = greeting("en", changes.get("name", "Ana Lima"))
    base = Recipient(email="ana@example.com", message_id="<7.1.abcdef@example.org>", name="Ana Lima", date=WHEN,
                     greeting_html=greet_html, greeting_text=greet_text,
                     unsubscribe_url="https://news.example.org/u/WzEsMV0.tok_en-1",
                     preferences_url="https://news.example.org/p/WzEsMV0.pref")
    return replace(base, **changes)


@pytest.fixture(scope="module")
def body():  # type: ignore[no-untyped-def]
    stories = sample_stories(10)
    stories[1] = replace(stories[1], headline="Council says {{ 7*7 }} and {% raw %}x{% endraw %} are fine")
    return render_digest(stories, sample_list(), locale="en", date_label="2026-03-02",
                         subject="Daily Digest · 2026-03-02: Shipyard workers win")


def headers_of(raw: bytes) -> dict[str, str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii").replace("\r\n ", " ").replace("\r\n\t", " ")
    return {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in head.split("\r\n")}


def test_headers_exact(body) -> None:  # type: ignore[no-untyped-def]
    raw = make_skeleton(body).render(recipient())
    assert lint_message(raw) == []
    h = headers_of(raw)
    assert h["From"] == "Example News <news@example.org>"
    assert h["To"] == "Ana Lima <ana@example.com>"
    assert re.fullmatch(r"Daily Digest =\?utf-8\?[bq]\?[^?]+\?= 2026-03-02: Shipyard workers win", h["Subject"])
    assert h["Date"] == "Sun, 01 Mar 2026 22:00:00 +0000"
    assert h["Message-ID"] == "<7.1.abcdef@example.org>"
    assert h["MIME-Version"] == "1.0"
    assert re.fullmatch(r'multipart/alternative; boundary="=_digest_[0-9a-f]{24}"', h["Content-Type"])
    assert h["List-Id"] == '"Daily Digest" <daily.example.org>'
    assert h["List-Unsubscribe"] == ("<https://news.example.org/u/WzEsMV0.tok_en-1>, "
                                     "<mailto:news@example.org?subject=unsubscribe>")
    assert h["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert h["Feedback-ID"] == "7:daily:digest"
    assert h["Precedence"] == "bulk" and h["Auto-Submitted"] == "auto-generated"


def test_ascii_subject_is_not_encoded_and_korean_is(body) -> None:  # type: ignore[no-untyped-def]
    assert headers_of(make_skeleton(body, "Plain subject").render(recipient()))["Subject"] == "Plain subject"
    raw = make_skeleton(body, "오늘의 다이제스트 · Seoul").render(recipient())
    subject = headers_of(raw)["Subject"]
    assert "=?utf-8?" in subject and subject.endswith("Seoul")
    assert str(message_from_bytes(raw, policy=policy.default)["Subject"]) == "오늘의 다이제스트 · Seoul"


def test_to_punycode_and_encoded_name(body) -> None:  # type: ignore[no-untyped-def]
    raw = make_skeleton(body).render(recipient(email="min@bücher.de", name="김민지 \"MJ\"\r\nBcc: x@evil"))
    h = headers_of(raw)
    assert h["To"].endswith("<min@xn--bcher-kva.de>") and "=?utf-8?b?" in h["To"]
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg["To"].addresses[0].display_name == '김민지 "MJ" Bcc: x@evil'
    assert "Bcc" not in headers_of(raw)
    assert lint_message(raw) == []


def test_long_unsubscribe_url_is_never_encoded(body) -> None:  # type: ignore[no-untyped-def]
    url = "https://news.example.org/u/" + "A" * 300
    raw = make_skeleton(body).render(recipient(unsubscribe_url=url))
    line = re.search(rb"List-Unsubscribe: .*\r\n .*\r\n", raw)
    assert line and b"=?" not in line.group(0) and url.encode() in line.group(0)


def test_lines_crlf_and_short(body) -> None:  # type: ignore[no-untyped-def]
    raw = make_skeleton(body).render(recipient())
    assert not re.search(rb"[^\r]\n", raw)
    head, rest = raw.split(b"\r\n\r\n", 1)
    assert max(len(line) for line in rest.split(b"\r\n")) <= 76  # quoted-printable limit
    assert max(len(line) for line in head.split(b"\r\n")) <= 998


def test_parts_decode_to_the_personalised_bodies(body) -> None:  # type: ignore[no-untyped-def]
    r = recipient(name="Bo <b>&</b>")
    raw = make_skeleton(body).render(r)
    msg = message_from_bytes(raw, policy=policy.default)
    html, text = personalise(body.html, body.text, body.token, greeting_html=r.greeting_html,
                             greeting_text=r.greeting_text, unsubscribe_url=r.unsubscribe_url,
                             preferences_url=r.preferences_url)
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == text
    assert msg.get_body(("html",)).get_content().replace("\r\n", "\n") == html.replace("\r\n", "\n")
    assert "Bo &lt;b&gt;&amp;&lt;/b&gt;" in html and "Bo <b>&</b>" in text


def test_same_bytes_as_the_email_package_path(body) -> None:  # type: ignore[no-untyped-def]
    r = recipient()
    new = message_from_bytes(make_skeleton(body).render(r), policy=policy.default)
    html, text = personalise(body.html, body.text, body.token, greeting_html=r.greeting_html,
                             greeting_text=r.greeting_text, unsubscribe_url=r.unsubscribe_url,
                             preferences_url=r.preferences_url)
    old = message_from_bytes(build_message(Envelope(
        from_header=FROM, to_email=r.email, to_name=r.name, subject=body.subject, message_id=r.message_id,
        list_id=list_id("Daily Digest", "daily", "example.org"), unsubscribe_url=r.unsubscribe_url,
        unsubscribe_mailto=default_unsubscribe_mailto(FROM), feedback_id="7:daily:digest", date=WHEN),
        html_body=html, text_body=text), policy=policy.default)
    for name in ("From", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe", "Feedback-ID"):
        assert str(new[name]) == str(old[name]), name
    for kind in ("plain", "html"):
        assert new.get_body((kind,)).get_content().rstrip() == old.get_body((kind,)).get_content().rstrip()


def test_injection_end_to_end(body) -> None:  # type: ignore[no-untyped-def]
    token_lookalike = f"ZQ{body.token}UNSUBSCRIBEQZ"
    raw = make_skeleton(body).render(recipient(name=f"{{{{ 7*7 }}}} {token_lookalike}"))
    msg = message_from_bytes(raw, policy=policy.default)
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Council says {{ 7*7 }} and {% raw %}x{% endraw %} are fine" in text
    assert "Council says {{ 7*7 }} and {% raw %}x{% endraw %} are fine" in html
    assert f"Hello {{{{ 7*7 }}}} {token_lookalike}, here is your digest." in text  # filled once, never rescanned
    # Random tokens and URLs may contain the digits 49; an evaluated template would put them where the braces were.
    assert "Hello 49" not in text and "says 49 and" not in text and "says 49 and" not in html


def test_body_is_already_dkim_canonical(body) -> None:  # type: ignore[no-untyped-def]
    raw = make_skeleton(body).render(recipient(name="Two  spaces\tand tab"))
    _, message_body = split_message(raw)
    assert b"  " not in message_body and b"\t" not in message_body and b" \r\n" not in message_body
    assert canonical_body(message_body) == message_body


def test_qp_encoder_round_trips() -> None:
    rng = random.Random(5)
    alphabet = "ab =\t.한국\u00a0é<>&\"'" + "x" * 10
    for _ in range(300):
        text = "".join(rng.choice(alphabet + "\n") for _ in range(rng.randint(0, 400)))
        encoded = qp_encode(text)
        assert max((len(line) for line in encoded.split(b"\r\n")), default=0) <= 76
        assert quopri.decodestring(encoded).decode("utf-8") == text.replace("\n", "\r\n")


def test_a_link_is_cut_into_lines_exactly_as_the_encoder_would() -> None:
    """Per-recipient links skip the encoder (nothing in them to escape): the bytes must be the encoder's, at
    every length around the line limits, and anything with a space, "=", a control or non-ASCII still goes
    through it."""
    from digest.render.skeleton import _encode_value, _qp_piece

    rng = random.Random(7)
    url_chars = "abcXYZ0189-_./:?&%~!#$'()*+,;@[]^`{|}<>\\\""
    for length in range(0, 320):
        value = "".join(rng.choice(url_chars) for _ in range(length))
        assert _encode_value(value) == _qp_piece(value), length
    for value in ["a b" * 40, "x=y" * 30, "한국" * 30, "tab\tx", "line\nbreak", "end "]:
        assert _encode_value(value) == _qp_piece(value.replace("\n", " ")), value
        decoded = quopri.decodestring(_encode_value(value)).decode("utf-8")
        assert decoded == value.replace("\n", " ")


def test_skeleton_is_cached_and_fast(body) -> None:  # type: ignore[no-untyped-def]
    args = (body.html, body.text, body.token, body.subject, FROM, '"D" <daily.example.org>', "7:daily:digest")
    skeleton = cached_skeleton(*args)
    assert cached_skeleton(*args) is skeleton
    r = recipient()
    skeleton.render(r)
    started = time.perf_counter()
    for _ in range(200):
        skeleton.render(r)
    assert (time.perf_counter() - started) / 200 < 0.002  # measured ~30 µs; generous for slow CI


def test_feedback_id_and_list_headers_do_not_vary(body) -> None:  # type: ignore[no-untyped-def]
    skeleton = make_skeleton(body)
    a = headers_of(skeleton.render(recipient()))
    b = headers_of(skeleton.render(recipient(email="bo@example.net", message_id="<7.2.x@example.org>")))
    assert a["Feedback-ID"] == b["Feedback-ID"] and a["List-Id"] == b["List-Id"]
    assert a["To"] != b["To"] and a["Message-ID"] != b["Message-ID"]
