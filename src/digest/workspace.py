"""`digest init DIR`: a working folder with a config, a secret key, subscribers/ and template overrides."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from digest.errors import DigestError

CONFIG_TEMPLATE = """\
# digest configuration. Every key can be overridden by DIGEST_<SECTION>__<KEY>,
# e.g. DIGEST_SMTP__PORT=2525. Relative paths are relative to this file.
# Reference: docs/configuration.md

[database]
url = "sqlite:///digest.db"

[web]
base_url = "{base_url}"
secret_key_file = "secret.key"

[smtp]
host = "{smtp_host}"
port = {smtp_port}
starttls = false
max_connections = 4

[dispatch]
lease_seconds = 60
ambiguous = "resend"

[templates]
dir = "templates"          # files here override the bundled templates/email/*

{sources}
[[lists]]
slug = "daily"
name = "Daily Digest"
from = "Digest <digest@example.org>"
schedule = "0 7 * * *"
timezone = "UTC"
double_opt_in = true
max_stories = 10
"""

EXAMPLE_SOURCE = """\
[[sources]]
name = "Example News"
url = "https://example.org/feed/"
kind = "auto"
topics = ["news"]
"""


def write_secret(path: Path) -> None:
    path.write_text(secrets.token_urlsafe(48) + "\n", encoding="utf-8")
    os.chmod(path, 0o600)


def init_workspace(directory: Path, *, force: bool = False, base_url: str = "http://127.0.0.1:8000",
                   smtp_host: str = "127.0.0.1", smtp_port: int = 25, sources: str = EXAMPLE_SOURCE,
                   lists: str | None = None) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "digest.toml"
    if config.exists() and not force:
        raise DigestError(f"{config} already exists; pass --force to overwrite it")
    text = CONFIG_TEMPLATE.format(base_url=base_url, smtp_host=smtp_host, smtp_port=smtp_port, sources=sources)
    if lists is not None:
        text = text[: text.index("[[lists]]")] + lists
    config.write_text(text, encoding="utf-8")
    written = [config]
    secret = directory / "secret.key"
    if not secret.exists():
        write_secret(secret)
        written.append(secret)
    for folder, readme in (
        ("subscribers", "One <list-slug>.csv per list (header: email,name,timezone,send_hour,topics,locale).\n"
                        "`digest subscribers sync subscribers/` imports them; it is safe to run again.\n"),
        ("templates", "Templates placed here override the bundled ones of the same name\n"
                      "(digest.mjml.j2, digest.txt.j2, confirm.mjml.j2, partials/…).\n"),
    ):
        path = directory / folder
        path.mkdir(exist_ok=True)
        note = path / "README.txt"
        if not note.exists():
            note.write_text(readme, encoding="utf-8")
            written.append(note)
    return written
