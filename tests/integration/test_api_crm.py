"""Contacts, companies, tasks, notes and lookup through the API: CRUD, search, paging, history."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.api_harness import api_world


async def test_contact_crud_and_company_link(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        company = await w.ok(
            "agent_a", "POST", "/api/v1/companies", {"name": "Acme", "phones": ["+7 495 123-45-67"]}
        )
        created = await w.ok(
            "agent_a",
            "POST",
            "/api/v1/contacts",
            {
                "name": "Ivan Petrov",
                "company_id": company["id"],
                "responsible_user_id": w.ids["agent_a"],
                "phones": ["+7 916 123-45-67", {"number": "8 (916) 7654321", "label": "work"}],
                "emails": ["ivan@example.com"],
                "tags": ["vip"],
            },
        )
        assert created["company_name"] == "Acme"
        assert [p["e164"] for p in created["phones"]] == ["+79161234567", "+79167654321"]
        cid = created["id"]
        got = await w.ok("agent_a2", "GET", f"/api/v1/contacts/{cid}")
        assert got == created
        changed = await w.ok(
            "agent_a",
            "PATCH",
            f"/api/v1/contacts/{cid}",
            {"tags": ["vip", "gold"], "company_id": None},
        )
        assert changed["tags"] == ["vip", "gold"] and changed["company_id"] is None
        assert changed["phones"] == created["phones"]  # untouched fields stay
        status, data = await w.call("sup_a", "DELETE", f"/api/v1/contacts/{cid}")
        assert status == 204
        status, data = await w.call("agent_a", "GET", f"/api/v1/contacts/{cid}")
        assert status == 404 and data["error"]["code"] == "not_found"
        status, data = await w.call("agent_a", "PATCH", f"/api/v1/contacts/{cid}", {"name": "x"})
        assert status == 404
        # a link to something that does not exist is the client's mistake, named
        status, data = await w.call(
            "agent_a", "POST", "/api/v1/contacts", {"name": "X", "company_id": 99999}
        )
        assert status == 400 and data["error"]["field"] == "company_id"


async def test_search_and_pagination(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        for i in range(7):
            await w.ok(
                "admin",
                "POST",
                "/api/v1/contacts",
                {
                    "name": f"Client {i:02d}",
                    "tags": ["even" if i % 2 == 0 else "odd"],
                    "phones": [f"+7916000000{i}"],
                },
            )
        await w.ok(
            "admin", "POST", "/api/v1/contacts", {"name": "100% O'Brien_x; DROP TABLE contacts;--"}
        )
        seen: list[str] = []
        offset = 0
        while True:
            page = await w.ok(
                "agent_a", "GET", f"/api/v1/contacts?q=Client&limit=3&offset={offset}"
            )
            assert page["total"] == 7 and page["limit"] == 3 and page["offset"] == offset
            if not page["items"]:
                break
            seen += [c["name"] for c in page["items"]]
            offset += 3
        assert seen == [f"Client {i:02d}" for i in range(7)]
        evens = await w.ok("agent_a", "GET", "/api/v1/contacts?tag=even")
        assert evens["total"] == 4
        by_phone = await w.ok("agent_a", "GET", "/api/v1/contacts?phone=8%20916%20000-00-03")
        assert [c["name"] for c in by_phone["items"]] == ["Client 03"]
        # SQL metacharacters and LIKE wildcards are matched literally
        odd = "100% O'Brien_x; DROP TABLE contacts;--"
        for q in ["%", "_", "100%", "O'Brien", "; DROP TABLE contacts;--", "\\", '"', "*"]:
            resp = await w.client.get(
                "/api/v1/contacts", params={"q": q}, headers=w.auth("agent_a")
            )
            assert resp.status == 200, q
            names = [c["name"] for c in (await resp.json())["items"]]
            assert names == ([odd] if q in odd else []), (q, names)
        assert (await w.ok("agent_a", "GET", "/api/v1/contacts"))["total"] == 8
        default = await w.ok("agent_a", "GET", "/api/v1/contacts")
        assert default["limit"] == 50 and default["offset"] == 0


async def test_company_search_and_history(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        acme = await w.ok("admin", "POST", "/api/v1/companies", {"name": "Acme", "tags": ["b2b"]})
        await w.ok("admin", "POST", "/api/v1/companies", {"name": "Beta"})
        found = await w.ok("agent_b", "GET", "/api/v1/companies?q=acm")
        assert [c["id"] for c in found["items"]] == [acme["id"]]
        note = await w.ok(
            "agent_b", "POST", "/api/v1/activities", {"body": "met them", "company_id": acme["id"]}
        )
        history = await w.ok("agent_b", "GET", f"/api/v1/companies/{acme['id']}/activities")
        assert [a["id"] for a in history["items"]] == [note["id"]]
        assert (
            history["items"][0]["kind"] == "note"
            and history["items"][0]["user_id"] == w.ids["agent_b"]
        )
        status, _ = await w.call("agent_b", "GET", "/api/v1/companies/99999/activities")
        assert status == 404


async def test_notes_and_contact_history(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        c = await w.ok("agent_a", "POST", "/api/v1/contacts", {"name": "Olga"})
        first = await w.ok(
            "agent_a", "POST", "/api/v1/activities", {"body": "first", "contact_id": c["id"]}
        )
        second = await w.ok(
            "agent_a", "POST", "/api/v1/activities", {"body": "second", "contact_id": c["id"]}
        )
        history = await w.ok("agent_a", "GET", f"/api/v1/contacts/{c['id']}/activities?kind=note")
        assert [a["body"] for a in history["items"]] == ["second", "first"]
        edited = await w.ok(
            "agent_a", "PATCH", f"/api/v1/activities/{first['id']}", {"body": "first, edited"}
        )
        assert edited["body"] == "first, edited"
        assert (await w.call("agent_a", "DELETE", f"/api/v1/activities/{second['id']}"))[0] == 204
        history = await w.ok("admin", "GET", f"/api/v1/contacts/{c['id']}/activities")
        assert [a["body"] for a in history["items"]] == ["first, edited"]
        status, _ = await w.call("agent_a", "GET", "/api/v1/contacts/424242/activities")
        assert status == 404


async def test_task_lifecycle(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        c = await w.ok("agent_a", "POST", "/api/v1/contacts", {"name": "Olga"})
        task = await w.ok(
            "agent_a",
            "POST",
            "/api/v1/tasks",
            {"title": "Call back", "contact_id": c["id"], "due_at": "2026-11-30T10:00:00+03:00"},
        )
        assert task["assignee_id"] == w.ids["agent_a"] and task["status"] == "open"
        assert task["due_at"].startswith("2026-11-30T07:00:00")
        assert task["created_by"] == w.ids["agent_a"]
        # a supervisor hands it to a teammate; the first agent no longer sees it
        moved = await w.ok(
            "sup_a", "PATCH", f"/api/v1/tasks/{task['id']}", {"assignee_id": w.ids["agent_a2"]}
        )
        assert moved["assignee_id"] == w.ids["agent_a2"]
        assert (await w.call("agent_a", "GET", f"/api/v1/tasks/{task['id']}"))[0] == 403
        closed = await w.ok(
            "agent_a2", "POST", f"/api/v1/tasks/{task['id']}/close", {"note": "reached her"}
        )
        assert closed["status"] == "done" and closed["closed_note"] == "reached her"
        assert closed["closed_at"] is not None
        open_only = await w.ok("agent_a2", "GET", "/api/v1/tasks?status=open")
        assert open_only["total"] == 0
        done = await w.ok("agent_a2", "GET", "/api/v1/tasks?status=done")
        assert [t["id"] for t in done["items"]] == [task["id"]]
        reopened = await w.ok(
            "agent_a2", "PATCH", f"/api/v1/tasks/{task['id']}", {"status": "open"}
        )
        assert reopened["closed_at"] is None
        cancelled = await w.ok(
            "agent_a2", "POST", f"/api/v1/tasks/{task['id']}/close", {"status": "cancelled"}
        )
        assert cancelled["status"] == "cancelled"


@pytest.mark.parametrize(
    "written",
    [
        "+7 916 123-45-67",
        "8 (916) 1234567",
        "89161234567",
        "9161234567",
        "+79161234567",
        "7-916-123-45-67",
        "1234567",
    ],
)
async def test_lookup_formats_over_http(tmp_path: Path, written: str) -> None:
    async with api_world(tmp_path) as w:
        c = await w.ok(
            "admin", "POST", "/api/v1/contacts", {"name": "Ivan", "phones": ["+7 916 123-45-67"]}
        )
        resp = await w.client.get(
            "/api/v1/lookup", params={"number": written}, headers=w.auth("agent_b")
        )
        assert resp.status == 200
        data = await resp.json()
        assert [(m["kind"], m["id"]) for m in data["matches"]][:1] == [("contact", c["id"])]
        assert data["explanation"]["input"] == written
        assert data["explanation"]["variants_tried"]


async def test_lookup_foreign_and_unknown_numbers_explain_themselves(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        de = await w.ok(
            "admin", "POST", "/api/v1/companies", {"name": "GmbH", "phones": ["+49 30 1234567"]}
        )
        found = await w.ok("agent_a", "GET", "/api/v1/lookup?number=0049301234567")
        assert [m["id"] for m in found["matches"]] == [de["id"]]
        assert found["matches"][0]["kind"] == "company"
        nothing = await w.ok("agent_a", "GET", "/api/v1/lookup?number=%2B1%20202%20555%200100")
        assert nothing["matches"] == []
        assert nothing["explanation"]["reason_if_none"]
        assert nothing["explanation"]["variants_tried"]
        status, data = await w.call("agent_a", "GET", "/api/v1/lookup")
        assert status == 400 and data["error"]["field"] == "number"


async def test_calls_are_seen_by_participants_and_their_supervisors(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from crm_sync.schema import activities, activity_participants

    async with api_world(tmp_path) as w:
        c = await w.ok("admin", "POST", "/api/v1/contacts", {"name": "Caller"})
        at = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
        async with w.runtime.engine.begin() as conn:
            result = await conn.execute(
                activities.insert().values(
                    kind="call",
                    contact_id=c["id"],
                    pbx="main",
                    conversation_id="1764331200.1",
                    direction="inbound",
                    outcome="answered",
                    caller_raw="+79161234567",
                    answered_by="102",
                    answered_by_user_id=w.ids["agent_a2"],
                    started_at=at,
                    created_at=at,
                )
            )
            call_id = int(result.inserted_primary_key[0])
            await conn.execute(
                activity_participants.insert(),
                [{"activity_id": call_id, "user_id": w.ids[u]} for u in ("agent_a", "agent_a2")],
            )
        for who, sees in [
            ("agent_a", True),  # rang (participant)
            ("agent_a2", True),  # answered
            ("sup_a", True),  # their team
            ("admin", True),
            ("agent_b", False),
            ("sup_b", False),
        ]:
            status, data = await w.call(who, "GET", f"/api/v1/activities/{call_id}")
            assert status == (200 if sees else 403), (who, status)
            listed = await w.ok(who, "GET", "/api/v1/activities?kind=call")
            assert [a["id"] for a in listed["items"]] == ([call_id] if sees else []), who
            history = await w.ok(who, "GET", f"/api/v1/contacts/{c['id']}/activities")
            assert [a["id"] for a in history["items"]] == ([call_id] if sees else []), who
        status, data = await w.call("agent_a2", "GET", f"/api/v1/activities/{call_id}")
        assert data["kind"] == "call" and data["call"]["outcome"] == "answered"
        # calls are not edited through the notes endpoint, and only admins delete them
        status, _ = await w.call("admin", "PATCH", f"/api/v1/activities/{call_id}", {"body": "x"})
        assert status == 400
        assert (await w.call("agent_a2", "DELETE", f"/api/v1/activities/{call_id}"))[0] == 403
        assert (await w.call("sup_a", "DELETE", f"/api/v1/activities/{call_id}"))[0] == 403
        assert (await w.call("admin", "DELETE", f"/api/v1/activities/{call_id}"))[0] == 204


async def test_new_and_reassigned_tasks_are_announced_on_the_bus(tmp_path: Path) -> None:
    from connector.events.model import TaskCreated

    async with api_world(tmp_path) as w:
        sub = w.runtime.bus.subscribe("test", {TaskCreated.TYPE})
        task = await w.ok(
            "sup_a",
            "POST",
            "/api/v1/tasks",
            {"title": "Ring back", "assignee_id": w.ids["agent_a"]},
        )
        event = sub.get_nowait()
        assert isinstance(event, TaskCreated)
        assert (event.task_id, event.assignee_id, event.title) == (
            task["id"],
            w.ids["agent_a"],
            "Ring back",
        )
        await w.ok("sup_a", "PATCH", f"/api/v1/tasks/{task['id']}", {"title": "Ring back soon"})
        assert sub.get_nowait() is None  # same assignee: nothing new for anyone
        await w.ok(
            "sup_a", "PATCH", f"/api/v1/tasks/{task['id']}", {"assignee_id": w.ids["agent_a2"]}
        )
        moved = sub.get_nowait()
        assert isinstance(moved, TaskCreated) and moved.assignee_id == w.ids["agent_a2"]
        assert moved.key != event.key
        w.runtime.bus.unsubscribe(sub)
