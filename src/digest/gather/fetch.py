"""Getting bytes for a source: http(s) with conditional GET, caps and status handling, or a local file.

Status handling is the source's life cycle: 304 is "nothing new", 301/308 move
the stored URL (302/307 do not), 410 retires the source, 429/503 with
Retry-After park it until then. Everything else ≥ 400 is an error for this run.
"""

from __future__ import annotations

import datetime as dt
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from digest.config import GatherSettings
from digest.errors import FetchError
from digest.gather.items import FetchResult

FEED_ACCEPT = ("application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
               "application/xml;q=0.9, text/xml;q=0.9, text/html;q=0.5, */*;q=0.1")
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
DEFAULT_429_WAIT = 3600.0  # a 429 without Retry-After: wait an hour rather than hammer


class SourceGone(FetchError):
    """HTTP 410: the publisher says the feed is gone for good."""


class Throttled(FetchError):
    """HTTP 429/503 with a wait: do not ask again for `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(message)


def make_client(settings: GatherSettings) -> httpx.Client:
    """One pooled client per run; thread-safe, decompresses gzip/deflate (br/zstd when installed)."""
    timeout = httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout, pool=settings.timeout)
    limits = httpx.Limits(max_connections=settings.concurrency * 2, max_keepalive_connections=settings.concurrency)
    return httpx.Client(timeout=timeout, limits=limits, follow_redirects=True, max_redirects=settings.max_redirects,
                        headers={"User-Agent": settings.user_agent})


def fetch(url: str, settings: GatherSettings, *, etag: str | None = None, last_modified: str | None = None,
          client: httpx.Client | None = None, accept: str = FEED_ACCEPT) -> FetchResult:
    scheme = urlsplit(url).scheme
    if scheme in {"http", "https"}:
        own = client is None
        client = client or make_client(settings)
        try:
            return _fetch_http(client, url, settings, etag=etag, last_modified=last_modified, accept=accept)
        finally:
            if own:
                client.close()
    if scheme in {"", "file"}:
        return _read_file(url.removeprefix("file://"), settings.max_bytes)
    raise FetchError(f"unsupported URL scheme {scheme!r}; use http(s) or a file path")


def _read_file(path: str, max_bytes: int) -> FetchResult:
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > max_bytes:
            raise FetchError(f"file is {size} bytes, over the {max_bytes}-byte cap")
        return FetchResult(status=200, body=file.read_bytes())
    except FileNotFoundError:
        raise FetchError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise FetchError(f"is a directory: {path}") from None
    except PermissionError:
        raise FetchError(f"permission denied: {path}") from None


def _fetch_http(client: httpx.Client, url: str, settings: GatherSettings, *, etag: str | None,
                last_modified: str | None, accept: str) -> FetchResult:
    headers = {"Accept": accept}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    # Read timeouts bound each wait; this bounds the whole transfer (a server trickling bytes never trips them).
    deadline = time.monotonic() + settings.timeout
    try:
        with client.stream("GET", url, headers=headers) as response:
            result = FetchResult(
                status=response.status_code,
                content_type=response.headers.get("content-type", ""),
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
                final_url=str(response.url),
                moved_to=_permanent_target(response),
            )
            _check_status(response, settings)
            if response.status_code == 304:
                return result
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > settings.max_bytes:
                raise FetchError(f"body is {declared} bytes, over the {settings.max_bytes}-byte cap")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():  # decompressed: the cap also stops compression bombs
                size += len(chunk)
                if size > settings.max_bytes:
                    raise FetchError(f"body exceeds the {settings.max_bytes}-byte cap")
                if time.monotonic() > deadline:
                    raise FetchError(f"too slow: not complete after {settings.timeout:g}s")
                chunks.append(chunk)
            result.body = b"".join(chunks)
            return result
    except httpx.TooManyRedirects:
        raise FetchError(f"too many redirects (more than {settings.max_redirects}, or a loop)") from None
    except httpx.ConnectTimeout:
        raise FetchError(f"connect timed out after {settings.connect_timeout:g}s") from None
    except httpx.TimeoutException:
        raise FetchError(f"timed out: no data for {settings.read_timeout:g}s") from None
    except httpx.DecodingError as exc:
        raise FetchError(f"cannot decompress the response: {exc}") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{exc.__class__.__name__}: {exc}".rstrip(": ")) from None
    except (httpx.InvalidURL, ValueError) as exc:
        raise FetchError(f"invalid URL: {exc}") from None


def _check_status(response: httpx.Response, settings: GatherSettings) -> None:
    code = response.status_code
    if 200 <= code < 300 or code == 304:
        return
    reason = f"HTTP {code} {response.reason_phrase}".strip()
    if code == 410:
        raise SourceGone(f"{reason}: the source is retired")
    if code in (429, 503):
        wait = retry_after_seconds(response.headers.get("retry-after"), now=dt.datetime.now(dt.UTC))
        if wait is None and code == 429:
            wait = DEFAULT_429_WAIT
        if wait is not None:
            wait = min(wait, float(settings.retry_after_max))
            raise Throttled(f"{reason}: retry after {wait:.0f}s", wait)
    raise FetchError(reason)


def retry_after_seconds(value: str | None, *, now: dt.datetime) -> float | None:
    """Retry-After is delta-seconds or an HTTP-date (RFC 9110 §10.2.3); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


def _permanent_target(response: httpx.Response) -> str | None:
    """The URL reached through an unbroken chain of 301/308 hops; a 302/307 anywhere before it stops the chain."""
    moved: str | None = None
    hops = [*response.history, response]
    for hop, following in zip(hops, hops[1:]):
        if hop.status_code not in (301, 308):
            break
        moved = str(following.url)
    return moved
