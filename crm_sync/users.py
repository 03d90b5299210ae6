"""Users: roles, teams, extensions per PBX, passwords and API tokens.

Create and update take a plain mapping and check it (unknown keys, wrong types and bad values
raise :class:`~crm_sync.errors.ValidationError` naming the field). Fields: ``login`` (create
only; letters, digits, ``._@-``, unique), ``name``, ``role`` (``agent``, ``supervisor``,
``admin``), ``team``, ``active``, ``password`` (write only, at least 8 characters) and
``extensions`` (a list of ``{"pbx": "main", "extension": "101"}``; on update it replaces the
list). ``(pbx, extension)`` is unique across users: a clash raises
:class:`~crm_sync.errors.Conflict`, as does a taken login.

Token plaintext is returned once by :func:`issue_token` and never stored (see
:mod:`crm_sync.auth`). Every change is audited; passwords and tokens never reach the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from crm_sync.paging import Page

__all__ = [
    "ROLES",
    "USER_FIELDS",
    "Extension",
    "IssuedToken",
    "TokenInfo",
    "User",
    "add_extension",
    "authenticate",
    "create_user",
    "delete_user",
    "get_user",
    "get_user_by_login",
    "issue_token",
    "list_tokens",
    "list_users",
    "remove_extension",
    "revoke_token",
    "set_password",
    "team_member_ids",
    "update_user",
]

ROLES = ("agent", "supervisor", "admin")
USER_FIELDS = frozenset({"login", "name", "role", "team", "active", "password", "extensions"})
MIN_PASSWORD = 8


@dataclass(frozen=True, slots=True)
class Extension:
    """An extension of a user on one PBX (``pbx="*"`` matches any PBX)."""

    pbx: str
    extension: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"pbx": self.pbx, "extension": self.extension}


@dataclass(frozen=True, slots=True)
class User:
    """A user as the API shows it (no password hash)."""

    id: int
    login: str
    name: str
    role: str
    team: str
    active: bool
    extensions: tuple[Extension, ...]
    has_password: bool
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "login": self.login,
            "name": self.name,
            "role": self.role,
            "team": self.team,
            "active": self.active,
            "extensions": [e.to_dict() for e in self.extensions],
            "has_password": self.has_password,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listed: never the token itself, only its first characters."""

    id: int
    user_id: int | None
    login: str | None
    name: str
    prefix: str
    scope: str
    pbx: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "user_id": self.user_id,
            "login": self.login,
            "name": self.name,
            "prefix": self.prefix,
            "scope": self.scope,
            "pbx": self.pbx,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly issued token: ``token`` is shown to its owner once and never again."""

    id: int
    token: str
    prefix: str
    name: str
    user_id: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (includes the token: send it to its owner only)."""
        return {
            "id": self.id,
            "token": self.token,
            "prefix": self.prefix,
            "name": self.name,
            "user_id": self.user_id,
        }


async def create_user(
    conn: AsyncConnection,
    data: Mapping[str, Any],
    *,
    actor_id: int | None = None,
    now: datetime | None = None,
) -> User:
    """Create a user; audited as ``user.create``. Raises ValidationError, Conflict."""
    raise NotImplementedError


async def get_user(conn: AsyncConnection, user_id: int) -> User:
    """The user with ``user_id``; raises NotFound."""
    raise NotImplementedError


async def get_user_by_login(conn: AsyncConnection, login: str) -> User:
    """The user with ``login``; raises NotFound."""
    raise NotImplementedError


async def update_user(
    conn: AsyncConnection,
    user_id: int,
    changes: Mapping[str, Any],
    *,
    actor_id: int | None = None,
    now: datetime | None = None,
) -> User:
    """Change the given fields (not ``login``). Audited. Raises NotFound, ValidationError,
    Conflict."""
    raise NotImplementedError


async def delete_user(
    conn: AsyncConnection,
    user_id: int,
    *,
    actor_id: int | None = None,
    now: datetime | None = None,
) -> None:
    """Delete a user with its extensions and tokens; their contacts, tasks and activities keep
    a null link. Audited. Raises NotFound."""
    raise NotImplementedError


async def set_password(
    conn: AsyncConnection,
    user_id: int,
    password: str,
    *,
    actor_id: int | None = None,
    now: datetime | None = None,
) -> None:
    """Set a new password (argon2). Audited. Raises NotFound, ValidationError (too short)."""
    raise NotImplementedError


async def add_extension(
    conn: AsyncConnection,
    user_id: int,
    pbx: str,
    extension: str,
    *,
    actor_id: int | None = None,
    now: datetime | None = None,
) -> User:
    """Give a user an extension on ``pbx``. Raises NotFound, ValidationError, Conflict (taken)."""
    raise NotImplementedError


async def remove_extension(
    conn: AsyncConnection,
    user_id: int,
    pbx: str,
    extension: str,
    *,
    actor_id: int | None = None,
    now: datetime | None = None,
) -> User:
    """Take an extension away. Raises NotFound (user, or the user has no such extension)."""
    raise NotImplementedError


async def list_users(
    conn: AsyncConnection,
    *,
    team: str | None = None,
    role: str | None = None,
    active: bool | None = None,
    name: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[User]:
    """Users matching every given filter, by login, with the total count."""
    raise NotImplementedError


async def team_member_ids(conn: AsyncConnection, team: str) -> list[int]:
    """Ids of every user in ``team`` (a supervisor's visibility); empty team gives []."""
    raise NotImplementedError


async def authenticate(conn: AsyncConnection, login: str, password: str) -> User | None:
    """The active user whose login and password match, else None (no hint which was wrong)."""
    raise NotImplementedError


async def issue_token(
    conn: AsyncConnection,
    user_id: int,
    name: str = "",
    *,
    actor_id: int | None = None,
    now: datetime | None = None,
) -> IssuedToken:
    """A new API token for ``user_id``. Audited (without the token). Raises NotFound."""
    raise NotImplementedError


async def list_tokens(
    conn: AsyncConnection, *, user_id: int | None = None, include_revoked: bool = False
) -> list[TokenInfo]:
    """Tokens (of one user, or all), newest first; the tokens themselves are never shown."""
    raise NotImplementedError


async def revoke_token(
    conn: AsyncConnection,
    token_id: int,
    *,
    actor_id: int | None = None,
    now: datetime | None = None,
    owner_id: int | None = None,
) -> None:
    """Revoke a token (only one of ``owner_id`` when given). Audited.

    Raises NotFound when there is no such live token (or it belongs to someone else).
    """
    raise NotImplementedError
