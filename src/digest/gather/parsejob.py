"""The CPU-heavy half of gathering one source, in a form a process pool can run: bytes in, plain items out.

`parse_feed()` parses, drops items past the age limit and fingerprints the rest;
`extract()` reads one article page. Both import only the parsers (no database,
no HTTP client), so a parse process starts quickly. The orchestrator (run.py)
runs them in a pool of processes when there are enough sources to make that
pay, so parsing uses every core while the main process fetches and stores;
otherwise they run in the worker thread.
"""

from __future__ import annotations

import datetime as dt

from digest.gather.dedupe import fingerprints
from digest.gather.items import Item
from digest.gather.parse import parse


def parse_feed(body: bytes, *, kind: str, base_url: str, content_type: str, max_items: int, oldest: dt.datetime,
               with_fingerprints: bool = True) -> tuple[int, list[Item]]:
    """(items in the feed, the items recent enough to keep — fingerprinted unless told not to)."""
    items = parse(body, kind=kind, base_url=base_url, content_type=content_type, max_items=max_items)
    kept = [i for i in items if i.published_at is None or i.published_at >= oldest]
    if with_fingerprints:
        add_fingerprints(kept)
    return len(items), kept


def add_fingerprints(items: list[Item]) -> None:
    for item, signature in zip(items, fingerprints([(i.title, i.text) for i in items])):
        item.fingerprint = signature


def extract(body: bytes, url: str) -> Item:
    from digest.gather.page import extract_page  # trafilatura is heavy: only page work imports it

    return extract_page(body, url)


def warm_up() -> None:
    """Run once in each new parse process: the imports are done before the first feed arrives."""
