"""One exception tree for the whole package.

    DigestError
    ├── ConfigError            a setting is missing or wrong (names the key and the fix)
    ├── SourceError            one source could not be gathered
    │   ├── FetchError         transport: DNS, timeout, HTTP status, size cap
    │   └── ParseError         the bytes are not a usable feed or page
    ├── RenderError            a template failed to render or compile
    ├── AudienceError          subscriber data is invalid (bad address, unknown list)
    ├── TokenError             a signed token is forged, altered, expired or out of scope
    └── DispatchError          a message could not be handed to SMTP
        ├── TransientDispatchError   4xx / connection trouble: retry later
        └── PermanentDispatchError   5xx: do not retry, suppress

The CLI turns any DigestError into a one-line reason and a non-zero exit; the
web layer maps them to status codes in one place.
"""

from __future__ import annotations


class DigestError(Exception):
    """Base class of every error digest raises on purpose."""


class ConfigError(DigestError):
    def __init__(self, key: str, problem: str, fix: str = "") -> None:
        self.key = key
        self.problem = problem
        self.fix = fix
        text = f"config key '{key}': {problem}"
        if fix:
            text += f" (fix: {fix})"
        super().__init__(text)


class SourceError(DigestError):
    """A source failed; the reason is recorded against it and the run goes on."""


class FetchError(SourceError):
    pass


class ParseError(SourceError):
    pass


class RenderError(DigestError):
    pass


class AudienceError(DigestError):
    pass


class TokenError(DigestError):
    pass


class DispatchError(DigestError):
    def __init__(self, message: str, code: int | None = None) -> None:
        self.code = code
        super().__init__(message)


class TransientDispatchError(DispatchError):
    pass


class PermanentDispatchError(DispatchError):
    pass
