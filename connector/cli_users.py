"""``connector users ...``: add and list users, issue and revoke their API tokens."""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from typing import Any

from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.cli_store import fail, run_with_engine, settings_of, stdout
from crm_sync.errors import CrmError, ValidationError

__all__ = ["add_parser", "parse_extension"]


def parse_extension(text: str) -> dict[str, str]:
    """``PBX:EXT`` -> ``{"pbx": PBX, "extension": EXT}``; raises ValidationError otherwise."""
    pbx, sep, ext = text.rpartition(":")
    if not sep or not pbx or not ext:
        raise ValidationError("ext", f"--ext must look like PBX:EXTENSION (main:101), got {text!r}")
    return {"pbx": pbx, "extension": ext}


def _read_password(args: argparse.Namespace) -> tuple[str, bool]:
    """The password to set and whether it was generated (and must be shown)."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    if args.password:
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Repeat the password: "):
            raise ValidationError("password", "the two passwords differ")
        return first, False
    return secrets.token_urlsafe(12), True


def _cmd_add(args: argparse.Namespace) -> int:
    from crm_sync import users

    try:
        exts = [parse_extension(e) for e in args.ext or []]
        password, generated = _read_password(args)
    except CrmError as exc:
        return fail(exc)
    data: dict[str, Any] = {
        "login": args.login,
        "name": args.name or args.login,
        "role": args.role,
        "team": args.team,
        "extensions": exts,
        "password": password,
    }

    async def work(engine: AsyncEngine) -> users.User:
        async with engine.begin() as conn:
            return await users.create_user(conn, data)

    try:
        user = run_with_engine(settings_of(args), work)
    except CrmError as exc:
        return fail(exc)
    out = stdout()
    ext_text = ", ".join(f"{e.pbx}:{e.extension}" for e in user.extensions) or "none"
    out.print(
        f"Added user [bold]{user.login}[/bold] (id {user.id}, {user.role}"
        f"{', team ' + user.team if user.team else ''}; extensions: {ext_text})."
    )
    if generated:
        out.print(f"Password (shown once): [bold]{password}[/bold]")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from crm_sync import users

    async def work(engine: AsyncEngine) -> list[users.User]:
        found: list[users.User] = []
        async with engine.connect() as conn:
            while True:
                page = await users.list_users(
                    conn,
                    team=args.team,
                    role=args.role,
                    active=None if args.all else True,
                    limit=500,
                    offset=len(found),
                )
                found.extend(page.items)
                if not page.items or len(found) >= page.total:
                    return found

    try:
        found = run_with_engine(settings_of(args), work)
    except CrmError as exc:
        return fail(exc)
    table = Table("id", "login", "name", "role", "team", "active", "extensions", title="Users")
    for u in found:
        table.add_row(
            str(u.id),
            u.login,
            u.name,
            u.role,
            u.team,
            "yes" if u.active else "no",
            ", ".join(f"{e.pbx}:{e.extension}" for e in u.extensions),
        )
    stdout().print(table)
    return 0


def _cmd_token(args: argparse.Namespace) -> int:
    from crm_sync import users

    async def work(engine: AsyncEngine) -> users.IssuedToken:
        async with engine.begin() as conn:
            user = await users.get_user_by_login(conn, args.login)
            return await users.issue_token(conn, user.id, args.name)

    try:
        issued = run_with_engine(settings_of(args), work)
    except CrmError as exc:
        return fail(exc)
    # the token alone on stdout, so scripts can capture it; the explanation on stderr
    sys.stderr.write(
        f"New API token {issued.id} for {args.login} (shown once; revoke with "
        f"'connector users revoke-token {issued.id}'):\n"
    )
    sys.stdout.write(issued.token + "\n")
    return 0


def _cmd_tokens(args: argparse.Namespace) -> int:
    from crm_sync import users

    async def work(engine: AsyncEngine) -> list[users.TokenInfo]:
        async with engine.connect() as conn:
            user_id = None
            if args.login:
                user_id = (await users.get_user_by_login(conn, args.login)).id
            return await users.list_tokens(conn, user_id=user_id, include_revoked=args.all)

    try:
        tokens = run_with_engine(settings_of(args), work)
    except CrmError as exc:
        return fail(exc)
    table = Table("id", "user", "name", "starts with", "created", "last used", "revoked")
    for t in tokens:
        table.add_row(
            str(t.id),
            t.login or (f"pbx {t.pbx}" if t.pbx else "-"),
            t.name,
            t.prefix + "...",
            t.created_at.strftime("%Y-%m-%d %H:%M"),
            t.last_used_at.strftime("%Y-%m-%d %H:%M") if t.last_used_at else "",
            t.revoked_at.strftime("%Y-%m-%d %H:%M") if t.revoked_at else "",
        )
    stdout().print(table)
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    from crm_sync import users

    async def work(engine: AsyncEngine) -> None:
        async with engine.begin() as conn:
            await users.revoke_token(conn, args.token_id)

    try:
        run_with_engine(settings_of(args), work)
    except CrmError as exc:
        return fail(exc)
    stdout().print(f"Token {args.token_id} revoked.")
    return 0


def _cmd_password(args: argparse.Namespace) -> int:
    from crm_sync import users

    try:
        password, generated = _read_password(args)
    except CrmError as exc:
        return fail(exc)

    async def work(engine: AsyncEngine) -> None:
        async with engine.begin() as conn:
            user = await users.get_user_by_login(conn, args.login)
            await users.set_password(conn, user.id, password)

    try:
        run_with_engine(settings_of(args), work)
    except CrmError as exc:
        return fail(exc)
    out = stdout()
    out.print(f"Password of [bold]{args.login}[/bold] changed.")
    if generated:
        out.print(f"New password (shown once): [bold]{password}[/bold]")
    return 0


def _password_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--password", action="store_true", help="type the password at a prompt (asked twice)"
    )
    group.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input (for scripts)",
    )


def add_parser(subparsers: Any) -> None:
    """Register ``connector users``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "users",
        help="add and list users, issue and revoke API tokens",
        description="Manage the people who use the connector and their API tokens.",
    )
    sub = p.add_subparsers(dest="users_command", metavar="ACTION")
    sub.required = True

    add = sub.add_parser(
        "add",
        help="add a user",
        description="Add a user. Without --password or --password-stdin a random password is "
        "generated and printed once.",
    )
    add.add_argument("login", help="the login (letters, digits and ._@-)")
    add.add_argument("--name", default="", help="full name shown to others (default: the login)")
    add.add_argument(
        "--role",
        choices=("agent", "supervisor", "admin"),
        default="agent",
        help="agent: own calls and tasks; supervisor: the team's; admin: everything (agent)",
    )
    add.add_argument("--team", default="", help="team name (supervisors see their team)")
    add.add_argument(
        "--ext",
        action="append",
        metavar="PBX:EXT",
        help="an extension on a PBX, e.g. main:101 (repeat for several; *:101 for any PBX)",
    )
    _password_options(add)
    add.set_defaults(func=_cmd_add)

    ls = sub.add_parser(
        "list",
        help="list users",
        description="List active users with their roles, teams and extensions.",
    )
    ls.add_argument("--team", default=None, help="only this team")
    ls.add_argument(
        "--role", choices=("agent", "supervisor", "admin"), default=None, help="only this role"
    )
    ls.add_argument("--all", action="store_true", help="include deactivated users")
    ls.set_defaults(func=_cmd_list)

    tok = sub.add_parser(
        "token",
        help="issue a new API token for a user",
        description="Issue a new API token for LOGIN and print it once (alone on stdout).",
    )
    tok.add_argument("login", help="whose token it is")
    tok.add_argument("--name", default="", help="a label to tell tokens apart, e.g. 'laptop'")
    tok.set_defaults(func=_cmd_token)

    toks = sub.add_parser(
        "tokens",
        help="list API tokens",
        description="List live API tokens (their first characters only), of LOGIN or everyone.",
    )
    toks.add_argument("login", nargs="?", default=None, help="only this user's tokens")
    toks.add_argument("--all", action="store_true", help="include revoked tokens")
    toks.set_defaults(func=_cmd_tokens)

    rev = sub.add_parser(
        "revoke-token",
        help="revoke an API token",
        description="Revoke the API token with this id (see 'connector users tokens').",
    )
    rev.add_argument("token_id", type=int, metavar="ID", help="the token id")
    rev.set_defaults(func=_cmd_revoke)

    pw = sub.add_parser(
        "password",
        help="set a user's password",
        description="Set LOGIN's password. Without --password or --password-stdin a random "
        "password is generated and printed once.",
    )
    pw.add_argument("login", help="whose password to set")
    _password_options(pw)
    pw.set_defaults(func=_cmd_password)
