"""Shared CLI helpers: settings from the context, JSON output, rich consoles on stderr."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

import click
from rich.console import Console

from digest.config import Settings, load_settings

err_console = Console(stderr=True)
out_console = Console()


def settings_from(ctx: click.Context, *, require_file: bool = True) -> Settings:
    return load_settings(ctx.obj.get("config_path"), require_file=require_file)


def json_option(func: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")(func)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if hasattr(value, "value"):
        return value.value
    return str(value)


def interactive() -> bool:
    return sys.stderr.isatty()


def parse_instant(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not ISO 8601, e.g. 2026-11-28T07:00:00+09:00") from None
    if parsed.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no UTC offset; add one, e.g. Z or +09:00")
    return parsed.astimezone(dt.UTC)
