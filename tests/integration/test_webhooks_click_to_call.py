"""Click-to-call and recording links through each provider's API, against a local fake API that
checks the signatures with the vendors' formulas (written here independently)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from connector.adapters.errors import ProviderApiError
from connector.adapters.provider_clients import recording_url
from connector.app import OriginateRequest
from tests.integration.webhook_env import ACCOUNTS, webhook_env


@dataclass
class FakeProviders:
    """Zadarma, Mango and MegaFon APIs on one loopback server."""

    connector_url: str = ""
    mango_final: int = 1000
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    tasks: set[asyncio.Task[int]] = field(default_factory=set)

    # Zadarma: GET /v1/request/callback/ with Authorization: key:base64(hex(hmac_sha1))
    def _zadarma_ok(self, request: web.Request) -> bool:
        params = sorted(request.query.items())
        query = urlencode(params)
        data = request.path + query + hashlib.md5(query.encode()).hexdigest()
        digest = hmac.new(b"zd-api-secret", data.encode(), hashlib.sha1).hexdigest()
        expected = "zd-user-key:" + base64.b64encode(digest.encode()).decode()
        return request.headers.get("Authorization") == expected

    async def zadarma_callback(self, request: web.Request) -> web.Response:
        if not self._zadarma_ok(request):
            self.rejected.append("zadarma")
            return web.json_response({"status": "error", "message": "Not authorized"}, status=401)
        self.calls.append(("zadarma", dict(request.query)))
        if request.query["to"] == "70000000000":
            return web.json_response({"status": "error", "message": "wrong number"})
        return web.json_response(
            {"status": "success", "from": request.query["from"], "to": request.query["to"]}
        )

    async def zadarma_record(self, request: web.Request) -> web.Response:
        if not self._zadarma_ok(request):
            return web.json_response({"status": "error"}, status=401)
        link = f"https://api.zadarma.com/v1/pbx/record/download/{request.query['call_id']}.mp3"
        return web.json_response({"status": "success", "link": link, "lifetime_till": "x"})

    # Mango: form vpbx_api_key, sign=sha256(key + json + salt), json
    async def _mango_json(self, request: web.Request) -> dict[str, Any] | None:
        form = await request.post()
        text = str(form["json"])
        sign = hashlib.sha256(("mango-product-key" + text + "mango-salt").encode()).hexdigest()
        if form["vpbx_api_key"] != "mango-product-key" or form["sign"] != sign:
            self.rejected.append("mango")
            return None
        data: dict[str, Any] = json.loads(text)
        return data

    async def mango_callback(self, request: web.Request) -> web.Response:
        data = await self._mango_json(request)
        if data is None:
            return web.json_response({"result": 3102}, status=401)
        self.calls.append(("mango", data))
        # Mango answers the command at once and reports its result a moment later.
        task = asyncio.get_running_loop().create_task(
            send_mango_result(self.connector_url, data["command_id"], self.mango_final)
        )
        self.tasks.add(task)
        return web.json_response({"result": 1000})

    async def mango_record(self, request: web.Request) -> web.Response:
        data = await self._mango_json(request)
        if data is None:
            return web.json_response({"result": 3102}, status=401)
        raise web.HTTPFound(f"https://files.mango-office.ru/one-time/{data['recording_id']}")

    # MegaFon: POST /crmapi/v1/makecall {"user", "phone"} with X-API-KEY
    async def megafon_makecall(self, request: web.Request) -> web.Response:
        if request.headers.get("X-API-KEY") != "megafon-rest-key":
            self.rejected.append("megafon")
            return web.json_response({"error": "bad key"}, status=401)
        body = await request.json()
        self.calls.append(("megafon", body))
        return web.json_response({"callid": "ml-771"})


async def send_mango_result(connector: str, command_id: str, result: int) -> int:
    text = json.dumps({"command_id": command_id, "result": result})
    form = {
        "vpbx_api_key": "mango-product-key",
        "sign": hashlib.sha256(("mango-product-key" + text + "mango-salt").encode()).hexdigest(),
        "json": text,
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(connector + "/webhooks/mango/mg1/result/callback", data=form) as resp,
    ):
        return resp.status


@asynccontextmanager
async def fake_api(fake: FakeProviders) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/v1/request/callback/", fake.zadarma_callback)
    app.router.add_get("/v1/pbx/record/request/", fake.zadarma_record)
    app.router.add_post("/vpbx/commands/callback", fake.mango_callback)
    app.router.add_post("/vpbx/queries/recording/post", fake.mango_record)
    app.router.add_post("/crmapi/v1/makecall", fake.megafon_makecall)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        for task in fake.tasks:
            assert await task == 200  # the connector accepted every result callback
        await server.close()


def accounts_with(base: str) -> list[dict[str, Any]]:
    out = []
    for acc in ACCOUNTS:
        acc = dict(acc)
        acc["api_base_url"] = base + ("/crmapi/v1" if acc["provider"] == "megafon" else "")
        out.append(acc)
    return out


def req(pbx: str, call_id: str, number: str = "79169998877") -> OriginateRequest:
    return OriginateRequest(call_id=call_id, pbx=pbx, extension="101", number=number, timeout=10)


async def test_zadarma_and_megafon_click_to_call(tmp_path: Path) -> None:
    fake = FakeProviders()
    async with fake_api(fake) as base, webhook_env(tmp_path, accounts_with(base)) as env:
        controls = env.runtime.controls
        result = await controls["zadarma-main"].originate(req("zadarma-main", "c1"))
        assert result.accepted, result.reason
        assert fake.calls[-1] == (
            "zadarma",
            {"from": "101", "to": "79169998877", "format": "json"},
        )
        refused = await controls["zadarma-main"].originate(req("zadarma-main", "c2", "70000000000"))
        assert not refused.accepted
        assert "wrong number" in refused.reason

        result = await controls["megafon-main"].originate(req("megafon-main", "c3"))
        assert result.accepted and "ml-771" in result.reason
        assert fake.calls[-1] == ("megafon", {"user": "101", "phone": "79169998877"})
        assert fake.rejected == []

        link = await recording_url("zadarma:zd1:1-1458313316.343456-100-2016-01-11-100155")
        assert link.endswith("/1-1458313316.343456-100-2016-01-11-100155.mp3")
        with pytest.raises(ProviderApiError):
            await recording_url("zadarma:nobody:123")


async def test_zadarma_signature_is_refused_with_a_wrong_secret(tmp_path: Path) -> None:
    fake = FakeProviders()
    async with fake_api(fake) as base:
        accounts = accounts_with(base)
        accounts[0]["secret"] = "not-the-secret"
        async with webhook_env(tmp_path, accounts) as env:
            result = await env.runtime.controls["zadarma-main"].originate(req("zadarma-main", "x"))
        assert not result.accepted
        assert fake.rejected == ["zadarma"]


async def test_mango_click_to_call_waits_for_the_asynchronous_result(tmp_path: Path) -> None:
    fake = FakeProviders()
    async with fake_api(fake) as base, webhook_env(tmp_path, accounts_with(base)) as env:
        fake.connector_url = str(env.client.make_url("")).rstrip("/")
        mango = env.runtime.controls["mango-main"]
        result = await mango.originate(req("mango-main", "cmd-1"))
        assert result.accepted, result.reason
        assert fake.calls[-1] == (
            "mango",
            {"command_id": "cmd-1", "from": {"extension": "101"}, "to_number": "79169998877"},
        )
        fake.mango_final = 3100
        result = await mango.originate(req("mango-main", "cmd-2"))
        assert not result.accepted
        assert "3100" in result.reason
        link = await recording_url("mango:mg1:MToxMDE1NjQwMzo0")
        assert link == "https://files.mango-office.ru/one-time/MToxMDE1NjQwMzo0"
        assert fake.rejected == []
