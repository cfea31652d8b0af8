"""`digest …`: the one entry point. Each verb is a thin wrapper over one library function."""

from __future__ import annotations

import logging
import sys

import click

from digest import __version__
from digest.cli.admin_cmds import admin
from digest.cli.audience_cmds import subscribers
from digest.cli.demo_cmd import demo
from digest.cli.dispatch_cmds import bounces, edition, send, status, worker
from digest.cli.ops_cmds import db, init, mailer, preview, schedule, scheduler, serve
from digest.cli.pipeline_cmds import build, gather, group, run, sources
from digest.errors import DigestError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="digest")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar=None,
              help="Path of digest.toml (default: $DIGEST_CONFIG, then ./digest.toml).")
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """digest: gather feeds, group stories, render a digest and deliver it over SMTP."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    ctx.obj = {"config_path": config_path, "verbose": verbose}


for command in (init, demo, gather, sources, group, run, build, send, status, subscribers, preview, schedule, scheduler, worker,
                serve, mailer, db, edition, bounces, admin):
    cli.add_command(command)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DigestError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: one line, and the traceback with -v
        if "-v" in sys.argv or "--verbose" in sys.argv or "-vv" in sys.argv:
            raise
        click.echo(f"internal error: {exc.__class__.__name__}: {exc} (run with -v for the traceback)", err=True)
        sys.exit(2)
