"""The hub with real websocket clients on loopback: routing, scopes, tabs, replay, resync."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client import REGISTRY

from tests.integration.hub_env import (
    answered,
    claimed,
    ended,
    handshake,
    ping_is_next,
    quick_card,
    recv,
    ringing,
    running_hub,
)


async def test_agent_gets_only_own_extension_events(tmp_path: Path) -> None:
    async with running_hub(tmp_path, card_builder=quick_card) as env:
        async with env.connect("anna") as a, env.connect("boris") as b:
            hello, snap = await handshake(a)
            assert hello["user"]["login"] == "anna" and snap["calls"] == []
            await handshake(b)
            env.runtime.bus.publish(ringing("c1", "101"))
            pop = await recv(a)
            assert pop["type"] == "call" and pop["seq"] == 1
            assert pop["event"]["type"] == "call.ringing"
            assert pop["event"]["extension"] == "101"
            assert pop["number"]["e164"] == "+79161234567"
            assert pop["pbx_time"] == "2026-11-28T12:00:00+00:00"
            assert "sent_at" in pop and pop["card"]["status"] == "unknown"
            env.runtime.bus.publish(ringing("c2", "102", number="89031112233"))
            pop_b = await recv(b)
            assert pop_b["event"]["conversation_id"] == "c2" and pop_b["seq"] == 1
            # anna's queue held nothing of boris's call: her ping is answered next
            await ping_is_next(a)
            await ping_is_next(b)


async def test_supervisor_team_view_and_scope_checks(tmp_path: Path) -> None:
    async with running_hub(tmp_path, card_builder=quick_card) as env:
        async with (
            env.connect("sofia", "scope=team") as sup,
            env.connect("root") as admin,
            env.connect("anna") as agent,
        ):
            _, snap = await handshake(sup)
            assert snap["scope"] == "team"
            await handshake(admin)
            await handshake(agent)
            await admin.send(json.dumps({"type": "subscribe", "scope": "all"}))
            assert (await recv(admin))["type"] == "subscribed"
            assert (await recv(admin))["type"] == "snapshot"
            await agent.send(json.dumps({"type": "subscribe", "scope": "team"}))
            err = await recv(agent)
            assert err["type"] == "error" and err["code"] == "forbidden"
            assert "supervisor" in err["message"]

            env.runtime.bus.publish(ringing("c-sales", "101"))  # anna: sales
            env.runtime.bus.publish(ringing("c-support", "102"))  # boris: support
            seen = await recv(sup)
            assert seen["event"]["conversation_id"] == "c-sales"
            assert seen["agent"]["user_id"] == env.ids["anna"]
            convs = [(await recv(admin))["event"]["conversation_id"] for _ in range(2)]
            assert sorted(convs) == ["c-sales", "c-support"]
            await ping_is_next(sup)  # the support call never reached the sales supervisor


async def test_every_tab_of_a_user_gets_the_same_pops(tmp_path: Path) -> None:
    async with running_hub(tmp_path, card_builder=quick_card) as env:
        async with env.connect("anna") as t1, env.connect("anna") as t2, env.connect("anna") as t3:
            for tab in (t1, t2, t3):
                await handshake(tab)
            env.runtime.bus.publish(ringing("c1", "101"))
            env.runtime.bus.publish(answered("c1", "101"))
            for tab in (t1, t2, t3):
                pop, ans = await recv(tab), await recv(tab)
                assert (pop["seq"], pop["event"]["type"]) == (1, "call.ringing")
                assert (ans["seq"], ans["event"]["type"]) == (2, "call.answered")


async def test_connections_per_user_are_limited(tmp_path: Path) -> None:
    async with running_hub(
        tmp_path, {"max_connections_per_user": 2}, card_builder=quick_card
    ) as env:
        async with env.connect("anna") as t1, env.connect("anna") as t2:
            await handshake(t1)
            await handshake(t2)
            async with env.connect("anna") as t3:
                await t3.wait_closed()
                assert t3.close_code == 4429
                assert "too many connections" in (t3.close_reason or "")
            async with env.connect("boris") as other:  # other users are not affected
                await handshake(other)


async def test_reconnect_replays_what_was_missed_then_snapshot(tmp_path: Path) -> None:
    async with running_hub(tmp_path, card_builder=quick_card) as env:
        async with env.connect("anna") as ws:
            hello, _ = await handshake(ws)
            epoch = hello["epoch"]
            env.runtime.bus.publish(ringing("c1", "101"))
            first = await recv(ws)
            assert first["seq"] == 1
        # offline: the call is answered and a second one rings
        env.runtime.bus.publish(answered("c1", "101"))
        env.runtime.bus.publish(ringing("c2", "101", number="74951234567"))
        async with env.connect("anna", f"last_seq=1&epoch={epoch}") as ws:
            assert (await recv(ws))["type"] == "hello"
            missed = [await recv(ws), await recv(ws)]
            assert [m["seq"] for m in missed] == [2, 3]
            assert all(m["replayed"] for m in missed)
            assert [m["event"]["type"] for m in missed] == ["call.answered", "call.ringing"]
            snap = await recv(ws)
            assert snap["type"] == "snapshot" and snap["seq"] == 3
            states = {c["conversation_id"]: c["state"] for c in snap["calls"]}
            assert states == {"c1": "talking", "c2": "ringing"}
            assert all(c["card"] is not None for c in snap["calls"])
            # live messages continue the numbering
            env.runtime.bus.publish(ended("c1", ("101",), by="101"))
            live = await recv(ws)
            assert live["seq"] == 4 and "replayed" not in live
            assert live["outcome"] == "answered" and live["duration"]["talk"] == 12.0


async def test_too_old_cursor_gets_resync_and_current_state(tmp_path: Path) -> None:
    async with running_hub(tmp_path, {"replay_buffer": 3}, card_builder=quick_card) as env:
        async with env.connect("anna") as ws:
            hello, _ = await handshake(ws)
            for i in range(6):
                env.runtime.bus.publish(ringing(f"c{i}", "101"))
            for _ in range(6):
                await recv(ws)
        async with env.connect("anna", f"last_seq=1&epoch={hello['epoch']}") as ws:
            assert (await recv(ws))["type"] == "hello"
            resync = await recv(ws)
            assert resync["type"] == "resync" and resync["seq"] == 6
            assert "too old" in resync["reason"]
            snap = await recv(ws)
            assert snap["type"] == "snapshot"
            assert sorted(c["conversation_id"] for c in snap["calls"]) == [
                f"c{i}" for i in range(6)
            ]
        async with env.connect("anna", "last_seq=2&epoch=another-server") as ws:
            assert (await recv(ws))["type"] == "hello"
            resync = await recv(ws)
            assert resync["type"] == "resync" and "restarted" in resync["reason"]


async def test_queue_call_pops_both_and_closes_for_the_colleague(tmp_path: Path) -> None:
    async with running_hub(tmp_path, card_builder=quick_card) as env:
        async with env.connect("vera") as v, env.connect("gleb") as g:
            await handshake(v)
            await handshake(g)
            number = "74951234567"
            env.runtime.bus.publish(ringing("q1", "201", number, "ООО Ромашка", queue="support"))
            env.runtime.bus.publish(ringing("q1", "202", number, "ООО Ромашка", queue="support"))
            env.runtime.bus.publish(answered("q1", "202"))
            env.runtime.bus.publish(claimed("q1", "201", by="202"))
            env.runtime.bus.publish(ended("q1", ("201", "202"), by="202"))
            pv = await recv(v)
            pg = await recv(g)
            assert pv["queue"] == "support" and pv["number"]["name"] == "ООО Ромашка"
            assert pg["event"]["extension"] == "202"
            told = await recv(v)  # vera learns gleb took it, then the claim closes her card
            assert told["event"]["type"] == "call.answered"
            assert told["agent"]["user_id"] == env.ids["gleb"]
            closed = await recv(v)
            assert closed["event"]["type"] == "call.claimed"
            assert closed["claimed_by"]["user_id"] == env.ids["gleb"]
            assert (await recv(g))["event"]["type"] == "call.answered"
            assert (await recv(v))["event"]["type"] == "call.ended"
            assert (await recv(g))["event"]["type"] == "call.ended"
    before = REGISTRY.get_sample_value(
        "connector_hub_send_latency_seconds_count", {"since": "observed"}
    )
    assert before is not None and before >= 2


async def test_hub_refuses_unknown_paths_with_404(tmp_path: Path) -> None:
    async with running_hub(tmp_path, card_builder=quick_card) as env:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        try:
            async with connect(f"ws://127.0.0.1:{env.hub.bound_port}/nope", proxy=None):
                raise AssertionError("connected to an unknown path")
        except InvalidStatus as exc:
            assert exc.response.status_code == 404


async def test_transfer_moves_the_card_with_the_history_to_the_new_agent(tmp_path: Path) -> None:
    from connector.events.model import CallTransferred

    async with running_hub(tmp_path, card_builder=quick_card) as env:
        async with env.connect("anna") as a, env.connect("boris") as b:
            await handshake(a)
            await handshake(b)
            env.runtime.bus.publish(ringing("t1", "101", number="+79031112233"))
            env.runtime.bus.publish(answered("t1", "101"))
            first = ringing("t1", "101")
            env.runtime.bus.publish(
                CallTransferred(
                    key="t1:xfer",
                    pbx="pbx1",
                    conversation_id="t1",
                    occurred_at=first.occurred_at,
                    observed_at=first.observed_at,
                    from_extension="101",
                    to_extension="102",
                )
            )
            assert [(await recv(a))["event"]["type"] for _ in range(3)] == [
                "call.ringing",
                "call.answered",
                "call.transferred",
            ]
            moved = await recv(b)
            assert moved["event"]["type"] == "call.transferred"
            assert moved["card"]["number"]["raw"] == "+79031112233"
            assert [h["type"] for h in moved["history"]] == [
                "call.ringing",
                "call.answered",
                "call.transferred",
            ]
            assert moved["to"]["user_id"] == env.ids["boris"]
            async with env.connect("boris") as again:
                _, snap = await handshake(again)
                assert snap["calls"][0]["conversation_id"] == "t1"


async def test_a_new_task_reaches_its_assignee_only(tmp_path: Path) -> None:
    from connector.events.model import TaskCreated

    async with running_hub(tmp_path, card_builder=quick_card) as env:
        async with env.connect("anna") as a, env.connect("boris") as b:
            await handshake(a)
            await handshake(b)
            at = ringing("x", "101").occurred_at
            env.runtime.bus.publish(
                TaskCreated(
                    key="task:7",
                    pbx="pbx1",
                    conversation_id="c-missed",
                    occurred_at=at,
                    observed_at=at,
                    task_id=7,
                    assignee_id=env.ids["anna"],
                    title="Call back +7 916 123-45-67",
                    number="+79161234567",
                )
            )
            msg = await recv(a)
            assert msg["type"] == "task" and msg["seq"] == 1
            assert msg["task"] == {
                "id": 7,
                "title": "Call back +7 916 123-45-67",
                "number": "+79161234567",
            }
            await ping_is_next(b)
