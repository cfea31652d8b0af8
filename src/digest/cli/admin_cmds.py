"""`digest admin …`: admin users (argon2 passwords) and API tokens for the web UI and REST API."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from digest.cli.common import emit_json, json_option, out_console, settings_from
from digest.db import admin as queries
from digest.errors import DigestError
from digest.pipeline import connect
from digest.web import accounts

ROLE = click.Choice(accounts.ROLES)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@click.group()
def admin() -> None:
    """Admin users and API tokens."""


@admin.command("create-user")
@click.argument("username")
@click.option("--role", type=ROLE, default="admin", show_default=True, help="admin may change things; viewer only looks.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin (no prompt).")
@click.pass_context
def create_user(ctx: click.Context, username: str, role: str, password_stdin: bool) -> None:
    """Create an admin UI user with an argon2-hashed password (at least 10 characters)."""
    database = connect(settings_from(ctx))
    password = _password(password_stdin)
    with database.session() as session:
        accounts.create_user(session, username, password, role)
    out_console.print(f"created {role} {username}")


@admin.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin (no prompt).")
@click.pass_context
def set_password(ctx: click.Context, username: str, password_stdin: bool) -> None:
    """Set a new password; unlocks the account and ends its open sessions."""
    database = connect(settings_from(ctx))
    password = _password(password_stdin)
    with database.session() as session:
        accounts.set_password(session, username, password)
    out_console.print(f"password of {username} changed")


@admin.command("delete-user")
@click.argument("username")
@click.pass_context
def delete_user(ctx: click.Context, username: str) -> None:
    """Remove an admin UI user."""
    database = connect(settings_from(ctx))
    with database.session() as session:
        if not queries.delete_user(session, username):
            raise DigestError(f"no user {username!r}")
    out_console.print(f"deleted {username}")


@admin.command("users")
@json_option
@click.pass_context
def users(ctx: click.Context, as_json: bool) -> None:
    """List admin UI users, their roles and lockout state."""
    database = connect(settings_from(ctx))
    with database.session() as session:
        rows = [{"username": u.username, "role": u.role, "failed_logins": u.failed_logins, "locked_until": u.locked_until,
                 "last_login_at": u.last_login_at} for u in queries.users(session)]
    if as_json:
        emit_json(rows)
        return
    table = Table("user", "role", "failed logins", "locked until", "last login")
    for row in rows:
        table.add_row(str(row["username"]), str(row["role"]), str(row["failed_logins"]), str(row["locked_until"] or ""),
                      str(row["last_login_at"] or ""))
    out_console.print(table)


@admin.command("create-token")
@click.argument("name")
@click.option("--role", type=ROLE, default="viewer", show_default=True, help="admin may change things; viewer only reads.")
@json_option
@click.pass_context
def create_token(ctx: click.Context, name: str, role: str, as_json: bool) -> None:
    """Create a bearer token for /api; it is printed once and only its hash is stored."""
    database = connect(settings_from(ctx))
    with database.session() as session:
        token_id, value = accounts.create_token(session, name, role)
    if as_json:
        emit_json({"id": token_id, "name": name, "role": role, "token": value})
        return
    click.echo(value)
    click.echo(f"token {token_id} ({role}); use it as: Authorization: Bearer <token>", err=True)


@admin.command("tokens")
@json_option
@click.pass_context
def tokens(ctx: click.Context, as_json: bool) -> None:
    """List API tokens (never their values)."""
    database = connect(settings_from(ctx))
    with database.session() as session:
        rows = [{"id": t.id, "name": t.name, "role": t.role, "created_at": t.created_at, "last_used_at": t.last_used_at,
                 "revoked_at": t.revoked_at} for t in queries.tokens(session)]
    if as_json:
        emit_json(rows)
        return
    table = Table("id", "name", "role", "created", "last used", "revoked")
    for row in rows:
        table.add_row(*(str(row[k] or "") for k in ("id", "name", "role", "created_at", "last_used_at", "revoked_at")))
    out_console.print(table)


@admin.command("revoke-token")
@click.argument("token_id", type=int)
@click.pass_context
def revoke_token(ctx: click.Context, token_id: int) -> None:
    """Revoke an API token by its id (see `digest admin tokens`)."""
    database = connect(settings_from(ctx))
    with database.session() as session:
        if not queries.revoke_token(session, token_id):
            raise DigestError(f"no active token {token_id}")
    out_console.print(f"revoked token {token_id}")
