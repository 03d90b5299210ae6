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

import asyncio
import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_sync import auth
from crm_sync.audit import record
from crm_sync.contacts import escape_like
from crm_sync.errors import Conflict, NotFound, ValidationError
from crm_sync.fields import aware, check_known, opt_text, req_text, utc_now
from crm_sync.paging import Page, check_page
from crm_sync.schema import api_tokens, extensions, users

logger = logging.getLogger(__name__)

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


LOGIN_RE = re.compile(r"[A-Za-z0-9._@\-]{1,64}")
PBX_RE = re.compile(r"\*|[A-Za-z0-9_.:\-]{1,100}")
EXTENSION_RE = re.compile(r"[A-Za-z0-9_.*#+\-]{1,40}")


def _at(value: Any) -> datetime:
    result = aware(value)
    assert result is not None
    return result


def _check_password(password: object, key: str = "password") -> str:
    if not isinstance(password, str):
        raise ValidationError(key, f"{key} must be a string")
    if len(password) < MIN_PASSWORD:
        raise ValidationError(key, f"{key} must be at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise ValidationError(key, f"{key} must be at most 1024 characters")
    return password


def _check_extension(pbx: object, extension: object, key: str) -> Extension:
    if not isinstance(pbx, str) or not PBX_RE.fullmatch(pbx.strip()):
        raise ValidationError(
            f"{key}.pbx", f"{key}.pbx must be a PBX name (letters, digits, ._:-) or *, got {pbx!r}"
        )
    if not isinstance(extension, str) or not EXTENSION_RE.fullmatch(extension.strip()):
        raise ValidationError(
            f"{key}.extension",
            f"{key}.extension must be 1..40 letters, digits or *#+._-, got {extension!r}",
        )
    return Extension(pbx=pbx.strip(), extension=extension.strip())


def _parse_extensions(value: object) -> list[Extension]:
    if not isinstance(value, list):
        raise ValidationError("extensions", "extensions must be a list of {pbx, extension}")
    out: list[Extension] = []
    for i, item in enumerate(value):
        key = f"extensions[{i}]"
        if isinstance(item, str) and ":" in item:
            pbx, _, ext = item.rpartition(":")
            parsed = _check_extension(pbx, ext, key)
        elif isinstance(item, Mapping):
            check_known(item, ("pbx", "extension"), key, key)
            parsed = _check_extension(item.get("pbx"), item.get("extension"), key)
        else:
            raise ValidationError(key, f'{key} must be {{"pbx": ..., "extension": ...}}')
        if parsed not in out:
            out.append(parsed)
    return out


async def _ensure_extensions_free(
    conn: AsyncConnection, exts: list[Extension], user_id: int | None
) -> None:
    for i, ext in enumerate(exts):
        row = (
            await conn.execute(
                select(extensions.c.user_id, users.c.login)
                .select_from(extensions.join(users, users.c.id == extensions.c.user_id))
                .where(extensions.c.pbx == ext.pbx, extensions.c.extension == ext.extension)
            )
        ).first()
        if row is not None and row.user_id != user_id:
            raise Conflict(
                f"extension {ext.extension} on {ext.pbx} already belongs to {row.login}",
                field=f"extensions[{i}]",
            )


async def _insert_extensions(conn: AsyncConnection, user_id: int, exts: list[Extension]) -> None:
    if not exts:
        return
    try:
        await conn.execute(
            extensions.insert(),
            [{"user_id": user_id, "pbx": e.pbx, "extension": e.extension} for e in exts],
        )
    except IntegrityError as exc:  # taken by a concurrent change since we checked
        raise Conflict("one of the extensions was just taken", field="extensions") from exc


async def _load_users(conn: AsyncConnection, ids: list[int]) -> dict[int, User]:
    if not ids:
        return {}
    rows = (await conn.execute(select(users).where(users.c.id.in_(ids)))).all()
    exts: dict[int, list[Extension]] = {int(r.id): [] for r in rows}
    for e in await conn.execute(
        select(extensions.c.user_id, extensions.c.pbx, extensions.c.extension)
        .where(extensions.c.user_id.in_(ids))
        .order_by(extensions.c.pbx, extensions.c.extension)
    ):
        exts[int(e.user_id)].append(Extension(pbx=e.pbx, extension=e.extension))
    return {
        int(r.id): User(
            id=int(r.id),
            login=r.login,
            name=r.name,
            role=r.role,
            team=r.team,
            active=bool(r.active),
            extensions=tuple(exts[int(r.id)]),
            has_password=bool(r.password_hash),
            created_at=_at(r.created_at),
            updated_at=_at(r.updated_at),
        )
        for r in rows
    }


def _role(data: Mapping[str, Any]) -> str:
    role = data.get("role")
    if role not in ROLES:
        raise ValidationError("role", f"role must be one of {', '.join(ROLES)}, got {role!r}")
    assert isinstance(role, str)
    return role


def _active(data: Mapping[str, Any]) -> bool:
    value = data.get("active")
    if not isinstance(value, bool):
        raise ValidationError("active", f"active must be true or false, got {value!r}")
    return value


async def create_user(
    conn: AsyncConnection,
    data: Mapping[str, Any],
    *,
    actor_id: int | None = None,
    now: datetime | None = None,
) -> User:
    """Create a user; audited as ``user.create``. Raises ValidationError, Conflict."""
    now = now or utc_now()
    check_known(data, USER_FIELDS, "a user")
    login = data.get("login")
    if not isinstance(login, str) or not LOGIN_RE.fullmatch(login.strip()):
        raise ValidationError(
            "login", f"login must be 1..64 letters, digits or ._@-, got {login!r}"
        )
    login = login.strip()
    values: dict[str, Any] = {
        "login": login,
        "name": opt_text(data, "name", 200) or login,
        "role": _role({"role": data.get("role", "agent")}),
        "team": opt_text(data, "team", 100),
        "active": _active(data) if "active" in data else True,
        "password_hash": None,
    }
    if data.get("password") is not None:
        values["password_hash"] = auth.hash_password(_check_password(data["password"]))
    exts = _parse_extensions(data.get("extensions", []))
    taken = (await conn.execute(select(users.c.id).where(users.c.login == login))).first()
    if taken is not None:
        raise Conflict(f"login {login!r} is already taken", field="login")
    await _ensure_extensions_free(conn, exts, None)
    try:
        result = await conn.execute(
            users.insert().values(**values, created_at=now, updated_at=now).returning(users.c.id)
        )
    except IntegrityError as exc:  # a concurrent insert of the same login
        raise Conflict(f"login {login!r} is already taken", field="login") from exc
    user_id = int(result.scalar_one())
    await _insert_extensions(conn, user_id, exts)
    details = {k: v for k, v in values.items() if k != "password_hash"}
    details["extensions"] = [f"{e.pbx}:{e.extension}" for e in exts]
    details["password_set"] = values["password_hash"] is not None
    await record(conn, actor_id, "user.create", "user", user_id, details, now=now)
    return await get_user(conn, user_id)


async def get_user(conn: AsyncConnection, user_id: int) -> User:
    """The user with ``user_id``; raises NotFound."""
    found = (await _load_users(conn, [user_id])).get(user_id)
    if found is None:
        raise NotFound("user", user_id)
    return found


async def get_user_by_login(conn: AsyncConnection, login: str) -> User:
    """The user with ``login``; raises NotFound."""
    row = (await conn.execute(select(users.c.id).where(users.c.login == login))).first()
    if row is None:
        raise NotFound("user", login, f"there is no user with login {login!r}")
    return await get_user(conn, int(row.id))


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
    now = now or utc_now()
    check_known(changes, USER_FIELDS, "a user")
    await get_user(conn, user_id)
    if "login" in changes:
        raise ValidationError("login", "login cannot be changed")
    values: dict[str, Any] = {}
    if "name" in changes:
        values["name"] = req_text(changes, "name", 200)
    if "role" in changes:
        values["role"] = _role(changes)
    if "team" in changes:
        values["team"] = opt_text(changes, "team", 100)
    if "active" in changes:
        values["active"] = _active(changes)
    password_set = False
    if changes.get("password") is not None:
        values["password_hash"] = auth.hash_password(_check_password(changes["password"]))
        password_set = True
    exts: list[Extension] | None = None
    if "extensions" in changes:
        exts = _parse_extensions(changes["extensions"])
        await _ensure_extensions_free(conn, exts, user_id)
    await conn.execute(update(users).where(users.c.id == user_id).values(**values, updated_at=now))
    if exts is not None:
        await conn.execute(delete(extensions).where(extensions.c.user_id == user_id))
        await _insert_extensions(conn, user_id, exts)
    details: dict[str, Any] = {k: v for k, v in values.items() if k != "password_hash"}
    if password_set:
        details["password_set"] = True
    if exts is not None:
        details["extensions"] = [f"{e.pbx}:{e.extension}" for e in exts]
    await record(conn, actor_id, "user.update", "user", user_id, details, now=now)
    return await get_user(conn, user_id)


async def delete_user(
    conn: AsyncConnection,
    user_id: int,
    *,
    actor_id: int | None = None,
    now: datetime | None = None,
) -> None:
    """Delete a user with its extensions and tokens; their contacts, tasks and activities keep
    a null link. Audited. Raises NotFound."""
    user = await get_user(conn, user_id)
    await conn.execute(delete(extensions).where(extensions.c.user_id == user_id))
    await conn.execute(delete(api_tokens).where(api_tokens.c.user_id == user_id))
    await conn.execute(delete(users).where(users.c.id == user_id))
    await record(conn, actor_id, "user.delete", "user", user_id, {"login": user.login}, now=now)


async def set_password(
    conn: AsyncConnection,
    user_id: int,
    password: str,
    *,
    actor_id: int | None = None,
    now: datetime | None = None,
) -> None:
    """Set a new password (argon2). Audited. Raises NotFound, ValidationError (too short)."""
    now = now or utc_now()
    await get_user(conn, user_id)
    hashed = auth.hash_password(_check_password(password))
    await conn.execute(
        update(users).where(users.c.id == user_id).values(password_hash=hashed, updated_at=now)
    )
    await record(conn, actor_id, "user.password", "user", user_id, {}, now=now)


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
    user = await get_user(conn, user_id)
    ext = _check_extension(pbx, extension, "extension")
    if ext in user.extensions:
        return user
    try:
        await _ensure_extensions_free(conn, [ext], user_id)
    except Conflict as exc:
        raise Conflict(exc.message, field="extension") from None
    try:
        await conn.execute(
            extensions.insert().values(user_id=user_id, pbx=ext.pbx, extension=ext.extension)
        )
    except IntegrityError as exc:
        raise Conflict(
            f"extension {ext.extension} on {ext.pbx} is already taken", field="extension"
        ) from exc
    await record(
        conn,
        actor_id,
        "user.extension.add",
        "user",
        user_id,
        {"pbx": ext.pbx, "extension": ext.extension},
        now=now,
    )
    return await get_user(conn, user_id)


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
    await get_user(conn, user_id)
    result = await conn.execute(
        delete(extensions).where(
            extensions.c.user_id == user_id,
            extensions.c.pbx == pbx,
            extensions.c.extension == extension,
        )
    )
    if not result.rowcount:
        raise NotFound(
            "extension",
            f"{pbx}:{extension}",
            f"user {user_id} has no extension {extension} on {pbx}",
        )
    await record(
        conn,
        actor_id,
        "user.extension.remove",
        "user",
        user_id,
        {"pbx": pbx, "extension": extension},
        now=now,
    )
    return await get_user(conn, user_id)


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
    limit, offset = check_page(limit, offset)
    conds: list[Any] = []
    if team is not None:
        conds.append(users.c.team == team)
    if role is not None:
        if role not in ROLES:
            raise ValidationError("role", f"role must be one of {', '.join(ROLES)}, got {role!r}")
        conds.append(users.c.role == role)
    if active is not None:
        conds.append(users.c.active == active)
    if name is not None and name.strip():
        pattern = f"%{escape_like(name.strip())}%"
        conds.append(
            users.c.name.ilike(pattern, escape="\\") | users.c.login.ilike(pattern, escape="\\")
        )
    total = (await conn.execute(select(func.count()).select_from(users).where(*conds))).scalar_one()
    ids = [
        int(r[0])
        for r in await conn.execute(
            select(users.c.id).where(*conds).order_by(users.c.login).limit(limit).offset(offset)
        )
    ]
    loaded = await _load_users(conn, ids)
    return Page(items=[loaded[i] for i in ids], total=int(total), limit=limit, offset=offset)


async def team_member_ids(conn: AsyncConnection, team: str) -> list[int]:
    """Ids of every user in ``team`` (a supervisor's visibility); empty team gives []."""
    if not team:
        return []
    return [
        int(r[0])
        for r in await conn.execute(
            select(users.c.id).where(users.c.team == team).order_by(users.c.id)
        )
    ]


async def authenticate(conn: AsyncConnection, login: str, password: str) -> User | None:
    """The active user whose login and password match, else None (no hint which was wrong)."""
    if not isinstance(login, str) or not isinstance(password, str) or len(login) > 64:
        return None
    row = (
        await conn.execute(
            select(users.c.id, users.c.password_hash, users.c.active).where(users.c.login == login)
        )
    ).first()
    # argon2 takes tens of milliseconds on purpose: run it off the event loop so logins never
    # delay screen-pops; do the same work whether or not the login exists.
    stored = row.password_hash if row is not None else await asyncio.to_thread(_dummy_hash)
    matches = await asyncio.to_thread(auth.verify_password, stored, password)
    if row is None or not matches or not row.active:
        return None
    return await get_user(conn, int(row.id))


@functools.cache
def _dummy_hash() -> str:
    return auth.hash_password("not a real password, only for timing")


async def issue_token(
    conn: AsyncConnection,
    user_id: int,
    name: str = "",
    *,
    actor_id: int | None = None,
    now: datetime | None = None,
) -> IssuedToken:
    """A new API token for ``user_id``. Audited (without the token). Raises NotFound."""
    now = now or utc_now()
    await get_user(conn, user_id)
    name = opt_text({"name": name}, "name", 100)
    token_id, token = await auth.issue_token(conn, user_id, name, now=now)
    await record(
        conn,
        actor_id,
        "token.issue",
        "token",
        token_id,
        {"user_id": user_id, "name": name, "prefix": token[:10]},
        now=now,
    )
    return IssuedToken(id=token_id, token=token, prefix=token[:10], name=name, user_id=user_id)


async def list_tokens(
    conn: AsyncConnection, *, user_id: int | None = None, include_revoked: bool = False
) -> list[TokenInfo]:
    """Tokens (of one user, or all), newest first; the tokens themselves are never shown."""
    q = select(
        api_tokens.c.id,
        api_tokens.c.user_id,
        users.c.login,
        api_tokens.c.name,
        api_tokens.c.prefix,
        api_tokens.c.scope,
        api_tokens.c.pbx,
        api_tokens.c.created_at,
        api_tokens.c.last_used_at,
        api_tokens.c.revoked_at,
    ).select_from(api_tokens.outerjoin(users, users.c.id == api_tokens.c.user_id))
    if user_id is not None:
        q = q.where(api_tokens.c.user_id == user_id)
    if not include_revoked:
        q = q.where(api_tokens.c.revoked_at.is_(None))
    rows = await conn.execute(q.order_by(api_tokens.c.id.desc()))
    return [
        TokenInfo(
            id=int(r.id),
            user_id=r.user_id,
            login=r.login,
            name=r.name,
            prefix=r.prefix,
            scope=r.scope,
            pbx=r.pbx,
            created_at=_at(r.created_at),
            last_used_at=aware(r.last_used_at),
            revoked_at=aware(r.revoked_at),
        )
        for r in rows
    ]


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
    now = now or utc_now()
    row = (
        await conn.execute(
            select(api_tokens.c.user_id, api_tokens.c.revoked_at).where(api_tokens.c.id == token_id)
        )
    ).first()
    if (
        row is None
        or row.revoked_at is not None
        or (owner_id is not None and row.user_id != owner_id)
    ):
        raise NotFound("token", token_id, f"there is no live token {token_id}")
    await auth.revoke_token(conn, token_id, now=now)
    await record(
        conn, actor_id, "token.revoke", "token", token_id, {"user_id": row.user_id}, now=now
    )
