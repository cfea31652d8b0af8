"""Gather: fetch every enabled source, parse, sanitise, dedupe, store.

`gather_sources()` (run.py) is the stage's one entry point. This package module
imports it lazily, so a parse process (parsejob.py) that imports the parsers does
not pay for the database and HTTP layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from digest.gather.items import Item, SourceOutcome
    from digest.gather.run import gather_sources

__all__ = ["gather_sources", "SourceOutcome", "Item"]


def __getattr__(name: str) -> Any:
    if name == "gather_sources":
        from digest.gather.run import gather_sources

        return gather_sources
    if name in ("SourceOutcome", "Item"):
        from digest.gather import items

        return getattr(items, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
