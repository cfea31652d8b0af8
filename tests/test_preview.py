"""`digest preview`: the upcoming edition, linted, served on loopback and opened in a real browser."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import httpx
import pytest

from digest.build.preview import build_preview
from digest.cli.ops_cmds import preview_server
from digest.config import Settings
from digest.db.models import utcnow
from digest.gather import gather_sources
from digest.group import group_recent
from digest.pipeline import connect

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def preview(workspace: tuple[Path, Settings]):  # type: ignore[no-untyped-def]
    _, settings = workspace
    database = connect(settings)
    now = utcnow()
    gather_sources(database, settings, now=now)
    group_recent(database, settings, now=now)
    return build_preview(database, settings, "daily", now=now)


def test_preview_renders_the_upcoming_edition_and_lints_it(preview) -> None:  # type: ignore[no-untyped-def]
    assert "Incheon shipyard" in preview.html or "Incheon shipyard" in preview.text
    assert len(preview.headlines) >= 3
    header_names = {name.lower() for name, _ in preview.headers}
    assert {"from", "to", "subject", "list-unsubscribe", "list-unsubscribe-post", "message-id"} <= header_names
    # The fixture has relative links nowhere and hostile markup stripped: only known exceptions may remain.
    assert all("script" not in p and "javascript" not in p for p in preview.problems), preview.problems


def test_preview_server_and_browser_widths(preview, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = preview_server(preview, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        page = httpx.get(base + "/").text
        assert "Lint" in page and "Headers" in page and "Text part" in page and 'src="/email.html"' in page
        assert httpx.get(base + "/email.eml").content == preview.message
        assert httpx.get(base + "/nope").status_code == 404
        if not CHROMIUM.exists():
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail("Debian chromium missing in CI: .ci/run installs it")
            pytest.skip("Debian chromium is not installed (/usr/bin/chromium)")
        sync_api = pytest.importorskip("playwright.sync_api")
        artefacts = Path(os.environ.get("DIGEST_ARTEFACTS", tmp_path))
        artefacts.mkdir(parents=True, exist_ok=True)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
            for width in (375, 600):
                tab = browser.new_page(viewport={"width": width, "height": 1000})
                tab.goto(base + "/email.html")
                overflow = tab.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
                assert overflow <= 0, f"{overflow}px of horizontal overflow at {width}px"
                for headline in preview.headlines:
                    link = tab.get_by_role("link", name=headline, exact=False).first
                    link.scroll_into_view_if_needed()
                    assert link.is_visible(), (width, headline)
                tab.screenshot(path=str(artefacts / f"preview-{width}.png"), full_page=True)
                tab.close()
            browser.close()
        assert (artefacts / "preview-375.png").stat().st_size > 10_000
    finally:
        server.shutdown()
        server.server_close()
