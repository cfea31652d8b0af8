"""Process-level set-up shared by the long-running processes (web workers, the mailer)."""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Move everything start-up allocated (modules, metadata, templates) out of the garbage collector's sight.

    Otherwise every full collection walks those objects again: measured 60-150 ms each, a pause that every
    request in flight waits out, or that a process holding SQLite's write lock makes everyone else wait out.
    Only for server processes; a test run that builds many apps should not keep them.
    """
    gc.collect()
    gc.freeze()
