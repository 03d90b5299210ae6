"""Contacts and companies on a real SQLite file: CRUD, search, merge, validation and audit."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from crm_sync import contacts as crm
from crm_sync import users
from crm_sync.audit import list_audit
from crm_sync.errors import NotFound, ValidationError
from crm_sync.schema import phones as phones_table
from tests.integration.store_support import migrated_engine, rejected_field

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


async def test_contact_crud_with_phones_and_audit(tmp_path: Path) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            admin = await users.create_user(conn, {"login": "root", "role": "admin"})
            agent = await users.create_user(conn, {"login": "anna", "name": "Anna"})
            company = await crm.create_company(
                conn, {"name": "Acme", "phones": ["+7 495 000-00-01"]}, user_id=admin.id
            )
            created = await crm.create_contact(
                conn,
                {
                    "name": "  Ivan Petrov ",
                    "company_id": company.id,
                    "responsible_user_id": agent.id,
                    "phones": ["8 (916) 123-45-67", {"number": "101", "label": "desk"}],
                    "emails": ["ivan@example.com"],
                    "tags": ["vip", "vip", "lead"],
                    "notes": "met at the fair",
                },
                user_id=admin.id,
                now=NOW,
            )
        assert created.name == "Ivan Petrov"
        assert created.company_name == "Acme"
        assert created.responsible_name == "Anna"
        assert [(p.raw, p.e164, p.national, p.label) for p in created.phones] == [
            ("8 (916) 123-45-67", "+79161234567", "9161234567", ""),
            ("101", None, "101", "desk"),
        ]
        assert created.tags == ("vip", "lead")
        assert created.created_at == NOW
        async with engine.connect() as conn:
            stored = (await conn.execute(phones_table.select().order_by(phones_table.c.id))).all()
        assert [r.national_rev for r in stored if r.contact_id == created.id] == [
            "7654321619",
            "101",
        ]

        async with engine.begin() as conn:
            updated = await crm.update_contact(
                conn,
                created.id,
                {"phones": ["+49 30 1234567"], "tags": [], "company_id": None},
                user_id=agent.id,
            )
        assert [p.e164 for p in updated.phones] == ["+49301234567"]
        assert updated.tags == ()
        assert updated.company_id is None and updated.company_name is None
        assert updated.emails == ("ivan@example.com",)  # untouched

        async with engine.begin() as conn:
            await crm.delete_contact(conn, created.id, user_id=admin.id)
            with pytest.raises(NotFound):
                await crm.get_contact(conn, created.id)
            left = (
                await conn.execute(
                    phones_table.select().where(phones_table.c.contact_id == created.id)
                )
            ).all()
            assert left == []
            trail = await list_audit(conn, entity="contact", entity_id=created.id)
        assert [(e.action, e.user_id) for e in trail.items] == [
            ("contact.delete", admin.id),
            ("contact.update", agent.id),
            ("contact.create", admin.id),
        ]
        create_entry = trail.items[-1]
        assert create_entry.details["phones"] == ["8 (916) 123-45-67", "101"]
        assert create_entry.at == NOW


async def test_company_crud_keeps_contacts(tmp_path: Path) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            company = await crm.create_company(conn, {"name": "Acme", "emails": ["a@acme.io"]})
            person = await crm.create_contact(conn, {"name": "P", "company_id": company.id})
            renamed = await crm.update_company(conn, company.id, {"name": "Acme Ltd"})
            assert renamed.name == "Acme Ltd"
            assert (await crm.get_contact(conn, person.id)).company_name == "Acme Ltd"
            assert (await crm.find_company_by_name(conn, "Acme Ltd")) == renamed
            assert await crm.find_company_by_name(conn, "Nope") is None
            await crm.delete_company(conn, company.id)
            assert (await crm.get_contact(conn, person.id)).company_id is None
            with pytest.raises(NotFound):
                await crm.update_company(conn, company.id, {"name": "x"})
            actions = [e.action for e in (await list_audit(conn, entity="company")).items]
        assert actions == ["company.delete", "company.update", "company.create"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": 5}, "name"),
        ({"name": "x" * 301}, "name"),
        ({"name": "x", "phones": "123"}, "phones"),
        ({"name": "x", "phones": ["+7 916", "abc"]}, "phones[1]"),
        ({"name": "x", "phones": [{"number": "1", "fax": True}]}, "phones[0].fax"),
        ({"name": "x", "phones": [7]}, "phones[0]"),
        ({"name": "x", "emails": ["not-an-email"]}, "emails[0]"),
        ({"name": "x", "tags": [1]}, "tags[0]"),
        ({"name": "x", "company_id": 999}, "company_id"),
        ({"name": "x", "company_id": "1"}, "company_id"),
        ({"name": "x", "responsible_user_id": 999}, "responsible_user_id"),
        ({"name": "x", "colour": "red"}, "colour"),
        ({"name": "x\x00y"}, "name"),
    ],
)
async def test_bad_input_names_the_field(
    tmp_path: Path, data: dict[str, object], field: str
) -> None:
    assert await rejected_field(tmp_path, crm.create_contact, data) == field


async def test_search_filters_and_pagination(tmp_path: Path) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            agent = await users.create_user(conn, {"login": "anna"})
            acme = await crm.create_company(conn, {"name": "Acme"})
            for i in range(12):
                await crm.create_contact(
                    conn,
                    {
                        "name": f"Person {i:02d}",
                        "phones": [f"+7 916 000-00-{i:02d}"],
                        "tags": ["even"] if i % 2 == 0 else ["odd"],
                        "company_id": acme.id if i < 3 else None,
                        "responsible_user_id": agent.id if i == 5 else None,
                    },
                )
            await crm.create_contact(conn, {"name": "Пётр Иванов", "tags": ["клиент"]})

            page = await crm.list_contacts(conn, limit=5, offset=10)
            assert page.total == 13
            assert [c.name for c in page.items] == ["Person 10", "Person 11", "Пётр Иванов"]
            assert (await crm.list_contacts(conn, name="person 0")).total == 10
            assert (await crm.list_contacts(conn, name="Пётр")).total == 1
            assert (await crm.list_contacts(conn, name="пётр ИВАНОВ")).total == 1
            assert (await crm.list_contacts(conn, tag="even")).total == 6
            assert (await crm.list_contacts(conn, tag="клиент")).total == 1
            assert (await crm.list_contacts(conn, tag="eve")).total == 0
            assert (await crm.list_contacts(conn, company_id=acme.id)).total == 3
            assert [
                c.name for c in (await crm.list_contacts(conn, responsible_user_id=agent.id)).items
            ] == ["Person 05"]
            by_phone = await crm.list_contacts(conn, phone="8 (916) 000-00-07")
            assert [c.name for c in by_phone.items] == ["Person 07"]
            assert (await crm.list_contacts(conn, phone="anonymous")).total == 0
            # a partial number: every number ending in those digits
            assert (await crm.list_contacts(conn, phone="00-01")).total == 1
            assert (await crm.list_contacts(conn, phone="0-07")).total == 0  # < 4 digits: exact
            assert (await crm.list_contacts(conn, phone="+7 999 000-00-07")).total == 0
            combined = await crm.list_contacts(conn, name="Person", tag="odd", limit=2)
            assert combined.total == 6 and len(combined.items) == 2
            assert combined.to_dict()["total"] == 6
            with pytest.raises(ValidationError) as info:
                await crm.list_contacts(conn, limit=0)
            assert info.value.field == "limit"
            with pytest.raises(ValidationError):
                await crm.list_contacts(conn, offset=-1)


@pytest.mark.parametrize(
    "needle", ["%", "_", "'", "';--", "; DROP TABLE contacts; --", "\\", "100%", "a_b", '"']
)
async def test_search_with_sql_metacharacters(tmp_path: Path, needle: str) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            await crm.create_contact(conn, {"name": "Plain Name", "tags": ["plain"]})
            literal = await crm.create_contact(conn, {"name": f"x{needle}y", "tags": [needle]})
            by_name = await crm.list_contacts(conn, name=needle)
            by_tag = await crm.list_contacts(conn, tag=needle)
            companies = await crm.list_companies(conn, name=needle, tag=needle, phone=needle)
            assert companies.total == 0
            assert (await crm.list_contacts(conn)).total == 2
    assert [c.id for c in by_name.items] == [literal.id]
    assert [c.id for c in by_tag.items] == [literal.id]


async def test_merge_unions_phones_emails_tags(tmp_path: Path) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            c = await crm.create_contact(
                conn,
                {"name": "Ivan", "phones": ["+79161234567"], "emails": ["a@x.io"], "tags": ["a"]},
            )
            merged = await crm.merge_contact(
                conn,
                c.id,
                phones=["8 916 123 45 67", "+7 903 000 00 01"],
                emails=["a@x.io", "b@x.io"],
                tags=["a", "b"],
                notes="from import",
            )
            again = await crm.merge_contact(conn, c.id, phones=["89031234567"][:0])
            actions = [e.action for e in (await list_audit(conn, entity="contact")).items]
    assert [p.e164 for p in merged.phones] == ["+79161234567", "+79030000001"]
    assert merged.emails == ("a@x.io", "b@x.io")
    assert merged.tags == ("a", "b")
    assert merged.notes == "from import"
    assert again == merged  # nothing new: no write, no audit entry
    assert actions == ["contact.merge", "contact.create"]
