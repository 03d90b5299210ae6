"""Users, extensions, passwords and tokens on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_sync import users
from crm_sync.audit import list_audit
from crm_sync.auth import resolve_token
from crm_sync.errors import Conflict, NotFound, ValidationError
from tests.integration.store_support import migrated_engine, rejected_field


async def test_create_user_and_login_conflict(tmp_path: Path) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            u = await users.create_user(
                conn,
                {
                    "login": "anna",
                    "name": "Anna K",
                    "role": "supervisor",
                    "team": "sales",
                    "password": "correct horse",
                    "extensions": [{"pbx": "main", "extension": "101"}, "cloud:201"],
                },
            )
            assert u.role == "supervisor" and u.team == "sales" and u.active and u.has_password
            assert [(e.pbx, e.extension) for e in u.extensions] == [
                ("cloud", "201"),
                ("main", "101"),
            ]
            assert "password_hash" not in u.to_dict() and "password" not in u.to_dict()
            with pytest.raises(Conflict) as info:
                await users.create_user(conn, {"login": "anna"})
            assert info.value.field == "login"
            assert (await users.get_user_by_login(conn, "anna")).id == u.id
            with pytest.raises(NotFound):
                await users.get_user_by_login(conn, "nobody")
            entry = (await list_audit(conn, entity="user")).items[0]
            assert entry.action == "user.create"
            assert "correct horse" not in str(entry.details)
            assert "password_hash" not in entry.details


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"login": ""}, "login"),
        ({"login": "has space"}, "login"),
        ({"login": "x", "role": "boss"}, "role"),
        ({"login": "x", "password": "short"}, "password"),
        ({"login": "x", "active": "yes"}, "active"),
        ({"login": "x", "extensions": [{"pbx": "main"}]}, "extensions[0].extension"),
        ({"login": "x", "extensions": [{"pbx": "m", "extension": "1", "x": 1}]}, "extensions[0].x"),
        ({"login": "x", "extensions": "101"}, "extensions"),
        ({"login": "x", "shoe_size": 42}, "shoe_size"),
    ],
)
async def test_bad_user_input(tmp_path: Path, data: dict[str, object], field: str) -> None:
    assert await rejected_field(tmp_path, users.create_user, data) == field


async def test_extensions_are_unique_per_pbx(tmp_path: Path) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            a = await users.create_user(conn, {"login": "a", "extensions": ["main:101"]})
            b = await users.create_user(conn, {"login": "b"})
            with pytest.raises(Conflict) as info:
                await users.add_extension(conn, b.id, "main", "101")
            assert "a" in info.value.message and info.value.field == "extension"
            with pytest.raises(Conflict):
                await users.create_user(conn, {"login": "c", "extensions": ["main:101"]})
            with pytest.raises(Conflict):
                await users.update_user(conn, b.id, {"extensions": ["main:101"]})
            # the same extension on another PBX is fine
            b2 = await users.add_extension(conn, b.id, "branch", "101")
            assert [(e.pbx, e.extension) for e in b2.extensions] == [("branch", "101")]
            # adding an extension the user already has is a no-op
            assert (await users.add_extension(conn, a.id, "main", "101")) == await users.get_user(
                conn, a.id
            )
            a2 = await users.remove_extension(conn, a.id, "main", "101")
            assert a2.extensions == ()
            with pytest.raises(NotFound):
                await users.remove_extension(conn, a.id, "main", "101")
            now_free = await users.add_extension(conn, b.id, "main", "101")
            assert len(now_free.extensions) == 2


async def test_update_list_team_and_delete(tmp_path: Path) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            sup = await users.create_user(
                conn, {"login": "sup", "role": "supervisor", "team": "t1"}
            )
            a1 = await users.create_user(conn, {"login": "a1", "team": "t1", "name": "Alpha"})
            a2 = await users.create_user(conn, {"login": "a2", "team": "t2"})
            assert await users.team_member_ids(conn, "t1") == [sup.id, a1.id]
            assert await users.team_member_ids(conn, "") == []
            changed = await users.update_user(conn, a2.id, {"team": "t1", "active": False})
            assert changed.team == "t1" and not changed.active
            with pytest.raises(ValidationError):
                await users.update_user(conn, a2.id, {"login": "renamed"})
            assert (await users.list_users(conn, team="t1")).total == 3
            assert (await users.list_users(conn, active=False)).total == 1
            assert [u.login for u in (await users.list_users(conn, role="agent")).items] == [
                "a1",
                "a2",
            ]
            assert [u.login for u in (await users.list_users(conn, name="alp")).items] == ["a1"]
            page = await users.list_users(conn, limit=2, offset=1)
            assert (page.total, [u.login for u in page.items]) == (3, ["a2", "sup"])
            await users.delete_user(conn, a2.id)
            with pytest.raises(NotFound):
                await users.get_user(conn, a2.id)


async def test_authenticate(tmp_path: Path) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            u = await users.create_user(conn, {"login": "anna", "password": "s3cret-pass"})
            await users.create_user(conn, {"login": "nopass"})
            assert (await users.authenticate(conn, "anna", "s3cret-pass")) == u
            assert await users.authenticate(conn, "anna", "wrong-pass") is None
            assert await users.authenticate(conn, "ghost", "s3cret-pass") is None
            assert await users.authenticate(conn, "nopass", "") is None
            await users.set_password(conn, u.id, "another-pass")
            assert await users.authenticate(conn, "anna", "s3cret-pass") is None
            assert await users.authenticate(conn, "anna", "another-pass") is not None
            with pytest.raises(ValidationError):
                await users.set_password(conn, u.id, "short")
            await users.update_user(conn, u.id, {"active": False})
            assert await users.authenticate(conn, "anna", "another-pass") is None


async def test_token_issue_resolve_revoke(tmp_path: Path) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            u = await users.create_user(
                conn, {"login": "anna", "role": "agent", "team": "t", "extensions": ["main:101"]}
            )
            other = await users.create_user(conn, {"login": "bob"})
            issued = await users.issue_token(conn, u.id, "laptop")
            second = await users.issue_token(conn, u.id, "phone")
        assert issued.token.startswith("vc_") and issued.prefix == issued.token[:10]
        async with engine.connect() as conn:
            who = await resolve_token(conn, issued.token)
            assert who is not None
            assert (who.user_id, who.login, who.role, who.extensions) == (
                u.id,
                "anna",
                "agent",
                (("main", "101"),),
            )
            listed = await users.list_tokens(conn, user_id=u.id)
            assert [t.name for t in listed] == ["phone", "laptop"]
            assert all(issued.token not in str(t.to_dict()) for t in listed)
        async with engine.begin() as conn:
            with pytest.raises(NotFound):  # not bob's to revoke
                await users.revoke_token(conn, issued.id, owner_id=other.id)
            await users.revoke_token(conn, issued.id, actor_id=u.id)
            with pytest.raises(NotFound):
                await users.revoke_token(conn, issued.id)
            with pytest.raises(NotFound):
                await users.issue_token(conn, 999)
        async with engine.connect() as conn:
            assert await resolve_token(conn, issued.token) is None
            assert await resolve_token(conn, second.token) is not None
            assert [t.id for t in await users.list_tokens(conn, user_id=u.id)] == [second.id]
            everything = await users.list_tokens(conn, include_revoked=True)
            assert {t.id for t in everything} == {issued.id, second.id}
            actions = [e.action for e in (await list_audit(conn, entity="token")).items]
        assert actions == ["token.revoke", "token.issue", "token.issue"]
        # deactivating the user kills its tokens too
        async with engine.begin() as conn:
            await users.update_user(conn, u.id, {"active": False})
            assert await resolve_token(conn, second.token) is None
