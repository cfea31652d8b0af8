"""The CLI reference (docs/cli.md), generated from each command's --help."""

from __future__ import annotations

from collections.abc import Iterator

import click


def walk(command: click.Command, path: list[str]) -> Iterator[tuple[list[str], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            yield from walk(command.commands[name], [*path, name])


def _contexts(command: click.Command, path: list[str], parent: click.Context | None) -> Iterator[tuple[list[str], click.Context]]:
    # Each context has its parent, as on a real command line: settings such as `-h` are inherited.
    ctx = command.make_context(path[-1], [], parent=parent, resilient_parsing=True, terminal_width=100,
                               max_content_width=100)
    yield path, ctx
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            yield from _contexts(command.commands[name], [*path, name], ctx)


def cli_reference() -> str:
    from digest.cli import cli

    parts = ["# Command reference", "", "Generated from `--help` by `python scripts/gen_cli_docs.py`.", ""]
    for path, ctx in _contexts(cli, ["digest"], None):
        parts += [f"## `{' '.join(path)}`", "", "```text", ctx.command.get_help(ctx).rstrip(), "```", ""]
    return "\n".join(parts)
