"""Group: assign recent articles to stories and attach related coverage.

`group_recent` (recent.py) is the database-facing entry point; the clustering
itself (cluster.py and the modules it uses) is pure Python + numpy. The import
of `group_recent` is lazy so that the feature-extraction worker processes, which
import `digest.group.text`, do not pay for SQLAlchemy and the configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from digest.group.recent import GroupReport, group_recent

__all__ = ["GroupReport", "group_recent"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from digest.group import recent

        return getattr(recent, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
