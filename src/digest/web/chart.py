"""A server-side SVG bar chart of sends, deferrals and bounces per day: no JavaScript, readable without CSS."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from markupsafe import Markup

SERIES = (("sent", "#2da44e", "sent"), ("deferred", "#bf8700", "deferred"), ("bounced", "#cf222e", "bounced"))


def daily_chart(days: Sequence[dict[str, Any]], *, width: int = 720, height: int = 220) -> Markup:
    """Grouped bars, one group per day; each bar has a <title> with its exact count (shown on hover)."""
    left, bottom, top, right = 40, 40, 16, 8
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([1, *(int(d.get(key, 0)) for d in days for key, _, _ in SERIES)])
    group = plot_w / max(len(days), 1)
    bar = max(group / (len(SERIES) + 1), 1.0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="Sends, deferrals and bounces per day" font-family="sans-serif" font-size="11">',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#8c959f"/>',
             f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{peak}</text>',
             f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>']
    for index, day in enumerate(days):
        x0 = left + index * group + bar / 2
        for offset, (key, colour, label) in enumerate(SERIES):
            value = int(day.get(key, 0))
            h = plot_h * value / peak
            parts.append(f'<rect x="{x0 + offset * bar:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{colour}"><title>{escape(str(day.get("day", "")))}: {value} {label}</title></rect>')
        if len(days) <= 16 or index % max(len(days) // 12, 1) == 0:
            parts.append(f'<text x="{left + index * group + group / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle">'
                         f'{escape(str(day.get("day", ""))[5:])}</text>')
    for offset, (_, colour, label) in enumerate(SERIES):
        x = left + offset * 90
        parts.append(f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14}" y="{height - 5}">{label}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
