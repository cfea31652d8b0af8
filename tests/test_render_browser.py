"""The rendered digest in a real browser at phone and desktop widths (skipped without Chromium).

Needs Debian's `chromium` at /usr/bin/chromium and the `playwright` package (its own browser
download is not used). Screenshots go to $DIGEST_ARTEFACTS or the test's tmp folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from digest.render.digest_email import greeting, render_digest
from digest.render.message import personalise
from digest.render.samples import sample_list, sample_stories

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")


@pytest.mark.parametrize("width", [375, 600])
def test_no_overflow_and_titles_visible(width: int, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    stories = sample_stories(10)
    body = render_digest(stories, sample_list(), locale="en", date_label="2026-03-02", subject="Daily Digest")
    greet_html, greet_text = greeting("en", "Ana")
    html, _ = personalise(body.html, body.text, body.token, greeting_html=greet_html, greeting_text=greet_text,
                          unsubscribe_url="https://news.example.org/u/t", preferences_url="https://news.example.org/p/t")
    page_file = tmp_path / "digest.html"
    page_file.write_text(html, encoding="utf-8")
    out = Path(os.environ.get("DIGEST_ARTEFACTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(page_file.as_uri())
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"horizontal overflow of {overflow}px at {width}px"
        for story in stories:
            link = page.get_by_role("link", name=story.headline).first
            assert link.is_visible(), story.headline
        page.screenshot(path=str(out / f"digest-{width}.png"), full_page=True)
        browser.close()
