"""Getting bytes for a source: http(s) with conditional GET and a size cap, or a local file."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx

from digest.config import GatherSettings
from digest.errors import FetchError
from digest.gather.items import FetchResult


def fetch(url: str, settings: GatherSettings, *, etag: str | None = None, last_modified: str | None = None,
          client: httpx.Client | None = None) -> FetchResult:
    scheme = urlsplit(url).scheme
    if scheme in {"http", "https"}:
        return _fetch_http(url, settings, etag=etag, last_modified=last_modified, client=client)
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


def _fetch_http(url: str, settings: GatherSettings, *, etag: str | None, last_modified: str | None,
                client: httpx.Client | None) -> FetchResult:
    headers = {"User-Agent": settings.user_agent, "Accept": "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, text/html;q=0.8, */*;q=0.5"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    own = client is None
    client = client or httpx.Client(timeout=settings.timeout, follow_redirects=True, max_redirects=5)
    try:
        with client.stream("GET", url, headers=headers, timeout=settings.timeout) as response:
            permanent = any(r.status_code in (301, 308) for r in response.history)
            result = FetchResult(
                status=response.status_code,
                content_type=response.headers.get("content-type", ""),
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
                final_url=str(response.url),
                permanent_redirect=permanent,
            )
            if response.status_code == 304:
                return result
            if response.status_code >= 400:
                raise FetchError(f"HTTP {response.status_code} {response.reason_phrase}".strip())
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > settings.max_bytes:
                raise FetchError(f"body is {declared} bytes, over the {settings.max_bytes}-byte cap")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > settings.max_bytes:
                    raise FetchError(f"body exceeds the {settings.max_bytes}-byte cap")
                chunks.append(chunk)
            result.body = b"".join(chunks)
            return result
    except httpx.TooManyRedirects:
        raise FetchError("too many redirects") from None
    except httpx.TimeoutException:
        raise FetchError(f"timed out after {settings.timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{exc.__class__.__name__}: {exc}") from None
    finally:
        if own:
            client.close()
