"""The emails of one edition variant (and the one-off notices), compiled once with placeholders.

Per recipient only the placeholders change, by `fill()`: one pass over the compiled text with
values escaped for their context. The compiled HTML is never rendered as a Jinja template
again, so an article title such as ``{{ 7*7 }}`` reaches the reader literally.
"""

from __future__ import annotations

import html
import re
import secrets
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from digest.render.clip import HTML_BUDGET, fit_to_budget
from digest.render.i18n import CJK_LANGUAGES, font_stack, language_of, translations
from digest.render.templates import inline_css, render_email, render_mjml, render_text

PLACEHOLDER_FIELDS = ("GREETING", "UNSUBSCRIBE", "PREFERENCES", "CONFIRM", "SUBSCRIBE")
PREHEADER_MIN, PREHEADER_MAX = 40, 130
# Invisible filler after the preheader so clients do not pull body text into the inbox preview.
PREHEADER_FILLER = "\u034f\u200c\u00a0" * 24
SHORT_SUMMARY = 160


@dataclass
class SourceLink:
    name: str
    url: str


@dataclass
class StoryView:
    """What a template needs of a story; built by the build stage from stored stories."""

    id: int
    headline: str
    url: str
    summary: str = ""
    image_url: str = ""
    topics: list[str] = field(default_factory=list)
    sources: list[SourceLink] = field(default_factory=list)
    related: list[SourceLink] = field(default_factory=list)  # name = headline
    trimmed: bool = False  # summary cut short by the clip guard: the card shows "Read more"


@dataclass
class ListView:
    name: str
    slug: str
    address: str = ""  # postal line shown in every footer
    sender: str = ""  # who sends it, e.g. "Example News"
    description: str = ""


@dataclass
class Section:
    title: str
    stories: list[StoryView]


@dataclass
class RenderedBody:
    subject: str
    html: str
    text: str
    token: str  # per-variant secret that makes placeholders unguessable
    notes: list[str] = field(default_factory=list)  # e.g. what the clip guard trimmed

    def placeholder(self, name: str) -> str:
        return placeholder(self.token, name)


def new_token() -> str:
    return secrets.token_hex(8)


def placeholder(token: str, name: str) -> str:
    # Letters and digits only: survives premailer, URL attributes and quoted-printable untouched.
    return f"ZQ{token}{name}QZ"


@lru_cache(maxsize=256)
def _placeholder_pattern(token: str) -> re.Pattern[str]:
    return re.compile(f"ZQ{re.escape(token)}([A-Z]+)QZ")


def fill(body: str, token: str, values: dict[str, str]) -> str:
    """One pass over `body`: substituted values are never scanned again, so they cannot inject."""
    return _placeholder_pattern(token).sub(lambda m: values.get(m.group(1), ""), body)


def _base_context(locale: str, title: str, preheader: str, mailing_list: ListView, token: str) -> dict[str, Any]:
    lang = language_of(locale)
    return {
        "lang": lang, "cjk": lang in CJK_LANGUAGES, "font_stack": font_stack(lang), "title": title,
        "preheader": preheader, "preheader_filler": PREHEADER_FILLER, "mailing_list": mailing_list,
        "date_label": "", "greeting": "", "footer_reason": "",
        "links": {name.lower(): "" for name in PLACEHOLDER_FIELDS},
    }


def clamp_preheader(text: str, extra: list[str]) -> str:
    """40–130 characters: extend with `extra` phrases while short, cut at a word while long."""
    text = " ".join(text.split())
    for more in extra:
        if len(text) >= PREHEADER_MIN:
            break
        text = f"{text} · {' '.join(more.split())}" if text else more
    if len(text) > PREHEADER_MAX:
        text = text[: PREHEADER_MAX - 1].rsplit(" ", 1)[0].rstrip(" ·:,") + "…"
    return text


def render_digest(stories: list[StoryView], mailing_list: ListView, *, locale: str, date_label: str,
                  subject: str, override_dir: Path | None = None, token: str | None = None,
                  by_topic: bool | None = None, budget: int = HTML_BUDGET) -> RenderedBody:
    """Compile one variant: lead story, cards (in topic sections when useful), footer; ≤ `budget` bytes of HTML."""
    token = token or new_token()
    t = translations(locale)
    lead_headline = stories[0].headline if stories else ""
    preheader = clamp_preheader(
        t.ngettext("%(num)d story today: %(lead)s", "%(num)d stories today: %(lead)s", len(stories))
        % {"num": len(stories), "lead": lead_headline},
        [s.headline for s in stories[1:4]] + [mailing_list.name, date_label],
    )
    base = _base_context(locale, subject, preheader, mailing_list, token)
    base.update(
        date_label=date_label,
        greeting=placeholder(token, "GREETING"),
        footer_reason=t.gettext("You receive %(list)s because you subscribed to it.") % {"list": mailing_list.name},
        links={**base["links"], "unsubscribe": placeholder(token, "UNSUBSCRIBE"),
               "preferences": placeholder(token, "PREFERENCES")},
    )
    stories = [replace(s, image_url=s.image_url if s.image_url.startswith("https://") else "") for s in stories]
    grouped = _wants_sections(stories) if by_topic is None else by_topic
    other = t.gettext("Other stories")

    def context_for(full: int, compact: int, short: bool) -> dict[str, Any]:
        cards = [_shorten(s) if short and i else s for i, s in enumerate(stories[:full])]
        return {**base, "lead": cards[0] if cards else None, "sections": _sections(cards[1:], grouped, other),
                "more": stories[full:full + compact], "omitted": max(len(stories) - full - compact, 0)}

    def measure(full: int, compact: int, short: bool) -> str:
        return render_mjml("digest", context_for(full, compact, short), override_dir, locale)

    (full, compact, short), html_body, notes = fit_to_budget(len(stories), measure, inline_css, budget)
    text_body = render_text("digest", context_for(full, compact, short), override_dir, locale)
    return RenderedBody(subject=subject, html=html_body, text=text_body, token=token, notes=notes)


def _shorten(story: StoryView) -> StoryView:
    if len(story.summary) <= SHORT_SUMMARY:
        return story
    cut = story.summary[: SHORT_SUMMARY - 1].rsplit(" ", 1)[0].rstrip(" ,;:.") + "…"
    return replace(story, summary=cut, trimmed=True)


def _wants_sections(stories: list[StoryView]) -> bool:
    """Topic headings help a long, mixed edition; a short or single-topic one reads better without."""
    return len(stories) >= 5 and len({s.topics[0] for s in stories[1:] if s.topics}) >= 2


def _sections(cards: list[StoryView], grouped: bool, other: str) -> list[Section]:
    if not cards:
        return []
    if not grouped:
        return [Section("", cards)]
    by_topic: dict[str, list[StoryView]] = {}
    for story in cards:  # rank order inside a topic; topics ordered by their best story
        by_topic.setdefault(story.topics[0] if story.topics else "", []).append(story)
    titled = [Section(_topic_title(k), v) for k, v in by_topic.items() if k]
    return titled + ([Section(other, by_topic[""])] if "" in by_topic else [])


def _topic_title(topic: str) -> str:
    label = topic.replace("-", " ").replace("_", " ").strip()
    return label[:1].upper() + label[1:]


def _render_notice(base_name: str, mailing_list: ListView, *, locale: str, subject: str, preheader: str,
                   links: tuple[str, ...], footer_reason: str = "", override_dir: Path | None = None,
                   token: str | None = None) -> RenderedBody:
    token = token or new_token()
    context = _base_context(locale, subject, clamp_preheader(preheader, [mailing_list.name]), mailing_list, token)
    context["footer_reason"] = footer_reason
    context["links"].update({name.lower(): placeholder(token, name) for name in links})
    html_body, text_body = render_email(base_name, context, override_dir, locale)
    return RenderedBody(subject=subject, html=html_body, text=text_body, token=token)


def render_confirm(mailing_list: ListView, *, locale: str, override_dir: Path | None = None,
                   token: str | None = None) -> RenderedBody:
    """Double opt-in request; placeholder CONFIRM."""
    t = translations(locale)
    name = {"list": mailing_list.name}
    return _render_notice(
        "confirm", mailing_list, locale=locale, override_dir=override_dir, token=token, links=("CONFIRM",),
        subject=t.gettext("Please confirm your subscription to %(list)s") % name,
        preheader=t.gettext("Someone (hopefully you) asked to receive %(list)s. Confirm with the button below.") % name,
    )


def render_welcome(mailing_list: ListView, *, locale: str, override_dir: Path | None = None,
                   token: str | None = None) -> RenderedBody:
    """Sent once confirmed; placeholders UNSUBSCRIBE and PREFERENCES."""
    t = translations(locale)
    name = {"list": mailing_list.name}
    return _render_notice(
        "welcome", mailing_list, locale=locale, override_dir=override_dir, token=token,
        links=("UNSUBSCRIBE", "PREFERENCES"), subject=t.gettext("Welcome to %(list)s") % name,
        preheader=t.gettext("Thank you for confirming. The next edition of %(list)s will arrive in this inbox.") % name,
        footer_reason=t.gettext("You receive %(list)s because you subscribed to it.") % name,
    )


def render_unsubscribed(mailing_list: ListView, *, locale: str, override_dir: Path | None = None,
                        token: str | None = None) -> RenderedBody:
    """Confirms an unsubscription; placeholder SUBSCRIBE (a link to sign up again)."""
    t = translations(locale)
    name = {"list": mailing_list.name}
    return _render_notice(
        "unsubscribed", mailing_list, locale=locale, override_dir=override_dir, token=token, links=("SUBSCRIBE",),
        subject=t.gettext("You have been unsubscribed from %(list)s") % name,
        preheader=t.gettext("You will not receive %(list)s any more.") % name,
    )


def greeting(locale: str, name: str) -> tuple[str, str]:
    """(html, text) greeting for one recipient; the name is escaped for the HTML part."""
    t = translations(locale)
    name = " ".join((name or "").split())[:80]
    if not name:
        text = t.gettext("Hello, here is your digest.")
        return html.escape(text), text
    template = t.gettext("Hello %(name)s, here is your digest.")
    return html.escape(template) % {"name": html.escape(name)}, template % {"name": name}
