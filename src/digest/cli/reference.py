"""The CLI reference (docs/cli.md), generated from each command's --help."""

from __future__ import annotations

from collections.abc import Iterator

import click


def walk(command: click.Command, path: list[str]) -> Iterator[tuple[list[str], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            yield from walk(command.commands[name], [*path, name])


def cli_reference() -> str:
    from digest.cli import cli

    parts = ["# Command reference", "", "Generated from `--help` by `python scripts/gen_cli_docs.py`.", ""]
    for path, command in walk(cli, ["digest"]):
        with click.Context(command, info_name=" ".join(path), terminal_width=100, max_content_width=100) as ctx:
            help_text = command.get_help(ctx)
        parts += [f"## `{' '.join(path)}`", "", "```text", help_text.rstrip(), "```", ""]
    return "\n".join(parts)
