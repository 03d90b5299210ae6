"""The same store functions against PostgreSQL (127.0.0.1:5432, database per test run)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_sync import activities, tasks, users
from crm_sync import contacts as crm
from crm_sync.audit import list_audit
from crm_sync.auth import resolve_token
from crm_sync.csv_io import export_contacts, import_contacts
from crm_sync.db import migrate, open_engine
from crm_sync.errors import Conflict
from crm_sync.lookup import lookup
from tests.integration.store_support import postgres_database

pytestmark = pytest.mark.postgres


@asynccontextmanager
async def migrated_postgres() -> AsyncIterator[AsyncEngine]:
    async with postgres_database() as url:
        migrate(url)  # synchronous, from inside a running loop: Alembic gets its own loop
        migrate(url)  # a second run is a no-op
        engine = open_engine(url)
        try:
            yield engine
        finally:
            await engine.dispose()


async def test_store_on_postgres(tmp_path: Path) -> None:
    async with migrated_postgres() as engine:
        async with engine.begin() as conn:
            agent = await users.create_user(
                conn,
                {
                    "login": "anna",
                    "team": "t",
                    "password": "secret-pass",
                    "extensions": ["main:101"],
                },
            )
            with pytest.raises(Conflict):
                await users.create_user(conn, {"login": "anna"})
            with pytest.raises(Conflict):
                await users.create_user(conn, {"login": "bob", "extensions": ["main:101"]})
            issued = await users.issue_token(conn, agent.id, "pg")
            company = await crm.create_company(
                conn,
                {"name": "Acme", "phones": ["+7 495 765-43-21"], "responsible_user_id": agent.id},
            )
            ivan = await crm.create_contact(
                conn,
                {
                    "name": "Ivan 100%_x",
                    "company_id": company.id,
                    "phones": ["8 (916) 123-45-67", "101"],
                    "tags": ["vip", "ключ"],
                },
                user_id=agent.id,
            )
            hans = await crm.create_contact(conn, {"name": "Hans", "phones": ["0049 30 1234567"]})
            task = await tasks.create_task(
                conn,
                {"title": "Call back", "assignee_id": agent.id, "due_at": "2024-05-01T10:00:00Z"},
            )
            note = await activities.create_note(
                conn, {"body": "hello", "contact_id": ivan.id}, user_id=agent.id
            )
        async with engine.connect() as conn:
            assert await users.authenticate(conn, "anna", "secret-pass") == await users.get_user(
                conn, agent.id
            )
            who = await resolve_token(conn, issued.token)
            assert who is not None and who.extensions == (("main", "101"),)
            for number in ("+7 916 123-45-67", "89161234567", "9161234567"):
                best = (await lookup(conn, number, "RU")).best
                assert best is not None and (best.id, best.match_type) == (ivan.id, "e164")
                assert best.responsible_user_id == agent.id  # via the company
            foreign = (await lookup(conn, "+49 30 1234567", "RU")).best
            assert foreign is not None and foreign.id == hans.id
            assert [m.match_type for m in (await lookup(conn, "101", "RU")).matches] == ["national"]
            suffix = await lookup(conn, "+7 812 765-43-21", "RU")
            assert [(m.kind, m.match_type) for m in suffix.matches] == [("company", "suffix")]
            nothing = await lookup(conn, "+7 999 000 00 00", "RU")
            assert nothing.matches == [] and nothing.explanation.reason_if_none
            assert (await crm.list_contacts(conn, name="100%_")).total == 1
            assert (await crm.list_contacts(conn, name="1_0")).total == 0  # "_" is literal
            assert (await crm.list_contacts(conn, name="'; DROP TABLE contacts; --")).total == 0
            assert (await crm.list_contacts(conn, tag="ключ")).total == 1
            assert (await crm.list_contacts(conn, phone="8 916 123 45 67")).total == 1
            assert [
                t.id for t in (await tasks.list_tasks(conn, assignee_ids=[agent.id])).items
            ] == [task.id]
            assert [
                a.id for a in (await activities.list_activities(conn, user_ids=[agent.id])).items
            ] == [note.id]
            assert (await list_audit(conn, entity="contact")).total == 2

        csv_file = tmp_path / "in.csv"
        csv_file.write_text(
            "name,phone,responsible\nNew,+7 903 000 00 01,anna\nIvan again,89161234567,\n",
            encoding="utf-8",
        )
        report = await import_contacts(engine, csv_file, batch_size=1)
        assert (report.imported, report.merged, report.skipped) == (1, 1, [])
        async with engine.connect() as conn:
            assert await export_contacts(conn, tmp_path / "out.csv") == 3
