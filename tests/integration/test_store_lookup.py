"""Caller lookup on a real SQLite file: number formats, foreign numbers, ranking, explanation,
and query plans that use indexes only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_sync import contacts as crm
from crm_sync import users
from crm_sync.lookup import lookup
from crm_sync.phones import normalize
from crm_sync.schema import companies as companies_table
from crm_sync.schema import contacts as contacts_table
from crm_sync.schema import phones as phones_table
from tests.integration.store_support import migrated_engine


async def _seed(conn: AsyncConnection) -> dict[str, int]:
    manager = await users.create_user(conn, {"login": "olga", "name": "Olga Manager"})
    acme = await crm.create_company(
        conn,
        {"name": "Acme", "phones": ["+7 495 765-43-21"], "responsible_user_id": manager.id},
    )
    ivan = await crm.create_contact(
        conn,
        {
            "name": "Ivan Petrov",
            "company_id": acme.id,
            "phones": ["+7 916 123-45-67", {"number": "101", "label": "desk"}],
            "tags": ["vip"],
        },
    )
    hans = await crm.create_contact(conn, {"name": "Hans Müller", "phones": ["+49 30 1234567"]})
    local = await crm.create_contact(conn, {"name": "Local Seven", "phones": ["1112233"]})
    return {
        "manager": manager.id,
        "acme": acme.id,
        "ivan": ivan.id,
        "hans": hans.id,
        "local": local.id,
    }


@pytest.mark.parametrize(
    "number",
    [
        "+7 916 123-45-67",
        "8 (916) 1234567",
        "89161234567",
        "9161234567",
        "79161234567",
        "+7-916-123-45-67",
        " 8 916 123 45 67 ",
    ],
)
async def test_every_russian_format_finds_the_contact(tmp_path: Path, number: str) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            ids = await _seed(conn)
            result = await lookup(conn, number, "RU")
    best = result.best
    assert best is not None
    assert (best.kind, best.id, best.match_type, best.rank) == ("contact", ids["ivan"], "e164", 1)
    assert best.company_name == "Acme"
    # no responsible of its own: the company's manager is the caller's manager
    assert best.responsible_user_id == ids["manager"]
    assert best.responsible_name == "Olga Manager"
    assert best.tags == ("vip",)
    assert best.matched_number == "+7 916 123-45-67"
    assert result.e164 == "+79161234567"
    assert "+79161234567" in result.explanation.variants_tried


@pytest.mark.parametrize("number", ["+49 30 1234567", "0049 30 1234567", "004930-123-45-67"])
async def test_foreign_numbers(tmp_path: Path, number: str) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            ids = await _seed(conn)
            result = await lookup(conn, number, "RU")
    assert result.best is not None
    assert (result.best.id, result.best.match_type) == (ids["hans"], "e164")


async def test_extension_matches_nationally(tmp_path: Path) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            ids = await _seed(conn)
            result = await lookup(conn, "101", "RU")
    assert [(m.id, m.match_type, m.rank) for m in result.matches] == [(ids["ivan"], "national", 2)]


async def test_ranking_exact_before_suffix_and_contacts_before_companies(tmp_path: Path) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            ids = await _seed(conn)
            # same last 7 digits as Acme's number, different area code
            other = await crm.create_contact(conn, {"name": "Zed", "phones": ["+7 812 765-43-21"]})
            both = await crm.create_company(conn, {"name": "Aardvark", "phones": ["+74957654321"]})
            result = await lookup(conn, "+7 495 765 43 21", "RU")
    got = [(m.kind, m.id, m.match_type) for m in result.matches]
    assert got == [
        ("company", both.id, "e164"),
        ("company", ids["acme"], "e164"),
        ("contact", other.id, "suffix"),
    ]
    # at equal rank a contact comes first
    async with migrated_engine(tmp_path, "second.db") as engine:
        async with engine.begin() as conn:
            company = await crm.create_company(conn, {"name": "A Co", "phones": ["+79031112233"]})
            person = await crm.create_contact(conn, {"name": "Z Person", "phones": ["89031112233"]})
            result = await lookup(conn, "+79031112233", "RU")
    assert [(m.kind, m.id) for m in result.matches] == [
        ("contact", person.id),
        ("company", company.id),
    ]


async def test_suffix_match_finds_a_number_stored_without_area_code(tmp_path: Path) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            ids = await _seed(conn)
            result = await lookup(conn, "+7 495 111-22-33", "RU")
    assert [(m.id, m.match_type, m.rank) for m in result.matches] == [(ids["local"], "suffix", 3)]
    assert any("ending in 1112233" in s for s in result.explanation.steps)


async def test_limit(tmp_path: Path) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            for i in range(5):
                await crm.create_contact(conn, {"name": f"Dup {i}", "phones": ["+79160000001"]})
            result = await lookup(conn, "89160000001", "RU", limit=3)
    assert [m.name for m in result.matches] == ["Dup 0", "Dup 1", "Dup 2"]


async def test_explanation_when_nothing_matches(tmp_path: Path) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            await _seed(conn)
            result = await lookup(conn, "8 (999) 000-00-00", "RU")
            short = await lookup(conn, "555", "RU")
    assert result.matches == []
    ex = result.explanation
    assert ex.input == "8 (999) 000-00-00"
    assert ex.variants_tried == ["+79990000000", "9990000000", "*0000000"]
    assert ex.reason_if_none is not None
    assert "+79990000000" in ex.reason_if_none and "0000000" in ex.reason_if_none
    assert len(ex.steps) >= 4
    d = result.to_dict()
    assert d["matches"] == [] and d["explanation"]["reason_if_none"] == ex.reason_if_none
    assert short.explanation.reason_if_none is not None
    assert "too short" in short.explanation.reason_if_none


@pytest.mark.parametrize("number", ["", "anonymous", "<unknown>", "Restricted"])
async def test_hidden_numbers(tmp_path: Path, number: str) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            await _seed(conn)
            result = await lookup(conn, number, "RU")
    assert result.hidden
    assert result.matches == []
    assert result.explanation.reason_if_none is not None


async def test_sql_metacharacters_are_just_characters(tmp_path: Path) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            await _seed(conn)
            for number in ["' OR 1=1 --", "%", "_", "1%; DROP TABLE phones; --"]:
                result = await lookup(conn, number, "RU")
                assert result.matches == []
            count = len((await conn.execute(phones_table.select())).all())
    assert count == 5


async def test_query_plans_use_indexes_only(tmp_path: Path) -> None:
    """Every statement a lookup (or a phone search) runs is planned as index searches, never a
    table scan."""
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            await _seed(conn)
            # enough rows that a scan would be a real choice for the planner
            rows = []
            for i in range(3000):
                rows.append({"name": f"Bulk {i}", "emails": [], "tags": [], "notes": ""})
            now = (await crm.get_contact(conn, 1)).created_at
            await conn.execute(
                contacts_table.insert(), [{**r, "created_at": now, "updated_at": now} for r in rows]
            )
            phone_rows = []
            for i in range(3000):
                p = normalize(f"+7 926 {i:07d}", "RU")
                phone_rows.append(
                    {
                        "contact_id": 4 + i,
                        "raw": p.raw,
                        "e164": p.e164,
                        "national": p.national,
                        "national_rev": p.national_rev,
                    }
                )
            await conn.execute(phones_table.insert(), phone_rows)
            await conn.execute(
                companies_table.insert(),
                [
                    {
                        "name": f"Co {i}",
                        "emails": [],
                        "tags": [],
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(1000)
                ],
            )
            await conn.exec_driver_sql("ANALYZE")

        captured: list[tuple[str, Any]] = []

        def capture(_c: Any, _cur: Any, statement: str, params: Any, *_rest: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT"):
                captured.append((statement, params))

        event.listen(engine.sync_engine, "before_cursor_execute", capture)
        async with engine.connect() as conn:
            for number in ["+7 916 123-45-67", "101", "+7 495 111-22-33", "+7 926 0001234"]:
                result = await lookup(conn, number, "RU")
                assert result.matches
            # the phone filter of the contact search is indexed the same way
            assert (await crm.list_contacts(conn, phone="8 926 000-12-34")).total == 1
            assert (await crm.list_contacts(conn, phone="1234")).total == 1
        event.remove(engine.sync_engine, "before_cursor_execute", capture)

        assert len(captured) >= 8
        async with engine.connect() as conn:
            for statement, params in captured:
                plan = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)).all()
                details = [str(row[-1]) for row in plan]
                # users is a small table (people, not customers): the planner may scan it
                scans = [
                    d
                    for d in details
                    if d.startswith("SCAN") and "CONSTANT" not in d and "SCAN users" not in d
                ]
                assert not scans, (statement, details)
                assert any(d.startswith("SEARCH") for d in details), (statement, details)
