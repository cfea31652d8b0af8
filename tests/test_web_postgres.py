"""The public pages on PostgreSQL, where requests run in concurrent transactions (no group writer)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
from sqlalchemy import func, select

from digest.audience.confirmations import send_all_due
from digest.config import Settings
from digest.db.models import Consent, OutboxMail, Subscriber, Subscription
from digest.demo.capture import CaptureServer
from digest.pipeline import connect
from digest.web.app import create_app
from test_web_helpers import subscribe, token_for


def count(settings: Settings, model: type) -> int:
    with connect(settings).session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


async def post_all(app: object, requests: list[tuple[str, dict[str, str]]]) -> list[int]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answers = await asyncio.gather(*(client.post(path, data=form) for path, form in requests))
    return [a.status_code for a in answers]


def test_sign_up_confirm_and_one_click_on_postgresql(workspace: tuple[Path, Settings], smtp_server: CaptureServer,
                                                     pg_url: str) -> None:
    _, settings = workspace
    settings.database.url = pg_url
    app = create_app(settings)
    assert app.state.context._writer is None  # concurrent transactions on the thread pool

    # Different people at once, and the same new address from two tabs at once: one subscriber, no 500 (the
    # per-address counter's row lock orders the two; the second finds the first's pending subscription).
    forms = [("/subscribe", {"email": f"p{i}@example.com", "list": "daily"}) for i in range(8)]
    forms += [("/subscribe", {"email": "twice@example.com", "list": "daily"})] * 2
    assert asyncio.run(post_all(app, forms)) == [200] * 10
    assert count(settings, Subscriber) == 9 and count(settings, Subscription) == 9
    assert count(settings, Consent) == 10  # each request is a consent record of its own

    assert count(settings, OutboxMail) == 10  # a confirm mail per request, queued with it (at most 3 a day each)
    assert send_all_due(connect(settings), settings).sent == 10 and count(settings, OutboxMail) == 0
    assert [r for m in smtp_server.messages for r in m.rcpt_tos].count("twice@example.com") == 2

    mail = next(m for m in smtp_server.messages if m.rcpt_tos == ["p3@example.com"])
    body = mail.parse().get_body(("plain",)).get_content()
    confirm = re.search(r"https://news\.digest\.example(/confirm/\S+)", body)
    assert confirm
    unsubscribe = token_for(settings, "unsubscribe", subscribe(settings, "p4@example.com"))  # confirmed by an admin
    statuses = asyncio.run(post_all(app, [(confirm.group(1), {}),
                                          (f"/u/{unsubscribe}", {"List-Unsubscribe": "One-Click"})]))
    assert statuses == [200, 200]
    with connect(settings).session() as session:
        rows = {s.subscriber.email: s.status.value for s in session.scalars(select(Subscription))}
    assert rows["p3@example.com"] == "confirmed" and rows["p4@example.com"] == "unsubscribed"
    assert rows["p5@example.com"] == "pending"
