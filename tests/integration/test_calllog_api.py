"""The supervisor's call log API: visibility, filters, statistics, missed calls, CSV export."""

from __future__ import annotations

import csv
import io
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connector.app import Runtime
from crm_sync.contacts import create_company, create_contact
from tests.integration.calllog_support import (
    AGENTS,
    SCENARIOS,
    WAVS,
    add_agents,
    add_user,
    open_runtime,
    replay_into,
    spool_pipeline,
    web_client,
    writer_running,
)

ALL = SCENARIOS
START = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)
SECTIONS: dict[str, Any] = {"pbx": [{"name": "pbx1", "recordings_dir": "spool"}]}


async def people(runtime: Runtime) -> dict[str, tuple[int, str]]:
    """Sales (101-104) and support (201, 202) agents, their supervisors, an admin; Ivan's
    contact under "ivan" (token empty)."""
    agents = await add_agents(runtime)
    out = {login: agents[ext] for login, _team, ext in AGENTS}
    for login, role, team in [
        ("boss", "supervisor", "sales"),
        ("sup2", "supervisor", "support"),
        ("root", "admin", ""),
    ]:
        out[login] = await add_user(runtime, login, role, team)
    async with runtime.engine.begin() as conn:
        ivan = await create_contact(
            conn,
            {
                "name": "Ivan Petrov",
                "phones": ["+79161234567"],
                "responsible_user_id": out["vera"][0],
            },
        )
        out["ivan"] = (ivan.id, "")
        await create_company(conn, {"name": "ООО Ромашка", "phones": ["+74951234567"]})
    return out


async def test_calllog_api_visibility_filters_stats_csv(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, **SECTIONS) as runtime:
        who = await people(runtime)
        ivan_id = who["ivan"][0]
        async with writer_running(runtime) as writer:
            ended = await replay_into(runtime, writer, ALL, START)
        spool = tmp_path / "spool"
        spool.mkdir()
        shutil.copy(WAVS / "in-20261128-212111-1795900871.1.wav", spool)
        pipe = spool_pipeline(runtime, spool)
        rec_id = await pipe.collect_call(ended[0])

        async with web_client(runtime) as client:

            async def calls(login: str, **params: str) -> dict[str, Any]:
                r = await client.get(
                    "/api/v1/calllog",
                    params=params,
                    headers={"Authorization": f"Bearer {who[login][1]}"},
                )
                assert r.status == 200, await r.text()
                body: dict[str, Any] = await r.json()
                return body

            assert (await calls("root"))["total"] == 8
            assert (await calls("boss"))["total"] == 7  # the queue call is support's
            assert (await calls("sup2"))["total"] == 1
            mine = await calls("anna")
            assert mine["total"] == 3  # answered, click-to-call, transfer

            assert (await calls("root", direction="outbound"))["total"] == 2
            missed = await calls("root", outcome="missed")
            assert sorted(c["outcome"] for c in missed["items"]) == [
                "abandoned",
                "busy",
                "no_answer",
            ]
            assert (await calls("root", number="916 123-45-67"))["total"] == 5
            assert (await calls("root", agent=str(who["anna"][0])))["total"] == 3
            assert (await calls("root", team="support"))["total"] == 1
            assert (await calls("root", **{"from": "2026-11-28", "to": "2026-11-28"}))["total"] == 8
            assert (await calls("root", **{"from": "2026-11-29"}))["total"] == 0
            with_audio = await calls("root", has_recording="true")
            assert with_audio["total"] == 1
            item = with_audio["items"][0]
            assert item["recording_url"] == f"/api/v1/recordings/{rec_id}"
            assert item["recording_seconds"] == 3.0 and item["answered_by_name"] == "Anna"
            assert (await calls("root", has_recording="false"))["total"] == 7
            page = await calls("root", limit="3", offset="6")
            assert len(page["items"]) == 2 and page["total"] == 8

            for params in ({"from": "yesterday"}, {"direction": "sideways"}, {"x": "1"}):
                r = await client.get(
                    "/api/v1/calllog",
                    params=params,
                    headers={"Authorization": f"Bearer {who['root'][1]}"},
                )
                assert r.status == 400

            r = await client.get(
                "/api/v1/calllog/stats",
                params={"from": "2026-11-28", "to": "2026-11-28", "tz_offset": "0"},
                headers={"Authorization": f"Bearer {who['boss'][1]}"},
            )
            stats = await r.json()
            per = {a["name"]: a for a in stats["agents"]}
            assert set(per) == {"Anna", "Boris", "Vera", "Gleb", "Boss"}
            assert per["Anna"]["calls_in"] == 2 and per["Anna"]["calls_out"] == 1
            assert per["Anna"]["answered"] == 3 and per["Anna"]["avg_talk_seconds"] > 0
            assert per["Boris"]["missed"] == 1 and per["Boris"]["abandoned"] == 1
            assert per["Boris"]["calls_out"] == 1 and per["Boris"]["avg_ring_seconds"] > 0
            assert per["Vera"]["missed"] == 1
            assert per["Vera"]["callbacks_done"] == 1 and per["Vera"]["callbacks_pending"] == 0
            hour = stats["hourly"][21]
            assert (hour["answered"], hour["missed"], hour["outbound"]) == (2, 3, 2)
            assert stats["totals"] == {
                "calls": 7,
                "inbound": 5,
                "outbound": 2,
                "answered": 2,
                "missed": 3,
            }
            r = await client.get(
                "/api/v1/calllog/stats", headers={"Authorization": f"Bearer {who['anna'][1]}"}
            )
            assert r.status == 403

            r = await client.get(
                "/api/v1/calllog.csv",
                params={"direction": "inbound"},
                headers={"Authorization": f"Bearer {who['boss'][1]}"},
            )
            assert r.status == 200 and r.content_type == "text/csv"
            assert "attachment" in r.headers["Content-Disposition"]
            rows = list(csv.DictReader(io.StringIO((await r.read()).decode("utf-8-sig"))))
            assert len(rows) == 5
            assert {row["caller"] for row in rows} >= {"+79161234567", "89161234567"}
            transfer = next(row for row in rows if row["caller"] == "+79031112233")
            assert transfer["agents"] == "101 104" and transfer["talked_last"] == "104"

            # the calls are in the contact's history, as the agent console shows it
            r = await client.get(
                "/api/v1/activities",
                params={"contact_id": str(ivan_id)},
                headers={"Authorization": f"Bearer {who['root'][1]}"},
            )
            history = (await r.json())["items"]
            assert len(history) == 5 and all(a["kind"] == "call" for a in history)
            assert {a["call"]["outcome"] for a in history} == {
                "answered",
                "no_answer",
                "busy",
                "abandoned",
            }


async def test_calllog_api_missed_not_called_back(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, **SECTIONS) as runtime:
        who = await people(runtime)
        async with writer_running(runtime) as writer:
            await replay_into(runtime, writer, ["inbound_missed", "inbound_busy"], START)
        async with web_client(runtime) as client:

            async def missed(login: str) -> list[dict[str, Any]]:
                r = await client.get(
                    "/api/v1/calllog/missed",
                    headers={"Authorization": f"Bearer {who[login][1]}"},
                )
                assert r.status == 200
                items: list[dict[str, Any]] = (await r.json())["items"]
                return items

            items = await missed("boss")
            assert len(items) == 1
            assert items[0]["number"] == "+79161234567" and items[0]["attempts"] == 2
            assert items[0]["assignee_name"] == "Vera" and items[0]["due_at"]
            assert await missed("anna") == []  # not hers
            assert len(await missed("vera")) == 1
            assert await missed("sup2") == []
            async with writer_running(runtime) as writer:
                await replay_into(runtime, writer, ["click_to_call"], START.replace(hour=22))
            assert await missed("boss") == []
