"""The digest email of one edition variant, compiled once, with placeholders for each recipient."""

from __future__ import annotations

import html
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from digest.render.strings import strings_for
from digest.render.templates import render_email

PLACEHOLDER_FIELDS = ("GREETING", "UNSUBSCRIBE", "PREFERENCES", "CONFIRM")


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


@dataclass
class ListView:
    name: str
    slug: str
    address: str = ""


@dataclass
class RenderedBody:
    subject: str
    html: str
    text: str
    token: str  # per-variant secret that makes placeholders unguessable

    def placeholder(self, name: str) -> str:
        return placeholder(self.token, name)


def new_token() -> str:
    return secrets.token_hex(8)


def placeholder(token: str, name: str) -> str:
    # Letters and digits only: survives premailer, URL attributes and quoted-printable untouched.
    return f"ZQ{token}{name}QZ"


def fill(body: str, token: str, values: dict[str, str]) -> str:
    """One pass over `body`: substituted values are never scanned again, so they cannot inject."""
    pattern = re.compile(f"ZQ{token}([A-Z]+)QZ")
    return pattern.sub(lambda m: values.get(m.group(1), ""), body)


def render_digest(stories: list[StoryView], mailing_list: ListView, *, locale: str, date_label: str,
                  subject: str, override_dir: Path | None = None, token: str | None = None) -> RenderedBody:
    token = token or new_token()
    t = strings_for(locale)
    lead = stories[0].headline if stories else ""
    preheader = t["preheader"].format(count=len(stories), lead=lead)
    if len(preheader) > 130:
        preheader = preheader[:129].rsplit(" ", 1)[0] + "…"
    context = {
        "lang": (locale or "en").split("-")[0],
        "title": subject,
        "preheader": preheader,
        "mailing_list": mailing_list,
        "date_label": date_label,
        "stories": stories,
        "greeting": placeholder(token, "GREETING"),
        "links": {"unsubscribe": placeholder(token, "UNSUBSCRIBE"), "preferences": placeholder(token, "PREFERENCES")},
        "footer_reason": t["footer_reason"].format(list=mailing_list.name),
        **{f"t_{key}": value for key, value in t.items()},
    }
    html_body, text_body = render_email("digest", context, override_dir)
    return RenderedBody(subject=subject, html=html_body, text=text_body, token=token)


def render_confirm(mailing_list: ListView, *, locale: str, override_dir: Path | None = None) -> RenderedBody:
    token = new_token()
    t = strings_for(locale)
    subject = t["confirm_subject"].format(list=mailing_list.name)
    context = {
        "lang": (locale or "en").split("-")[0],
        "title": subject,
        "preheader": t["confirm_body"].format(list=mailing_list.name)[:130],
        "mailing_list": mailing_list,
        "links": {"confirm": placeholder(token, "CONFIRM")},
        **{f"t_{key}": value.format(list=mailing_list.name) for key, value in t.items() if key.startswith("confirm")},
    }
    html_body, text_body = render_email("confirm", context, override_dir)
    return RenderedBody(subject=subject, html=html_body, text=text_body, token=token)


def greeting(locale: str, name: str) -> tuple[str, str]:
    """(html, text) greeting for one recipient; the name is escaped for the HTML part."""
    t = strings_for(locale)
    if not name:
        return t["greeting_anonymous"], t["greeting_anonymous"]
    return t["greeting"].format(name=html.escape(name)), t["greeting"].format(name=name)
