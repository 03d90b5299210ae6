"""Tasks and note activities on a real SQLite file: CRUD, visibility filters, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crm_sync import activities, tasks, users
from crm_sync import contacts as crm
from crm_sync.audit import list_audit
from crm_sync.errors import NotFound, ValidationError
from crm_sync.schema import activities as activities_table
from crm_sync.schema import activity_participants
from tests.integration.store_support import migrated_engine, rejected_field

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


async def test_task_lifecycle_and_filters(tmp_path: Path) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            a = await users.create_user(conn, {"login": "a", "team": "t"})
            b = await users.create_user(conn, {"login": "b", "team": "t"})
            c = await users.create_user(conn, {"login": "c", "team": "u"})
            person = await crm.create_contact(conn, {"name": "P"})
            t1 = await tasks.create_task(
                conn,
                {
                    "title": "Call back",
                    "kind": "callback",
                    "due_at": "2024-05-01T13:00:00Z",
                    "assignee_id": a.id,
                    "contact_id": person.id,
                    "number_e164": "+79161234567",
                },
                user_id=c.id,
                now=NOW,
            )
            assert t1.due_at == datetime(2024, 5, 1, 13, 0, tzinfo=UTC)
            assert (t1.status, t1.created_by, t1.closed_at) == ("open", c.id, None)
            t2 = await tasks.create_task(conn, {"title": "Send offer", "assignee_id": b.id})
            t3 = await tasks.create_task(conn, {"title": "Other team", "assignee_id": c.id})
            t4 = await tasks.create_task(
                conn, {"title": "Early", "assignee_id": a.id, "due_at": "2024-05-01T09:00:00+03:00"}
            )

            mine = await tasks.list_tasks(conn, assignee_ids=[a.id])
            assert [t.id for t in mine.items] == [t4.id, t1.id]  # by due time
            team = await tasks.list_tasks(conn, assignee_ids=await users.team_member_ids(conn, "t"))
            assert {t.id for t in team.items} == {t1.id, t2.id, t4.id}
            assert (await tasks.list_tasks(conn)).total == 4
            assert (await tasks.list_tasks(conn, assignee_ids=[])).total == 0
            assert [t.id for t in (await tasks.list_tasks(conn, kind="callback")).items] == [t1.id]
            assert (await tasks.list_tasks(conn, contact_id=person.id)).total == 1
            due = await tasks.list_tasks(conn, due_before=datetime(2024, 5, 1, 12, tzinfo=UTC))
            assert [t.id for t in due.items] == [t4.id]

            done = await tasks.update_task(
                conn, t1.id, {"status": "done", "closed_note": "called"}, user_id=a.id, now=NOW
            )
            assert done.status == "done" and done.closed_at == NOW
            # open ones with a due time first, then undated ones newest first
            open_now = await tasks.list_tasks(conn, status="open")
            assert [t.id for t in open_now.items] == [t4.id, t3.id, t2.id]
            reopened = await tasks.update_task(conn, t1.id, {"status": "open"})
            assert reopened.closed_at is None
            await tasks.delete_task(conn, t3.id)
            with pytest.raises(NotFound):
                await tasks.get_task(conn, t3.id)
            actions = [e.action for e in (await list_audit(conn, entity="task")).items]
            assert actions.count("task.create") == 4 and "task.delete" in actions


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "title"),
        ({"title": "x", "status": "later"}, "status"),
        ({"title": "x", "kind": "meeting"}, "kind"),
        ({"title": "x", "due_at": "tomorrow"}, "due_at"),
        ({"title": "x", "due_at": 5}, "due_at"),
        ({"title": "x", "assignee_id": 999}, "assignee_id"),
        ({"title": "x", "contact_id": 999}, "contact_id"),
        ({"title": "x", "activity_id": True}, "activity_id"),
        ({"title": "x", "number_e164": "8 916-12"}, "number_e164"),
        ({"title": "x", "priority": 1}, "priority"),
    ],
)
async def test_bad_task_input(tmp_path: Path, data: dict[str, object], field: str) -> None:
    assert await rejected_field(tmp_path, tasks.create_task, data) == field


async def test_notes_and_activity_visibility(tmp_path: Path) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            a = await users.create_user(conn, {"login": "a"})
            b = await users.create_user(conn, {"login": "b"})
            person = await crm.create_contact(conn, {"name": "P"})
            note = await activities.create_note(
                conn, {"body": "likes tea", "contact_id": person.id}, user_id=a.id, now=NOW
            )
            assert (note.kind, note.user_id, note.body, note.call) == (
                "note",
                a.id,
                "likes tea",
                {},
            )
            # a call written the way the call log writes it, answered by b
            result = await conn.execute(
                activities_table.insert()
                .values(
                    kind="call",
                    contact_id=person.id,
                    pbx="main",
                    conversation_id="c-1",
                    direction="inbound",
                    outcome="answered",
                    answered_by_user_id=b.id,
                    started_at=NOW,
                    created_at=NOW + timedelta(minutes=1),
                )
                .returning(activities_table.c.id)
            )
            call_id = int(result.scalar_one())
            await conn.execute(
                activity_participants.insert(), [{"activity_id": call_id, "user_id": a.id}]
            )

            of_a = await activities.list_activities(conn, user_ids=[a.id])
            assert [x.id for x in of_a.items] == [call_id, note.id]  # rang a, newest first
            of_b = await activities.list_activities(conn, user_ids=[b.id])
            assert [x.id for x in of_b.items] == [call_id]
            assert (await activities.list_activities(conn, user_ids=[])).total == 0
            assert (await activities.list_activities(conn, kind="note")).total == 1
            assert (await activities.list_activities(conn, contact_id=person.id)).total == 2
            call = await activities.get_activity(conn, call_id)
            assert call.call["outcome"] == "answered" and call.call["started_at"] == NOW
            assert call.participant_ids == (a.id,)
            assert call.to_dict()["call"]["started_at"] == NOW.isoformat()

            edited = await activities.update_note(conn, note.id, {"body": "likes coffee"})
            assert edited.body == "likes coffee"
            with pytest.raises(ValidationError):
                await activities.update_note(conn, call_id, {"body": "no"})
            with pytest.raises(ValidationError) as info:
                await activities.create_note(conn, {"body": ""})
            assert info.value.field == "body"
            with pytest.raises(ValidationError) as info:
                await activities.create_note(conn, {"body": "x", "company_id": 77})
            assert info.value.field == "company_id"
            await activities.delete_activity(conn, call_id, user_id=a.id)
            with pytest.raises(NotFound):
                await activities.get_activity(conn, call_id)
            actions = [e.action for e in (await list_audit(conn, entity="activity")).items]
            assert actions == ["activity.delete", "note.update", "note.create"]
