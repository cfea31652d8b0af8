"""The upcoming edition of a list as a reviewer sees it; nothing is stored or sent.

`build_preview()` renders exactly what `build` would (same story choice, same templates, same message
skeleton, DKIM if configured) for a sample recipient, and lints it; `preview_page()` lays it out for a
browser: the HTML at 600 px and 375 px, the text part, the headers, the size and the lint results.
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.utils import parseaddr
from zoneinfo import ZoneInfo

from digest.build.edition import story_view
from digest.build.select import choose_stories
from digest.config import Settings
from digest.db import stories as story_queries
from digest.db.session import Database
from digest.dispatch.dkim import sign_message
from digest.render.digest_email import ListView, greeting, render_digest
from digest.render.headers import default_unsubscribe_mailto
from digest.render.lint import lint_html, lint_message
from digest.render.message import list_id, sender_domain
from digest.render.skeleton import Recipient, cached_skeleton

SAMPLE_READER = ("Preview Reader", "reader@example.com")


@dataclass
class Preview:
    subject: str
    html: str
    text: str
    message: bytes
    headlines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def headers(self) -> list[tuple[str, str]]:
        head = self.message.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
        unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ")
        return [tuple(line.split(":", 1)) for line in unfolded.split("\r\n") if ":" in line]  # type: ignore[misc]


def build_preview(database: Database, settings: Settings, slug: str, *, now: dt.datetime, locale: str = "en") -> Preview:
    conf = settings.get_list(slug)
    with database.session() as session:
        candidates = story_queries.recent_stories(session, now - dt.timedelta(days=settings.group.window_days))
        stories = choose_stories(candidates, now=now, topics=conf.topics, limit=conf.max_stories)
        related = story_queries.stories_by_id(session, sorted({r for s in stories for r in s.related_story_ids}))
        views = [story_view(s, related) for s in stories]
    date_label = now.astimezone(ZoneInfo(conf.timezone)).strftime("%Y-%m-%d")
    subject = f"{conf.name} · {date_label}" + (f": {views[0].headline}" if views else "")
    body = render_digest(views, ListView(conf.name, conf.slug, conf.address, sender=parseaddr(conf.from_)[0]),
                         locale=locale, date_label=date_label, subject=subject[:200], override_dir=settings.templates.dir)
    domain = sender_domain(conf.from_)
    skeleton = cached_skeleton(body.html, body.text, body.token, body.subject, conf.from_,
                               list_id(conf.name, conf.slug, domain), f"preview:{conf.slug}:digest",
                               default_unsubscribe_mailto(conf.from_))
    greet_html, greet_text = greeting(locale, SAMPLE_READER[0])
    base = settings.web.base_url
    message = skeleton.render(Recipient(
        email=SAMPLE_READER[1], name=SAMPLE_READER[0], message_id=f"<preview.{conf.slug}@{domain}>", date=now,
        greeting_html=greet_html, greeting_text=greet_text,
        unsubscribe_url=f"{base}/u/preview-token", preferences_url=f"{base}/p/preview-token"))
    message = sign_message(settings.dkim, message)
    parsed = message_from_bytes(message, policy=policy.default)
    html = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    problems = sorted(set(lint_message(message)) | set(lint_html(html)) | set(body.notes))
    return Preview(subject=body.subject, html=html, text=text, message=message,
                   headlines=[v.headline for v in views], problems=problems)


def preview_page(preview: Preview) -> str:
    """The reviewer's page: both widths side by side (the email itself is served at /email.html)."""
    e = html_lib.escape
    size = len(preview.html.encode("utf-8"))
    lint = ("<p class=ok>No problems found.</p>" if not preview.problems else
            "<ul class=bad>" + "".join(f"<li>{e(p)}</li>" for p in preview.problems) + "</ul>")
    headers = "".join(f"<tr><th>{e(k)}</th><td>{e(v.strip())}</td></tr>" for k, v in preview.headers)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Preview: {e(preview.subject)}</title>
<style>
 body{{font:14px/1.45 system-ui,sans-serif;margin:1.5rem;color:#1f2328}} h1{{font-size:1.2rem}}
 .frames{{display:flex;gap:1.5rem;align-items:flex-start;flex-wrap:wrap}} iframe{{border:1px solid #d0d7de;height:900px}}
 table{{border-collapse:collapse}} th,td{{text-align:left;vertical-align:top;padding:.2rem .6rem;border-bottom:1px solid #eee}}
 pre{{white-space:pre-wrap;background:#f6f8fa;padding:1rem;max-width:80ch}} .bad{{color:#b42318}} .ok{{color:#1a7f37}}
</style></head><body>
<h1>{e(preview.subject)}</h1>
<p>HTML part {size / 1024:.1f} KB (Gmail clips past ~102 KB) · message {len(preview.message) / 1024:.1f} KB</p>
<h2>Lint</h2>{lint}
<h2>Desktop (600 px) and phone (375 px)</h2>
<div class="frames"><iframe title="600 px" src="/email.html" width="600"></iframe>
<iframe title="375 px" src="/email.html" width="375"></iframe></div>
<h2>Text part</h2><pre>{e(preview.text)}</pre>
<h2>Headers</h2><table>{headers}</table>
</body></html>
"""


def preview_routes(preview: Preview) -> dict[str, tuple[str, bytes]]:
    """Path → (content type, body) for the preview server."""
    return {
        "/": ("text/html; charset=utf-8", preview_page(preview).encode()),
        "/email.html": ("text/html; charset=utf-8", preview.html.encode()),
        "/email.txt": ("text/plain; charset=utf-8", preview.text.encode()),
        "/email.eml": ("message/rfc822", preview.message),
    }
