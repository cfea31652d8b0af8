"""Client support: the rendered digest against the caniemail.com dataset for Gmail, Outlook and Apple Mail.

A feature error is allowed only when stock MJML output already has it (the baseline, kept in
tests/golden/caniemail_baseline.json and regenerated with DIGEST_REGEN_GOLDEN=1) or when it is one of
the progressive enhancements listed in ENHANCEMENTS, each with the reason it is harmless where unsupported.
Needs Node and `npm ci --prefix tools/caniemail` (.ci/run does it); skipped on a laptop without them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import mjml
import pytest

from digest.render.digest_email import greeting, render_digest
from digest.render.message import personalise
from digest.render.samples import sample_list, sample_stories

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "caniemail"
BASELINE = Path(__file__).with_name("golden") / "caniemail_baseline.json"

# What our templates add on purpose; where a client lacks it, the email still reads correctly.
ENHANCEMENTS = {
    "color-scheme meta tag": "dark-mode hint; clients without it show the light design",
    "color-scheme CSS property": "dark-mode hint, as above",
    "overflow-wrap": "breaks very long words (URLs) on phones; without it they only overflow",
    "Attribute selector": "only the Outlook.com dark-mode rules ([data-ogsc], [data-ogsb]) use one; "
                          "a client without attribute selectors skips just those rules",
}

# Stock MJML: the same components our templates use, no custom CSS.
STOCK_MJML = """<mjml><mj-head><mj-title>t</mj-title><mj-preview>p</mj-preview></mj-head><mj-body width="600px">
<mj-section><mj-column><mj-image src="https://x.example/a.png" alt="a" href="https://x.example/"/>
<mj-text>Hello <a href="https://x.example/">link</a></mj-text><mj-divider/>
<mj-button href="https://x.example/">Go</mj-button></mj-column></mj-section>
<mj-section><mj-column><mj-text>Footer</mj-text></mj-column><mj-column><mj-text>Two columns</mj-text></mj-column></mj-section>
</mj-body></mjml>"""


def check(html: str) -> dict[str, set[str]]:
    node = shutil.which("node")
    if node is None or not (TOOL / "node_modules" / "caniemail").is_dir():
        reason = "needs node and `npm ci --prefix tools/caniemail`"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    out = subprocess.run([node, str(TOOL / "check.mjs")], input=html, capture_output=True, text=True, timeout=120,
                         check=True)
    return {client: set(titles) for client, titles in json.loads(out.stdout)["errors"].items()}


def digest_html(locale: str) -> str:
    body = render_digest(sample_stories(10, locale), sample_list(locale), locale=locale, date_label="2026-03-02",
                         subject="Daily Digest")
    greet_html, greet_text = greeting(locale, "Ana")
    html, _ = personalise(body.html, body.text, body.token, greeting_html=greet_html, greeting_text=greet_text,
                          unsubscribe_url="https://news.example.org/u/t", preferences_url="https://news.example.org/p/t")
    return html


def baseline() -> dict[str, set[str]]:
    if os.environ.get("DIGEST_REGEN_GOLDEN") == "1" or not BASELINE.exists():
        stock = check(mjml.mjml2html(STOCK_MJML))
        BASELINE.write_text(json.dumps({c: sorted(t) for c, t in sorted(stock.items())}, indent=1) + "\n")
    return {client: set(titles) for client, titles in json.loads(BASELINE.read_text()).items()}


@pytest.mark.parametrize("locale", ["en", "ko"])
def test_no_client_feature_errors_beyond_stock_mjml(locale: str) -> None:
    ours = check(digest_html(locale))
    stock = baseline()
    extra = {client: sorted(titles - stock.get(client, set()) - set(ENHANCEMENTS))
             for client, titles in ours.items()}
    assert {c: t for c, t in extra.items() if t} == {}


def test_the_check_does_flag_an_unsupported_feature() -> None:
    html = digest_html("en").replace("</head>", "<style>.x{position:sticky;display:grid}</style></head>")
    ours = check(html)
    assert any("position:sticky" in titles or "display:grid" in titles for titles in ours.values()), ours
