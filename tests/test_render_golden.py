"""Golden files for rendered digests (pelican-style): any change to the output shows up as a diff.

Regenerate after an intended change (and review the diff):
    DIGEST_REGEN_GOLDEN=1 .venv/bin/pytest -q tests/test_render_golden.py
The placeholder token, boundary and date are fixed, so the files are stable.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from digest.render.digest_email import greeting, render_digest
from digest.render.headers import default_unsubscribe_mailto, list_id
from digest.render.samples import sample_list, sample_stories
from digest.render.skeleton import MessageSkeleton, Recipient

GOLDEN = Path(__file__).parent / "golden"
TOKEN = "0123456789abcdef"
REGENERATE = os.environ.get("DIGEST_REGEN_GOLDEN") == "1"


def rendered(locale: str) -> dict[str, bytes]:
    body = render_digest(sample_stories(10, locale), sample_list(locale), locale=locale, date_label="2026-03-02",
                         subject=f"{sample_list(locale).name} · 2026-03-02", token=TOKEN)
    sender = "Example News <news@example.org>"
    skeleton = MessageSkeleton(html_body=body.html, text_body=body.text, token=TOKEN, subject=body.subject,
                               from_header=sender, list_id=list_id(sample_list(locale).name, "daily", "example.org"),
                               feedback_id="1:daily:digest", unsubscribe_mailto=default_unsubscribe_mailto(sender),
                               boundary="=_digest_golden")
    greet_html, greet_text = greeting(locale, "Ana")
    message = skeleton.render(Recipient(
        email="ana@example.com", name="Ana", message_id="<1.1.golden@example.org>",
        date=dt.datetime(2026, 3, 2, 7, tzinfo=dt.UTC), greeting_html=greet_html, greeting_text=greet_text,
        unsubscribe_url="https://news.example.org/u/TOKEN", preferences_url="https://news.example.org/p/TOKEN"))
    return {f"digest_{locale}.html": body.html.encode(), f"digest_{locale}.txt": body.text.encode(),
            f"digest_{locale}.eml": message}


@pytest.mark.parametrize("locale", ["en", "ko"])
def test_golden(locale: str) -> None:
    for name, data in rendered(locale).items():
        path = GOLDEN / name
        if REGENERATE:
            GOLDEN.mkdir(exist_ok=True)
            path.write_bytes(data)
            continue
        assert path.exists(), f"{path} missing: run DIGEST_REGEN_GOLDEN=1 pytest {__file__}"
        expected = path.read_bytes()
        assert data == expected, f"{name} differs from the golden file; if intended, regenerate (see docstring)"
