"""Passwords (argon2) and API tokens (random, shown once, stored as SHA-256, revocable).

A token looks like ``vc_<43 url-safe characters>``; only its SHA-256 is stored, with the first
characters kept as ``prefix`` so people can tell their tokens apart in a list.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_sync.schema import api_tokens, extensions, users

__all__ = [
    "Principal",
    "hash_password",
    "hash_token",
    "issue_token",
    "new_token",
    "resolve_token",
    "revoke_token",
    "verify_password",
]

TOKEN_PREFIX = "vc_"
_hasher = PasswordHasher()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is making a request: a user (agent, supervisor, admin) or a PBX-scoped token."""

    user_id: int | None
    login: str
    role: str  # agent | supervisor | admin | pbx
    team: str
    extensions: tuple[tuple[str, str], ...]  # (pbx, extension) pairs
    token_id: int
    pbx: str | None = None  # set for PBX-scoped tokens

    @property
    def is_admin(self) -> bool:
        """True for admins."""
        return self.role == "admin"

    @property
    def is_supervisor(self) -> bool:
        """True for supervisors (admins are not counted as supervisors)."""
        return self.role == "supervisor"

    def owns_extension(self, pbx: str, extension: str) -> bool:
        """True if (pbx, extension) belongs to this user."""
        return (pbx, extension) in self.extensions


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if ``password`` matches ``password_hash`` (False for a missing or corrupt hash)."""
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    """A fresh random API token (shown once, never stored)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


async def issue_token(
    conn: AsyncConnection,
    user_id: int | None,
    name: str = "",
    *,
    scope: str = "user",
    pbx: str | None = None,
    now: datetime | None = None,
) -> tuple[int, str]:
    """Create a token for ``user_id`` (or a PBX-scoped one); returns (token id, the token)."""
    token = new_token()
    result = await conn.execute(
        api_tokens.insert().values(
            user_id=user_id,
            token_hash=hash_token(token),
            prefix=token[:10],
            name=name,
            scope=scope,
            pbx=pbx,
            created_at=now or datetime.now(UTC),
        )
    )
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0]), token


async def revoke_token(conn: AsyncConnection, token_id: int, now: datetime | None = None) -> bool:
    """Revoke a token; True if it existed and was live."""
    result = await conn.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now or datetime.now(UTC))
    )
    return bool(result.rowcount)


async def resolve_token(conn: AsyncConnection, token: str) -> Principal | None:
    """The principal a token stands for, or None if unknown, revoked, or the user is inactive."""
    if not token or len(token) > 200:
        return None
    row = (
        await conn.execute(
            select(
                api_tokens.c.id,
                api_tokens.c.user_id,
                api_tokens.c.scope,
                api_tokens.c.pbx,
                api_tokens.c.revoked_at,
            ).where(api_tokens.c.token_hash == hash_token(token))
        )
    ).first()
    if row is None or row.revoked_at is not None:
        return None
    if row.scope == "pbx":
        return Principal(
            user_id=None,
            login=f"pbx:{row.pbx}",
            role="pbx",
            team="",
            extensions=(),
            token_id=row.id,
            pbx=row.pbx,
        )
    user = (
        await conn.execute(
            select(users.c.id, users.c.login, users.c.role, users.c.team, users.c.active).where(
                users.c.id == row.user_id
            )
        )
    ).first()
    if user is None or not user.active:
        return None
    exts = (
        await conn.execute(
            select(extensions.c.pbx, extensions.c.extension).where(extensions.c.user_id == user.id)
        )
    ).all()
    return Principal(
        user_id=user.id,
        login=user.login,
        role=user.role,
        team=user.team,
        extensions=tuple((e.pbx, e.extension) for e in exts),
        token_id=row.id,
    )
