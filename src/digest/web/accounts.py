"""Admin accounts and API tokens: argon2 passwords, lockout with backoff, hashed bearer tokens.

Used by the admin UI, the API and `digest admin …`. A locked account does not even check the password,
so guessing cannot go on while it is locked; every refusal reads the same, so nobody learns whether a
user name exists or is locked.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from digest.db import admin as queries
from digest.db.models import AdminUser, utcnow
from digest.errors import DigestError

ROLES = ("admin", "viewer")
TOKEN_PREFIX = "dg_"
MAX_LOCKOUT = 86400

# OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane): hashes made with stronger settings still verify, and
# check_needs_rehash moves them to these on the next login.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


@functools.cache
def _dummy_hash() -> str:
    """Verified when the user name is unknown, so a miss costs as long as a wrong password."""
    return _hasher.hash(secrets.token_urlsafe(16))


@dataclass
class Principal:
    """Who is acting: an admin user (UI) or a token (API)."""

    name: str
    role: str
    user_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def hash_password(password: str) -> str:
    if len(password) < 10:
        raise DigestError("the password must be at least 10 characters long")
    return _hasher.hash(password)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise DigestError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return role


def create_user(session: Session, username: str, password: str, role: str) -> AdminUser:
    username = username.strip()
    if not username or len(username) > 100 or any(c.isspace() for c in username):
        raise DigestError("the user name must be 1-100 characters without spaces")
    if queries.user_by_name(session, username) is not None:
        raise DigestError(f"user {username!r} exists already")
    return queries.add_user(session, username, hash_password(password), check_role(role))


def set_password(session: Session, username: str, password: str) -> None:
    user = queries.user_by_name(session, username)
    if user is None:
        raise DigestError(f"no user {username!r}")
    user.password_hash = hash_password(password)
    user.failed_logins, user.locked_until = 0, None
    user.session_epoch += 1  # every open session of the old password ends


def authenticate(session: Session, username: str, password: str, *, max_failures: int, lockout_seconds: int,
                 now: dt.datetime | None = None) -> AdminUser | None:
    """The user when the password is right and the account is not locked; None otherwise (and counted)."""
    now = now or utcnow()
    user = queries.user_by_name(session, username)
    if user is None:
        _verify(_dummy_hash(), password)
        return None
    if user.locked_until is not None and user.locked_until > now:
        return None
    if not _verify(user.password_hash, password):
        user.failed_logins += 1
        over = user.failed_logins - max_failures
        if over >= 0:  # backoff: each further failure doubles the wait
            user.locked_until = now + dt.timedelta(seconds=min(lockout_seconds * 2 ** min(over, 20), MAX_LOCKOUT))
        return None
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str, role: str) -> tuple[int, str]:
    """A new bearer token; its value is shown once, only its hash is kept."""
    if not name.strip() or len(name) > 100:
        raise DigestError("the token name must be 1-100 characters")
    value = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = queries.add_token(session, name.strip(), token_hash(value), check_role(role))
    return row.id, value


def principal_for_token(session: Session, value: str, now: dt.datetime | None = None) -> Principal | None:
    if not value.startswith(TOKEN_PREFIX) or len(value) > 200:
        return None
    row = queries.token_by_hash(session, token_hash(value))
    if row is None:
        return None
    row.last_used_at = now or utcnow()
    return Principal(name=f"token:{row.name}", role=row.role)
