"""Gmail clip guard: keep the HTML part under ~100 KB, trimming stories before the footer is lost.

Gmail hides everything past ~102 KB of HTML behind "[Message clipped]" — including the footer
with the unsubscribe link. We shrink the edition step by step (shorter summaries with a
"Read more" link, then stories as headline links, then a count of the rest) and always render
the footer. Sizing uses the cheap MJML compile scaled by premailer's measured growth; only
the chosen shape pays for premailer, plus a re-check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

CLIP_LIMIT = 100_000  # bytes of decoded HTML; Gmail clips at ~102 KB
RECIPIENT_RESERVE = 2_000  # per-recipient values (URLs, name) are longer than their placeholders
HTML_BUDGET = CLIP_LIMIT - RECIPIENT_RESERVE

Shape = tuple[int, int, bool]  # (stories as full cards incl. the lead, as headline links, short summaries)


def shapes(count: int) -> list[Shape]:
    """Every shape from the full edition to the lead alone, roughly largest first."""
    out: list[Shape] = [(count, 0, False)]
    if count > 1:
        out.append((count, 0, True))
    out += [(full, count - full, True) for full in range(count - 1, 0, -1)]
    out += [(1, compact, True) for compact in range(count - 2, -1, -1)]
    return out


def fit_to_budget(count: int, measure: Callable[[int, int, bool], str], inline: Callable[[str], str],
                  budget: int = HTML_BUDGET) -> tuple[Shape, str, list[str]]:
    """The largest shape whose inlined HTML fits `budget` bytes: (shape, html, notes)."""
    options = shapes(count) or [(0, 0, False)]
    html = inline(measure(*options[0]))
    size = _size(html)
    if size <= budget:
        return options[0], html, []
    if len(options) == 1:  # a lone lead story cannot shrink further
        return options[0], html, [f"HTML {size} bytes > {budget} with a single story"]
    ratio = size / max(_size(measure(*options[0])), 1)
    # Binary search on the estimate (MJML only: ~1 ms a try), then confirm with premailer.
    low, high = 1, len(options) - 1
    while low < high:
        middle = (low + high) // 2
        if _size(measure(*options[middle])) * ratio <= budget:
            high = middle
        else:
            low = middle + 1
    index = low
    while True:
        html = inline(measure(*options[index]))
        if _size(html) <= budget or index == len(options) - 1:
            break
        index += 1
    full, compact, short = options[index]
    note = (f"HTML {size} bytes > {budget}: kept {full} full stories, {compact} as links, "
            f"{max(count - full - compact, 0)} left out")
    log.info("clip guard: %s", note)
    return options[index], html, [note]


def _size(html: str) -> int:
    return len(html.encode("utf-8"))
