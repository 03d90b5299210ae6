"""CSV import and export on a real SQLite file: mapping, bad rows, merging, a 100,000-row file."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_sync import contacts as crm
from crm_sync import users
from crm_sync.csv_io import detect_mapping, export_contacts, import_contacts, parse_row
from crm_sync.errors import ValidationError
from crm_sync.schema import audit_log, companies, contacts, phones
from tests.integration.store_support import migrated_engine


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_detect_mapping_english_and_russian() -> None:
    header = [
        "ФИО",
        "Телефон",
        "Mobile",
        "E-mail",
        "Компания",
        "Ответственный",
        "Теги",
        "Комментарий",
        "Birthday",
    ]
    assert detect_mapping(header) == {
        "ФИО": "name",
        "Телефон": "phone",
        "Mobile": "phone",
        "E-mail": "email",
        "Компания": "company",
        "Ответственный": "responsible",
        "Теги": "tags",
        "Комментарий": "notes",
        "Birthday": "ignore",
    }
    assert detect_mapping(["Full_Name", " PHONE NUMBER ", "Notes:"]) == {
        "Full_Name": "name",
        " PHONE NUMBER ": "phone",
        "Notes:": "notes",
    }
    assert detect_mapping(["Who", "Num"], {"Who": "name", "Num": "phone"}) == {
        "Who": "name",
        "Num": "phone",
    }
    with pytest.raises(ValidationError, match="no column 'Nope'"):
        detect_mapping(["name"], {"Nope": "phone"})
    with pytest.raises(ValidationError, match="'fax' is not one of"):
        detect_mapping(["name", "x"], {"x": "fax"})
    with pytest.raises(ValidationError, match="no column holds a name or a phone"):
        detect_mapping(["Birthday", "Shoe size"])


def test_parse_row_reasons() -> None:
    fields = ["name", "phone", "email"]
    good = parse_row(["Ivan", "8 916 123 45 67; +49 30 1234567", "a@b.io"], fields, 2, "RU")
    assert not isinstance(good, type(None)) and hasattr(good, "phones")
    assert parse_row(["", " ", ""], fields, 3, "RU") is None
    cases = {
        ("", "89161234567", ""): "the name is empty",
        ("Ivan", "call me", ""): "is not a phone number",
        ("Ivan", "", "not-mail"): "is not an e-mail address",
        ("Ivan", "", "", "extra"): "cells but the header has 3 columns",
    }
    for cells, reason in cases.items():
        err = parse_row(list(cells), fields, 7, "RU")
        assert err is not None and not hasattr(err, "phones")
        assert err.line == 7 and reason in err.reason  # type: ignore[union-attr]


async def test_import_with_bad_rows_duplicates_and_mapping(tmp_path: Path) -> None:
    text = (
        "ФИО;Телефон;Доп. телефон;Почта;Компания;Ответственный;Теги;Комментарий\n"
        "Иван Петров;8 (916) 123-45-67;;ivan@example.com;Рога и копыта;anna;vip;first\n"
        ";89160000000;;;;;;no name\n"
        "Пётр;+7 916 000-00-01;;not-an-email;;;;\n"
        'Мария;"+7 903 111-22-33, 8 903 111 22 44";;m@example.com;Рога и копыта;;;\n'
        "Ivan P. (again);+79161234567;+49 30 1234567;ivan2@example.com;;;client;second\n"
        "Ghost;+7 999 000 00 00;;;;nobody;;\n"
        "\n"
        "Олег;не телефон;;;;;;\n"
        '"Multi\nline";+7 926 555 00 11;;;;;;"note\nwith lines"\n'
        "Existing dup;8 495 765 43 21;;;Рога и копыта;;new-tag;\n"
    )
    path = _write(tmp_path / "contacts.csv", text)
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            anna = await users.create_user(conn, {"login": "anna", "name": "Anna"})
            old = await crm.create_contact(
                conn, {"name": "Old Timer", "phones": ["+7 495 765-43-21"], "tags": ["old"]}
            )
        report = await import_contacts(
            engine,
            path,
            mapping={"Доп. телефон": "phone"},
            region="RU",
            user_id=anna.id,
            batch_size=2,
        )
        assert report.rows == 9  # the blank line is not a row
        assert report.imported == 3  # Иван Петров, Мария, Multi line
        assert report.merged == 2  # Ivan again -> Иван; Existing dup -> Old Timer
        assert [(e.line, e.reason.split(" ")[0]) for e in report.skipped] == [
            (3, "the"),
            (4, "e-mail"),
            (7, "responsible"),
            (9, "phone"),
        ]
        assert "nobody" in report.skipped[2].reason
        assert report.columns["Доп. телефон"] == "phone"
        assert report.companies_created == 1
        async with engine.connect() as conn:
            page = await crm.list_contacts(conn, limit=50)
            by_name = {c.name: c for c in page.items}
            assert set(by_name) == {"Иван Петров", "Мария", "Multi line", "Old Timer"}
            ivan = by_name["Иван Петров"]
            assert [p.e164 for p in ivan.phones] == ["+79161234567", "+49301234567"]
            assert ivan.emails == ("ivan@example.com", "ivan2@example.com")
            assert ivan.tags == ("vip", "client")
            assert ivan.notes == "first\nsecond"
            assert ivan.company_name == "Рога и копыта" and ivan.responsible_name == "Anna"
            assert by_name["Мария"].company_id == ivan.company_id
            assert [p.e164 for p in by_name["Мария"].phones] == ["+79031112233", "+79031112244"]
            assert by_name["Multi line"].notes == "note\nwith lines"
            assert by_name["Old Timer"].id == old.id
            assert by_name["Old Timer"].tags == ("old", "new-tag")
            assert by_name["Old Timer"].company_name == "Рога и копыта"  # filled in
            assert len(by_name["Old Timer"].phones) == 1
            actions = (
                await conn.execute(
                    select(audit_log.c.action, func.count()).group_by(audit_log.c.action)
                )
            ).all()
        assert dict((a, n) for a, n in actions) == {
            "user.create": 1,
            "contact.create": 4,  # Old Timer + 3 imported
            "contact.merge": 2,
            "company.create": 1,
        }


async def test_comma_file_with_bom_and_cp1251(tmp_path: Path) -> None:
    async with migrated_engine(tmp_path) as engine:
        bom = _write(tmp_path / "bom.csv", "\ufeffName,Phone\nAnn,+7 916 000 00 01\n")
        report = await import_contacts(engine, bom)
        assert (report.imported, report.skipped) == (1, [])
        win = _write(tmp_path / "win.csv", "Имя;Телефон\nБорис;89160000002\n", "cp1251")
        report = await import_contacts(engine, win)
        assert (report.imported, report.skipped) == (1, [])
        async with engine.connect() as conn:
            names = {c.name for c in (await crm.list_contacts(conn)).items}
        assert names == {"Ann", "Борис"}


async def test_unusable_files(tmp_path: Path) -> None:
    async with migrated_engine(tmp_path) as engine:
        with pytest.raises(ValidationError, match="empty"):
            await import_contacts(engine, _write(tmp_path / "empty.csv", "\n\n"))
        with pytest.raises(ValidationError, match="not a text"):
            await import_contacts(engine, _write(tmp_path / "bin.csv", "a\x00b"))
        with pytest.raises(ValidationError, match="cannot read"):
            await import_contacts(engine, tmp_path / "missing.csv")
        with pytest.raises(ValidationError, match="no column holds"):
            await import_contacts(engine, _write(tmp_path / "x.csv", "foo,bar\n1,2\n"))


async def test_export_then_import_round_trip(tmp_path: Path) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            await users.create_user(conn, {"login": "anna"})
            co = await crm.create_company(conn, {"name": "Acme, Inc."})
            await crm.create_contact(
                conn,
                {
                    "name": 'Quote "Q" Person',
                    "phones": ["+7 916 123-45-67", "101"],
                    "emails": ["q@x.io"],
                    "tags": ["a", "b"],
                    "notes": "line 1\nline 2",
                    "company_id": co.id,
                    "responsible_user_id": 1,
                },
            )
            await crm.create_contact(conn, {"name": "Bare"})
            out = tmp_path / "out.csv"
            assert await export_contacts(conn, out) == 2
        with open(out, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        assert rows[0] == ["name", "phones", "emails", "company", "responsible", "tags", "notes"]
        assert rows[1] == [
            'Quote "Q" Person',
            "+7 916 123-45-67; 101",
            "q@x.io",
            "Acme, Inc.",
            "anna",
            "a; b",
            "line 1\nline 2",
        ]
    async with migrated_engine(tmp_path, "fresh.db") as engine:
        async with engine.begin() as conn:
            await users.create_user(conn, {"login": "anna"})
        report = await import_contacts(engine, out)
        assert (report.imported, report.merged, report.skipped) == (2, 0, [])
        async with engine.connect() as conn:
            again = tmp_path / "again.csv"
            await export_contacts(conn, again)
        assert again.read_text(encoding="utf-8") == out.read_text(encoding="utf-8")


async def test_hundred_thousand_rows(tmp_path: Path) -> None:
    """A 100,000-row file: every 10th row repeats an earlier number, every 1000th is bad."""
    path = tmp_path / "big.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "phone", "email", "company", "tags"])
        for i in range(100_000):
            if i % 1000 == 999:
                w.writerow(["", f"+7 916 {i:07d}", "", "", ""])  # no name: skipped
            elif i % 10 == 5:
                w.writerow([f"Dup {i}", f"8 916 {i - 5:07d}", f"d{i}@x.io", "", "dup"])
            else:
                w.writerow([f"Person {i}", f"+7 916 {i:07d}", f"p{i}@x.io", f"Co {i % 20}", "t"])
    progress: list[tuple[int, int]] = []
    async with migrated_engine(tmp_path) as engine:
        report = await import_contacts(
            engine, path, progress=lambda done, total: progress.append((done, total))
        )
        assert report.rows == 100_000
        assert len(report.skipped) == 100
        assert report.skipped[0].line == 1001  # header is line 1, row i is line i + 2
        assert report.merged == 10_000
        assert report.imported == 100_000 - 100 - 10_000
        assert report.companies_created == 18  # Co 5 and Co 15 fall on duplicate rows
        async with engine.connect() as conn:
            n_contacts = (await conn.execute(select(func.count()).select_from(contacts))).scalar()
            n_phones = (await conn.execute(select(func.count()).select_from(phones))).scalar()
            n_companies = (await conn.execute(select(func.count()).select_from(companies))).scalar()
            merged = await crm.list_contacts(conn, phone="+7 916 0000000")
        assert n_contacts == report.imported
        assert n_phones == report.imported  # duplicates brought no new number
        assert n_companies == 18
        assert merged.total == 1
        assert merged.items[0].emails == ("p0@x.io", "d5@x.io")
        assert merged.items[0].tags == ("t", "dup")
    assert progress[-1][0] == progress[-1][1] == path.stat().st_size
    assert len(progress) >= 50
    assert [p[0] for p in progress] == sorted(p[0] for p in progress)
