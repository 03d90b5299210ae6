"""The hub's guards, on loopback: tokens, revocation, slow clients, bad messages, card budget."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from secrets import token_hex
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from crm_sync.auth import revoke_token
from crm_sync.contacts import create_company, create_contact
from tests.integration.hub_env import (
    answered,
    handshake,
    ping_is_next,
    quick_card,
    recv,
    ringing,
    running_hub,
)


async def closed_with(ws: Any) -> tuple[int | None, str | None]:
    """Drain a connection until it is closed; its close code and reason (bounded)."""
    async with asyncio.timeout(10):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass
    return ws.close_code, ws.close_reason


async def test_missing_wrong_and_revoked_tokens_get_distinct_close_codes(tmp_path: Path) -> None:
    async with running_hub(tmp_path, card_builder=quick_card) as env:
        async with env.connect(None) as ws:
            assert await closed_with(ws) == (4401, "token required")
        async with env.connect(None, "token=vc_not-a-real-token") as ws:
            assert await closed_with(ws) == (4402, "token unknown")
        async with env.runtime.engine.begin() as conn:
            await revoke_token(conn, env.token_ids["boris"])
        async with env.connect("boris") as ws:
            assert await closed_with(ws) == (4403, "token revoked")
        # the header and the cookie work too
        headers = {"Authorization": f"Bearer {env.tokens['anna']}"}
        async with connect(env.url, proxy=None, additional_headers=headers) as ws:
            hello, _ = await handshake(ws)
            assert hello["user"]["login"] == "anna"
        cookie = {"Cookie": f"theme=dark; vc_token={env.tokens['anna']}"}
        async with connect(env.url, proxy=None, additional_headers=cookie) as ws:
            hello, _ = await handshake(ws)
            assert hello["user"]["login"] == "anna"
        async with env.connect("anna", "scope=everything") as ws:
            code, reason = await closed_with(ws)
            assert code == 4400 and "scope" in (reason or "")


async def test_revocation_hook_disconnects_the_live_connection(tmp_path: Path) -> None:
    async with running_hub(tmp_path, card_builder=quick_card) as env:
        async with env.connect("anna") as ws, env.connect("boris") as other:
            await handshake(ws)
            await handshake(other)
            async with env.runtime.engine.begin() as conn:
                await revoke_token(conn, env.token_ids["anna"])
            closed = env.runtime.extras["on_token_revoked"](env.token_ids["anna"])
            assert closed == 1
            assert await closed_with(ws) == (4403, "token revoked")
            await ping_is_next(other)


async def test_revocation_in_the_database_is_found_by_the_periodic_check(tmp_path: Path) -> None:
    async with running_hub(tmp_path, {"heartbeat_seconds": 0.2}, card_builder=quick_card) as env:
        async with env.connect("anna") as ws:
            await handshake(ws)
            async with env.runtime.engine.begin() as conn:
                await revoke_token(conn, env.token_ids["anna"])
            # no hook called: another process revoked it; the hub's own check notices
            assert await closed_with(ws) == (4403, "token revoked")


async def test_bad_client_messages_get_clear_errors_and_the_connection_stays(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path, {"max_message_bytes": 1024}, card_builder=quick_card) as env:
        async with env.connect("anna") as ws:
            await handshake(ws)
            cases = [
                ("x" * 5000, "too_large", "5000 bytes is over the limit of 1024"),
                ("{not json", "malformed", "not valid JSON"),
                ("[1, 2]", "malformed", "JSON object"),
                ('{"type": 7}', "malformed", "'type'"),
                ('{"type": "launch"}', "unknown_type", "unknown message type 'launch'"),
                ('{"type": "ack", "seq": -1}', "malformed", "'seq'"),
                ('{"type": "subscribe", "scope": "galaxy"}', "malformed", "scope"),
            ]
            for text, code, words in cases:
                await ws.send(text)
                err = await recv(ws)
                assert err["type"] == "error" and err["code"] == code, err
                assert words in err["message"], err
            await ws.send(b"\x00\x01")
            err = await recv(ws)
            assert err["code"] == "malformed" and "binary" in err["message"]
            await ws.send(json.dumps({"type": "ack", "seq": 0}))
            await ping_is_next(ws)


async def test_slow_client_is_disconnected_without_delaying_others(tmp_path: Path) -> None:
    async with running_hub(tmp_path, {"send_queue": 16}, card_builder=quick_card) as env:
        # the slow tab reads nothing once connected; the fast tab of the same user reads all
        async with (
            env.connect("anna", max_queue=1) as slow,
            env.connect("anna") as fast,
        ):
            await handshake(fast)
            # large, incompressible messages fill the socket buffers sooner
            sent = 0
            while env.hub.connections.get(env.ids["anna"], []).__len__() == 2:
                assert sent < 5000, "the slow client was never disconnected"
                for _ in range(10):  # a burst the fast tab's queue of 16 holds
                    sent += 1
                    env.runtime.bus.publish(ringing(f"c{sent}", "101", name=token_hex(4000)))
                for _ in range(10):
                    msg = await recv(fast)
                    assert msg["event"]["type"] == "call.ringing"
            assert msg["seq"] == sent  # the fast tab got every pop, in order
            code, reason = await closed_with(slow)
            assert code == 4408 and reason is not None and "too slow" in reason
            env.runtime.bus.publish(ringing("after", "101"))
            assert (await recv(fast))["event"]["conversation_id"] == "after"


async def test_pop_goes_out_first_when_the_card_is_slow(tmp_path: Path) -> None:
    gate = asyncio.Event()

    async def slow_lookup(number: str, now: datetime) -> dict[str, Any]:
        await gate.wait()  # the store is slower than the budget
        return {"status": "known", "number": {"raw": number}, "primary": {"name": "Ivan"}}

    async with running_hub(tmp_path, {"lookup_budget_ms": 50}, card_builder=slow_lookup) as env:
        async with env.connect("anna") as ws, env.connect("sofia", "scope=team") as sup:
            await handshake(ws)
            await handshake(sup)
            env.runtime.bus.publish(ringing("c1", "101"))
            pop = await recv(ws)
            assert pop["type"] == "call" and pop["card"] is None and pop["card_pending"]
            assert pop["number"]["display"] == "+7 916 123-45-67"
            gate.set()
            card = await recv(ws)
            assert card["type"] == "card" and card["seq"] == pop["seq"] + 1
            assert card["conversation"] == "pbx1/c1" and card["card"]["primary"]["name"] == "Ivan"
            assert [(await recv(sup))["type"] for _ in range(2)] == ["call", "card"]
            # the card is built once per call: the transfer target gets it at once
            env.runtime.bus.publish(ringing("c1", "102"))
        async with env.connect("anna") as again:
            _, snap = await handshake(again)
            assert snap["calls"][0]["card"]["primary"]["name"] == "Ivan"


async def test_card_from_the_store_with_zero_budget_follows_the_pop(tmp_path: Path) -> None:
    async with running_hub(tmp_path, {"lookup_budget_ms": 0}) as env:
        async with env.runtime.engine.begin() as conn:
            company = await create_company(conn, {"name": "ООО Ромашка"})
            await create_contact(
                conn,
                {
                    "name": "Ivan Petrov",
                    "company_id": company.id,
                    "responsible_user_id": env.ids["anna"],
                    "phones": ["+7 916 123-45-67"],
                    "tags": ["vip"],
                },
            )
        async with env.connect("anna") as ws:
            await handshake(ws)
            env.runtime.bus.publish(ringing("c1", "101", number="89161234567"))
            pop = await recv(ws)
            assert pop["type"] == "call" and pop["card_pending"] and pop["card"] is None
            card = (await recv(ws))["card"]
            assert card["status"] == "known", card
            assert card["primary"]["name"] == "Ivan Petrov"
            assert card["company"]["name"] == "ООО Ромашка"
            assert card["responsible"]["user_id"] == env.ids["anna"]
            assert "vip" in card["tags"]
            assert card["number"]["e164"] == "+79161234567"
            assert card["number"]["raw"] == "89161234567"
            env.runtime.bus.publish(ringing("c2", "101", number="+7 999 000-00-01"))
            await recv(ws)
            unknown = (await recv(ws))["card"]
            assert unknown["status"] == "unknown"
            assert unknown["create_contact"] == {"phone": "+79990000001"}


async def test_foreign_origin_with_cookie_and_endless_garbage_are_closed(tmp_path: Path) -> None:
    async with running_hub(
        tmp_path, {"public_url": "wss://crm.example.com/ws"}, card_builder=quick_card
    ) as env:
        cookie = {
            "Cookie": f"vc_token={env.tokens['anna']}",
            "Origin": "http://evil.example",
        }
        async with connect(env.url, proxy=None, additional_headers=cookie) as ws:
            assert await closed_with(ws) == (4400, "origin not allowed")
        proxied = {"Cookie": f"vc_token={env.tokens['anna']}", "Origin": "https://crm.example.com"}
        async with connect(env.url, proxy=None, additional_headers=proxied) as ws:
            hello, _ = await handshake(ws)  # behind a proxy the Host is the proxy's upstream
        same_site = {"Cookie": f"vc_token={env.tokens['anna']}", "Origin": "http://127.0.0.1:9"}
        async with connect(env.url, proxy=None, additional_headers=same_site) as ws:
            hello, _ = await handshake(ws)
            assert hello["user"]["login"] == "anna"
            for _ in range(20):
                await ws.send("garbage")
            assert await closed_with(ws) == (4400, "too many bad messages")


async def test_a_call_waiting_for_its_card_does_not_hold_up_other_calls(tmp_path: Path) -> None:
    gate = asyncio.Event()

    async def lookup(number: str, now: datetime) -> dict[str, Any]:
        if number == "+79031112233":
            await gate.wait()  # this caller's lookup hangs within the (long) budget
        return {"status": "known", "number": {"raw": number}}

    async with running_hub(tmp_path, {"lookup_budget_ms": 30_000}, card_builder=lookup) as env:
        async with env.connect("anna") as a, env.connect("boris") as b:
            await handshake(a)
            await handshake(b)
            env.runtime.bus.publish(ringing("slow", "101", number="+79031112233"))
            env.runtime.bus.publish(ringing("fast", "102"))
            env.runtime.bus.publish(answered("slow", "101"))
            pop = await recv(b)
            assert pop["event"]["conversation_id"] == "fast" and pop["card"] is not None
            gate.set()
            first, second = await recv(a), await recv(a)
            assert first["event"]["type"] == "call.ringing" and first["card"] is not None
            assert second["event"]["type"] == "call.answered"  # the call's order is kept


async def test_card_in_budget_rides_in_the_pop_and_is_not_sent_again(tmp_path: Path) -> None:
    async with running_hub(tmp_path, {"lookup_budget_ms": 10_000}) as env:
        async with env.connect("anna") as ws:
            await handshake(ws)
            env.runtime.bus.publish(ringing("c1", "101", number="+7 999 000-00-02"))
            pop = await recv(ws)
            assert pop["type"] == "call" and not pop["card_pending"]
            assert pop["card"]["status"] == "unknown"
            await ping_is_next(ws)
