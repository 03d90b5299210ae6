"""Login, logout, the browser cookie, and token issue and revocation over real HTTP."""

from __future__ import annotations

from pathlib import Path

from tests.integration.api_harness import PASSWORD, api_world


async def test_login_issues_a_working_token_and_cookie(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        resp = await w.client.post(
            "/api/v1/auth/login", json={"login": "agent_a", "password": PASSWORD}
        )
        assert resp.status == 200
        data = await resp.json()
        assert data["user"]["login"] == "agent_a"
        assert "password" not in data["user"] and "password_hash" not in data["user"]
        assert data["token"].startswith("vc_")
        cookie = resp.cookies["vc_token"]
        assert cookie.value == data["token"]
        assert cookie["httponly"] and cookie["samesite"] == "Lax"
        me = await w.client.get("/api/v1/me", headers={"Authorization": f"Bearer {data['token']}"})
        assert me.status == 200 and (await me.json())["login"] == "agent_a"
        # the browser console: the cookie alone authenticates
        by_cookie = await w.client.get("/api/v1/me", cookies={"vc_token": data["token"]})
        assert by_cookie.status == 200


async def test_wrong_password_and_unknown_login_get_the_same_answer(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        wrong = await w.call(
            None, "POST", "/api/v1/auth/login", {"login": "agent_a", "password": "nope-nope"}
        )
        unknown = await w.call(
            None, "POST", "/api/v1/auth/login", {"login": "ghost", "password": "nope-nope"}
        )
        no_password = await w.call(
            None, "POST", "/api/v1/auth/login", {"login": "admin", "password": "whatever1"}
        )
        assert wrong[0] == unknown[0] == no_password[0] == 401
        assert wrong[1] == unknown[1] == no_password[1]
        missing = await w.call(None, "POST", "/api/v1/auth/login", {"login": "agent_a"})
        assert missing[0] == 400 and missing[1]["error"]["field"] == "password"


async def test_inactive_user_cannot_log_in_and_loses_tokens(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        await w.ok("admin", "PATCH", f"/api/v1/users/{w.ids['agent_a']}", {"active": False})
        status, _ = await w.call(
            None, "POST", "/api/v1/auth/login", {"login": "agent_a", "password": PASSWORD}
        )
        assert status == 401
        status, _ = await w.call("agent_a", "GET", "/api/v1/me")
        assert status == 401


async def test_logout_revokes_the_token_at_once(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        login = await w.ok(
            None, "POST", "/api/v1/auth/login", {"login": "agent_a", "password": PASSWORD}
        )
        hdrs = {"Authorization": f"Bearer {login['token']}"}
        out = await w.client.post("/api/v1/auth/logout", headers=hdrs)
        assert out.status == 204
        assert out.cookies["vc_token"].value == ""
        again = await w.client.get("/api/v1/me", headers=hdrs)
        assert again.status == 401
        assert (await again.json())["error"]["code"] == "unauthorized"
        # the fixture's own token of the same user still works
        assert (await w.call("agent_a", "GET", "/api/v1/me"))[0] == 200


async def test_revoked_token_gets_401_immediately(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        issued = await w.ok("agent_a", "POST", "/api/v1/tokens", {"name": "script"})
        assert issued["token"].startswith("vc_") and issued["name"] == "script"
        hdrs = {"Authorization": f"Bearer {issued['token']}"}
        assert (await w.client.get("/api/v1/contacts", headers=hdrs)).status == 200
        listed = await w.ok("agent_a", "GET", "/api/v1/tokens")
        assert issued["id"] in {t["id"] for t in listed["items"]}
        assert all("token" not in t for t in listed["items"])
        # an admin revokes it; the very next request is refused
        status, _ = await w.call("admin", "DELETE", f"/api/v1/tokens/{issued['id']}")
        assert status == 204
        resp = await w.client.get("/api/v1/contacts", headers=hdrs)
        assert resp.status == 401
        # revoking twice: no such live token
        assert (await w.call("admin", "DELETE", f"/api/v1/tokens/{issued['id']}"))[0] == 404
        listed = await w.ok("agent_a", "GET", "/api/v1/tokens?include_revoked=true")
        revoked = [t for t in listed["items"] if t["id"] == issued["id"]]
        assert revoked and revoked[0]["revoked_at"] is not None


async def test_deleted_user_tokens_stop_working(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        assert (await w.call("agent_b", "GET", "/api/v1/me"))[0] == 200
        assert (await w.call("admin", "DELETE", f"/api/v1/users/{w.ids['agent_b']}"))[0] == 204
        assert (await w.call("agent_b", "GET", "/api/v1/me"))[0] == 401
        status, data = await w.call("admin", "DELETE", f"/api/v1/users/{w.ids['admin']}")
        assert status == 409 and data["error"]["field"] == "id"


async def test_cookie_writes_need_the_json_content_type(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        cookies = {"vc_token": w.tokens["agent_a"]}
        form = await w.client.post(
            "/api/v1/contacts",
            data=b'{"name": "csrf"}',
            headers={"Content-Type": "text/plain"},
            cookies=cookies,
        )
        assert form.status == 400
        assert (await form.json())["error"]["code"] == "json_required"
        ok = await w.client.post("/api/v1/contacts", json={"name": "mine"}, cookies=cookies)
        assert ok.status == 201
        # programs with a bearer token may omit the content type
        status, _ = await w.call("agent_a", "POST", "/api/v1/contacts", raw=b'{"name": "curl"}')
        assert status == 201


async def test_token_answers_are_not_cached(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        resp = await w.client.post(
            "/api/v1/auth/login", json={"login": "agent_a", "password": PASSWORD}
        )
        assert resp.headers["Cache-Control"] == "no-store"
        resp = await w.client.post("/api/v1/tokens", json={}, headers=w.auth("agent_a"))
        assert resp.status == 201 and resp.headers["Cache-Control"] == "no-store"


async def test_admin_issues_a_pbx_token_that_may_only_look_up(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        status, _ = await w.call("sup_a", "POST", "/api/v1/tokens", {"pbx": "main"})
        assert status == 403
        status, data = await w.call(
            "admin", "POST", "/api/v1/tokens", {"pbx": "main", "user_id": 1}
        )
        assert status == 400 and data["error"]["field"] == "user_id"
        issued = await w.ok("admin", "POST", "/api/v1/tokens", {"pbx": "main", "name": "dialplan"})
        assert issued["pbx"] == "main" and issued["user_id"] is None
        hdrs = {"Authorization": f"Bearer {issued['token']}"}
        assert (await w.client.get("/api/v1/lookup?number=101", headers=hdrs)).status == 200
        assert (await w.client.get("/api/v1/contacts", headers=hdrs)).status == 403
        assert (await w.client.get("/api/v1/me", headers=hdrs)).status == 403
        listed = await w.ok("admin", "GET", "/api/v1/tokens")
        assert [t["scope"] for t in listed["items"] if t["id"] == issued["id"]] == ["pbx"]
        assert (await w.call("admin", "DELETE", f"/api/v1/tokens/{issued['id']}"))[0] == 204
        assert (await w.client.get("/api/v1/lookup?number=101", headers=hdrs)).status == 401


async def test_password_guessing_is_throttled(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        wrong = {"login": "agent_a", "password": "guess-guess"}
        for _ in range(10):
            status, _ = await w.call(None, "POST", "/api/v1/auth/login", wrong)
            assert status == 401
        status, data = await w.call(None, "POST", "/api/v1/auth/login", wrong)
        assert status == 429 and data["error"]["code"] == "too_many_attempts"
        # even the right password waits: otherwise the throttle would not slow guessing
        right = {"login": "agent_a", "password": PASSWORD}
        assert (await w.call(None, "POST", "/api/v1/auth/login", right))[0] == 429
        # tokens already issued keep working
        assert (await w.call("agent_a", "GET", "/api/v1/me"))[0] == 200
        status, metrics = await w.call(None, "GET", "/metrics")
        assert 'connector_logins_total{result="throttled"}' in metrics
        assert 'connector_logins_total{result="refused"}' in metrics


async def test_change_own_password(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        path = "/api/v1/me/password"
        status, data = await w.call(
            "agent_a",
            "POST",
            path,
            {"current_password": "wrong-one", "new_password": "n3w-password"},
        )
        assert status == 400 and data["error"]["field"] == "current_password"
        status, data = await w.call(
            "agent_a", "POST", path, {"current_password": PASSWORD, "new_password": "short"}
        )
        assert status == 400 and data["error"]["field"] is not None
        status, _ = await w.call(
            "agent_a", "POST", path, {"current_password": PASSWORD, "new_password": "n3w-password"}
        )
        assert status == 204
        login = {"login": "agent_a", "password": "n3w-password"}
        assert (await w.call(None, "POST", "/api/v1/auth/login", login))[0] == 200
        old = {"login": "agent_a", "password": PASSWORD}
        assert (await w.call(None, "POST", "/api/v1/auth/login", old))[0] == 401


async def test_admin_cannot_lock_themselves_out(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        me = f"/api/v1/users/{w.ids['admin']}"
        assert (await w.call("admin", "PATCH", me, {"role": "agent"}))[0] == 409
        assert (await w.call("admin", "PATCH", me, {"active": False}))[0] == 409
        assert (await w.call("admin", "PATCH", me, {"name": "Root"}))[0] == 200
        status, data = await w.call(
            "admin", "PATCH", f"/api/v1/users/{w.ids['sup_a']}", {"role": "admin"}
        )
        assert status == 200 and data["role"] == "admin"


async def test_client_address_behind_a_trusted_proxy(tmp_path: Path) -> None:
    from aiohttp.test_utils import make_mocked_request

    from connector.web.api_auth import client_address

    async with api_world(tmp_path, server={"trusted_proxies": ["10.0.0.1"]}) as w:
        app = w.client.server.app

        def addr(peer: str, forwarded: str | None) -> str:
            headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
            req = make_mocked_request("POST", "/api/v1/auth/login", headers=headers, app=app)
            return client_address(req.clone(remote=peer))

        assert addr("10.0.0.1", "203.0.113.7") == "203.0.113.7"
        # a client cannot choose its address by sending the header itself
        assert addr("10.0.0.1", "1.2.3.4, 203.0.113.7") == "203.0.113.7"
        assert addr("10.0.0.1", "203.0.113.7, 10.0.0.1") == "203.0.113.7"
        assert addr("198.51.100.2", "1.2.3.4") == "198.51.100.2"  # not through the proxy
        assert addr("10.0.0.1", None) == "10.0.0.1"


async def test_live_connections_are_told_when_tokens_die(tmp_path: Path) -> None:
    """The hub's hook (runtime.extras["on_token_revoked"]) hears of every revocation."""
    async with api_world(tmp_path) as w:
        heard: list[int] = []
        w.runtime.extras["on_token_revoked"] = heard.append
        issued = await w.ok("agent_a", "POST", "/api/v1/tokens", {"name": "tab"})
        await w.ok("agent_a", "DELETE", f"/api/v1/tokens/{issued['id']}")
        assert heard == [issued["id"]]
        login = await w.ok(
            None, "POST", "/api/v1/auth/login", {"login": "agent_a", "password": PASSWORD}
        )
        hdrs = {"Authorization": f"Bearer {login['token']}"}
        assert (await w.client.post("/api/v1/auth/logout", headers=hdrs)).status == 204
        assert heard[-1] == login["token_id"]
        b_tokens = [
            t["id"]
            for t in (await w.ok("admin", "GET", f"/api/v1/tokens?user_id={w.ids['agent_b']}"))[
                "items"
            ]
        ]
        await w.ok("admin", "PATCH", f"/api/v1/users/{w.ids['agent_b']}", {"active": False})
        assert b_tokens and heard[-len(b_tokens) :] == b_tokens
        a2_tokens = [
            t["id"]
            for t in (await w.ok("admin", "GET", f"/api/v1/tokens?user_id={w.ids['agent_a2']}"))[
                "items"
            ]
        ]
        assert (await w.call("admin", "DELETE", f"/api/v1/users/{w.ids['agent_a2']}"))[0] == 204
        assert a2_tokens and heard[-len(a2_tokens) :] == a2_tokens
        # a failing hook never fails the request
        w.runtime.extras["on_token_revoked"] = lambda token_id: 1 / 0
        issued = await w.ok("agent_a", "POST", "/api/v1/tokens", {})
        assert (await w.call("agent_a", "DELETE", f"/api/v1/tokens/{issued['id']}"))[0] == 204
