"""Contacts in and out of CSV files.

Import reads a file with a header row. Columns are recognised by their header in English or
Russian (``name``/``ФИО``/``Имя``, ``phone``/``телефон`` - several phone columns allowed, and
one cell may hold several numbers separated by ``;`` or ``,`` -, ``email``/``почта``,
``company``/``компания``, ``responsible``/``ответственный`` (a user login), ``tags``/``теги``,
``notes``/``комментарий``); ``mapping`` overrides (``{"Mobile #": "phone", "Fax": "ignore"}``).
A bad row is skipped and reported with its line number and reason; good rows are kept. A row
whose phone (E.164, else national number) belongs to an existing contact - in the database or
earlier in the file - is merged into that contact (phones, e-mails and tags unioned, notes
appended, a missing company or responsible user filled in; the name is kept). Rows are written
in batches, one transaction each, so a long import never holds the database for long and a
crash keeps the batches already written. The delimiter is ``,``, ``;`` or tab; the encoding
UTF-8 (with or without BOM) or Windows-1251.

Export writes a header row and one row per contact; multi-valued cells are ``;`` separated,
so an exported file imports back unchanged.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crm_sync.contacts import phone_key
from crm_sync.errors import ValidationError
from crm_sync.fields import EMAIL_RE, utc_now
from crm_sync.phones import NormalizedPhone, normalize
from crm_sync.schema import audit_log, companies, contacts, phones, users

logger = logging.getLogger(__name__)

__all__ = [
    "FIELDS",
    "HEADER_ALIASES",
    "EXPORT_HEADER",
    "ImportReport",
    "ParsedRow",
    "RowError",
    "detect_mapping",
    "export_contacts",
    "import_contacts",
    "parse_row",
]

#: Fields a column can map to; ``ignore`` drops the column.
FIELDS = ("name", "phone", "email", "company", "responsible", "tags", "notes", "ignore")

#: Header spellings (lower case, spaces collapsed, ё as е) recognised without a mapping.
HEADER_ALIASES: dict[str, str] = {
    alias: name
    for name, aliases in {
        "name": (
            "name",
            "full name",
            "fullname",
            "contact",
            "contact name",
            "person",
            "client",
            "customer",
            "фио",
            "имя",
            "ф.и.о.",
            "полное имя",
            "контакт",
            "клиент",
            "имя контакта",
            "фамилия имя отчество",
        ),
        "phone": (
            "phone",
            "phones",
            "phone number",
            "phone numbers",
            "telephone",
            "tel",
            "tel.",
            "mobile",
            "mobile phone",
            "cell",
            "work phone",
            "home phone",
            "телефон",
            "телефоны",
            "тел",
            "тел.",
            "мобильный",
            "мобильный телефон",
            "моб. телефон",
            "рабочий телефон",
            "домашний телефон",
            "номер",
            "номер телефона",
            "сотовый",
        ),
        "email": (
            "email",
            "e-mail",
            "emails",
            "e-mails",
            "mail",
            "email address",
            "почта",
            "эл. почта",
            "эл.почта",
            "электронная почта",
            "емейл",
            "емэйл",
            "имейл",
        ),
        "company": (
            "company",
            "company name",
            "organization",
            "organisation",
            "account",
            "компания",
            "организация",
            "фирма",
            "название компании",
            "контрагент",
        ),
        "responsible": (
            "responsible",
            "responsible user",
            "owner",
            "manager",
            "assigned to",
            "agent",
            "ответственный",
            "менеджер",
            "ответственный менеджер",
            "владелец",
        ),
        "tags": ("tags", "tag", "labels", "label", "теги", "тег", "метки", "метка"),
        "notes": (
            "notes",
            "note",
            "comment",
            "comments",
            "description",
            "заметки",
            "заметка",
            "примечание",
            "примечания",
            "комментарий",
            "комментарии",
            "описание",
        ),
    }.items()
    for alias in aliases
}

EXPORT_HEADER = ("name", "phones", "emails", "company", "responsible", "tags", "notes")

ProgressCallback = Callable[[int, int], None]  # (bytes read so far, total bytes)


@dataclass(frozen=True, slots=True)
class RowError:
    """A skipped row: its line number in the file (the header is line 1) and why."""

    line: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"line": self.line, "reason": self.reason}


@dataclass
class ImportReport:
    """What an import did."""

    rows: int = 0  # data rows read
    imported: int = 0  # new contacts created
    merged: int = 0  # rows merged into an existing contact
    skipped: list[RowError] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)  # header -> field used
    companies_created: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "rows": self.rows,
            "imported": self.imported,
            "merged": self.merged,
            "skipped": [e.to_dict() for e in self.skipped],
            "columns": dict(self.columns),
            "companies_created": self.companies_created,
        }


def _norm_header(cell: str) -> str:
    text = cell.replace("\ufeff", "").strip().lower().replace("ё", "е").replace("_", " ")
    return re.sub(r"\s+", " ", text).rstrip(":").strip()


def _fields_of(header: Sequence[str], overrides: Mapping[str, str] | None) -> list[str]:
    """The field of each column, by position (duplicate header cells are allowed)."""
    fields = [HEADER_ALIASES.get(_norm_header(cell), "ignore") for cell in header]
    for column, target in (overrides or {}).items():
        target_norm = target.strip().lower()
        if target_norm not in FIELDS:
            raise ValidationError(
                "map", f"--map {column}={target}: {target!r} is not one of {', '.join(FIELDS)}"
            )
        hits = [i for i, cell in enumerate(header) if cell.strip() == column.strip()]
        if not hits:
            hits = [
                i for i, cell in enumerate(header) if _norm_header(cell) == _norm_header(column)
            ]
        if not hits:
            raise ValidationError(
                "map",
                f"--map {column}={target}: there is no column {column!r}; the header has "
                + ", ".join(repr(c) for c in header),
            )
        for i in hits:
            fields[i] = target_norm
    if "name" not in fields and "phone" not in fields:
        raise ValidationError(
            "map",
            "no column holds a name or a phone; the header has "
            + ", ".join(repr(c) for c in header)
            + " (use --map COLUMN=name / COLUMN=phone)",
        )
    return fields


def detect_mapping(header: list[str], overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Map each header cell to a field (see :data:`FIELDS`); unknown headers map to ``ignore``.

    Raises ValidationError when an override names a column that is not in the header or a field
    that does not exist, or when no column maps to ``name`` or ``phone``.
    """
    fields = _fields_of(header, overrides)
    return {cell: f for cell, f in zip(header, fields, strict=True)}


@dataclass
class ParsedRow:
    """One good data row, checked and normalised."""

    line: int
    name: str
    phones: list[NormalizedPhone]
    emails: list[str]
    tags: list[str]
    company: str
    responsible: str
    notes: str

    def keys(self) -> list[str]:
        return [phone_key(p.e164, p.national) for p in self.phones]

    def absorb(self, other: ParsedRow) -> None:
        """Union ``other`` (a later duplicate) into this row."""
        have = set(self.keys())
        for p in other.phones:
            k = phone_key(p.e164, p.national)
            if k not in have:
                have.add(k)
                self.phones.append(p)
        self.emails.extend(e for e in other.emails if e not in self.emails)
        self.tags.extend(t for t in other.tags if t not in self.tags)
        self.company = self.company or other.company
        self.responsible = self.responsible or other.responsible
        if other.notes and other.notes not in self.notes:
            self.notes = f"{self.notes}\n{other.notes}".strip()


_SPLIT_PHONES = re.compile(r"[;,\n]+")
_SPLIT_EMAILS = re.compile(r"[;,\s]+")
_SPLIT_TAGS = re.compile(r"[;,\n]+")


def parse_row(
    cells: Sequence[str], fields: Sequence[str], line: int, region: str
) -> ParsedRow | RowError | None:
    """Check one data row: a good row, the reason it is bad, or None for a blank line (pure)."""
    if not any(c.strip() for c in cells):
        return None
    if len(cells) > len(fields) and any(c.strip() for c in cells[len(fields) :]):
        return RowError(
            line,
            f"{len(cells)} cells but the header has {len(fields)} columns "
            "(an unquoted delimiter inside a value?)",
        )
    if any("\ufffd" in c for c in cells):
        return RowError(line, "not valid UTF-8 text")
    names: list[str] = []
    raw_phones: list[str] = []
    emails: list[str] = []
    tags: list[str] = []
    company = responsible = ""
    notes: list[str] = []
    for cell, fld in zip(cells, fields, strict=False):
        value = cell.strip()
        if not value or fld == "ignore":
            continue
        if fld == "name":
            names.append(value)
        elif fld == "phone":
            raw_phones.extend(p.strip() for p in _SPLIT_PHONES.split(value) if p.strip())
        elif fld == "email":
            emails.extend(e for e in _SPLIT_EMAILS.split(value) if e and e not in emails)
        elif fld == "tags":
            tags.extend(t.strip() for t in _SPLIT_TAGS.split(value) if t.strip())
        elif fld == "company":
            company = company or value
        elif fld == "responsible":
            responsible = responsible or value
        elif fld == "notes":
            notes.append(value)
    name = re.sub(r"\s+", " ", " ".join(names)).strip()
    if not name:
        return RowError(line, "the name is empty")
    if len(name) > 300:
        return RowError(line, f"the name is longer than 300 characters ({len(name)})")
    if any(ord(ch) < 32 for ch in name):
        return RowError(line, "the name contains control characters")
    parsed: list[NormalizedPhone] = []
    seen: set[str] = set()
    for raw in raw_phones:
        if len(raw) > 64:
            return RowError(line, f"phone {raw[:20]!r}... is longer than 64 characters")
        phone = normalize(raw, region)
        if len(phone.national) < 2:
            return RowError(line, f"phone {raw!r} is not a phone number")
        k = phone_key(phone.e164, phone.national)
        if k not in seen:
            seen.add(k)
            parsed.append(phone)
    if len(parsed) > 50:
        return RowError(line, f"{len(parsed)} phone numbers; at most 50 per contact")
    for e in emails:
        if len(e) > 254 or not EMAIL_RE.fullmatch(e):
            return RowError(line, f"e-mail {e[:60]!r} is not an e-mail address")
    unique_tags: list[str] = []
    for t in tags:
        if len(t) > 100:
            return RowError(line, f"tag {t[:20]!r}... is longer than 100 characters")
        if t not in unique_tags:
            unique_tags.append(t)
    if len(company) > 300:
        return RowError(line, "the company name is longer than 300 characters")
    note_text = "\n".join(notes)
    if len(note_text) > 20_000:
        return RowError(line, "the notes are longer than 20000 characters")
    return ParsedRow(
        line=line,
        name=name,
        phones=parsed,
        emails=emails,
        tags=unique_tags,
        company=company,
        responsible=responsible,
        notes=note_text,
    )


def _sniff_encoding(sample: bytes) -> str:
    try:
        sample.decode("utf-8")
        return "utf-8-sig"
    except UnicodeDecodeError as exc:
        # a multi-byte character cut at the end of the sample is still UTF-8
        if exc.start >= len(sample) - 3:
            return "utf-8-sig"
    try:
        sample.decode("cp1251")
        return "cp1251"
    except UnicodeDecodeError:
        return "utf-8-sig"


def _sniff_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class _Importer:
    """The state of one import across batches: caches of users, companies and known phones."""

    def __init__(self, region: str, user_id: int | None, report: ImportReport) -> None:
        self.region = region
        self.user_id = user_id
        self.report = report
        self.logins: dict[str, int | None] = {}
        self.company_ids: dict[str, int] = {}
        self.known: dict[str, int] = {}  # phone key -> contact id
        self.looked_up: set[str] = set()

    async def _resolve_logins(self, conn: AsyncConnection, rows: list[ParsedRow]) -> None:
        todo = sorted({r.responsible for r in rows if r.responsible} - set(self.logins))
        for chunk in _chunks(todo):
            for row in await conn.execute(
                select(users.c.id, users.c.login).where(users.c.login.in_(list(chunk)))
            ):
                self.logins[row.login] = int(row.id)
        for login in todo:
            self.logins.setdefault(login, None)

    async def _resolve_companies(
        self, conn: AsyncConnection, rows: list[ParsedRow], now: datetime
    ) -> None:
        todo = sorted({r.company for r in rows if r.company} - set(self.company_ids))
        for chunk in _chunks(todo):
            for row in await conn.execute(
                select(companies.c.id, companies.c.name)
                .where(companies.c.name.in_(list(chunk)))
                .order_by(companies.c.id.desc())
            ):
                self.company_ids[row.name] = int(row.id)  # the oldest wins (last assigned)
        for name in todo:
            if name in self.company_ids:
                continue
            result = await conn.execute(
                companies.insert()
                .values(name=name, emails=[], tags=[], notes="", created_at=now, updated_at=now)
                .returning(companies.c.id)
            )
            cid = int(result.scalar_one())
            self.company_ids[name] = cid
            self.report.companies_created += 1
            await conn.execute(
                audit_log.insert().values(
                    at=now,
                    user_id=self.user_id,
                    action="company.create",
                    entity="company",
                    entity_id=str(cid),
                    details={"name": name, "source": "import"},
                )
            )

    async def _resolve_phones(self, conn: AsyncConnection, rows: list[ParsedRow]) -> None:
        keys = {k for r in rows for k in r.keys()} - self.looked_up - set(self.known)
        self.looked_up.update(keys)
        e164s = sorted(k for k in keys if k.startswith("+"))
        nationals = sorted(k[1:] for k in keys if k.startswith("n"))
        for chunk in _chunks(e164s):
            for row in await conn.execute(
                select(phones.c.e164, phones.c.contact_id)
                .where(phones.c.e164.in_(list(chunk)), phones.c.contact_id.is_not(None))
                .order_by(phones.c.contact_id.desc())
            ):
                self.known[row.e164] = int(row.contact_id)
        for chunk in _chunks(nationals):
            for row in await conn.execute(
                select(phones.c.national, phones.c.contact_id)
                .where(
                    and_(
                        phones.c.national.in_(list(chunk)),
                        phones.c.e164.is_(None),
                        phones.c.contact_id.is_not(None),
                    )
                )
                .order_by(phones.c.contact_id.desc())
            ):
                self.known["n" + row.national] = int(row.contact_id)

    async def write_batch(self, conn: AsyncConnection, rows: list[ParsedRow]) -> None:
        """Write one batch of good rows in the caller's transaction."""
        now = utc_now()
        await self._resolve_logins(conn, rows)
        good: list[ParsedRow] = []
        for row in rows:
            if row.responsible and self.logins.get(row.responsible) is None:
                self.report.skipped.append(
                    RowError(row.line, f"responsible user {row.responsible!r} does not exist")
                )
            else:
                good.append(row)
        await self._resolve_companies(conn, good, now)
        await self._resolve_phones(conn, good)

        new: list[ParsedRow] = []
        pending: dict[str, int] = {}  # phone key -> index in new
        merges: dict[int, ParsedRow] = {}  # existing contact id -> the union of rows merged into it
        for row in good:
            keys = row.keys()
            existing = next((self.known[k] for k in keys if k in self.known), None)
            if existing is not None:
                if existing in merges:
                    merges[existing].absorb(row)
                else:
                    merges[existing] = row
                for k in keys:  # its other numbers now lead to the same contact
                    self.known.setdefault(k, existing)
                self.report.merged += 1
                continue
            idx = next((pending[k] for k in keys if k in pending), None)
            if idx is not None:
                new[idx].absorb(row)
                for k in row.keys():
                    pending.setdefault(k, idx)
                self.report.merged += 1
                continue
            for k in keys:
                pending[k] = len(new)
            new.append(row)

        if new:
            result = await conn.execute(
                contacts.insert().returning(contacts.c.id),
                [
                    {
                        "name": r.name,
                        "company_id": self.company_ids.get(r.company) if r.company else None,
                        "responsible_user_id": self.logins.get(r.responsible)
                        if r.responsible
                        else None,
                        "emails": r.emails,
                        "tags": r.tags,
                        "notes": r.notes,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for r in new
                ],
            )
            # One multi-row INSERT hands out ascending ids in the order of its VALUES rows
            # (SQLite rowids, PostgreSQL sequences), so sorted ids line up with ``new``.
            # sort_by_parameter_order=True would make SQLAlchemy insert row by row on SQLite.
            ids = sorted(int(x) for x in result.scalars().all())
            if len(ids) != len(new):
                raise RuntimeError(f"inserted {len(new)} contacts but got {len(ids)} ids back")
            phone_rows: list[dict[str, Any]] = []
            for cid, r in zip(ids, new, strict=True):
                for p in r.phones:
                    self.known.setdefault(phone_key(p.e164, p.national), cid)
                    phone_rows.append(_phone_row(p, cid))
            if phone_rows:
                await conn.execute(phones.insert(), phone_rows)
            await conn.execute(
                audit_log.insert(),
                [
                    {
                        "at": now,
                        "user_id": self.user_id,
                        "action": "contact.create",
                        "entity": "contact",
                        "entity_id": str(cid),
                        "details": {"source": "import", "line": r.line},
                    }
                    for cid, r in zip(ids, new, strict=True)
                ],
            )
            self.report.imported += len(new)
        if merges:
            await self._merge(conn, merges, now)

    async def _merge(
        self, conn: AsyncConnection, merges: dict[int, ParsedRow], now: datetime
    ) -> None:
        ids = sorted(merges)
        current = {
            int(r.id): r
            for r in await conn.execute(
                select(
                    contacts.c.id,
                    contacts.c.emails,
                    contacts.c.tags,
                    contacts.c.notes,
                    contacts.c.company_id,
                    contacts.c.responsible_user_id,
                ).where(contacts.c.id.in_(ids))
            )
        }
        have: dict[int, set[str]] = {i: set() for i in ids}
        for r in await conn.execute(
            select(phones.c.contact_id, phones.c.e164, phones.c.national).where(
                phones.c.contact_id.in_(ids)
            )
        ):
            have[int(r.contact_id)].add(phone_key(r.e164, r.national))
        phone_rows: list[dict[str, Any]] = []
        audit_rows: list[dict[str, Any]] = []
        for cid in ids:
            row = merges[cid]
            old = current.get(cid)
            if old is None:  # deleted meanwhile: nothing to merge into
                continue
            values: dict[str, Any] = {}
            emails = list(old.emails or [])
            emails += [e for e in row.emails if e not in emails]
            if emails != list(old.emails or []):
                values["emails"] = emails
            tags = list(old.tags or [])
            tags += [t for t in row.tags if t not in tags]
            if tags != list(old.tags or []):
                values["tags"] = tags
            if row.notes and row.notes not in (old.notes or ""):
                values["notes"] = f"{old.notes or ''}\n{row.notes}".strip()
            # a company or responsible user the contact lacks is filled in, never replaced
            if old.company_id is None and row.company:
                values["company_id"] = self.company_ids.get(row.company)
            if old.responsible_user_id is None and row.responsible:
                values["responsible_user_id"] = self.logins.get(row.responsible)
            added = []
            for p in row.phones:
                k = phone_key(p.e164, p.national)
                if k not in have[cid]:
                    have[cid].add(k)
                    self.known.setdefault(k, cid)
                    phone_rows.append(_phone_row(p, cid))
                    added.append(p.raw)
            if values:
                await conn.execute(
                    update(contacts).where(contacts.c.id == cid).values(**values, updated_at=now)
                )
            if values or added:
                details: dict[str, Any] = {"source": "import", "line": row.line}
                details.update({k: v for k, v in values.items() if k != "notes"})
                if added:
                    details["phones_added"] = added
                audit_rows.append(
                    {
                        "at": now,
                        "user_id": self.user_id,
                        "action": "contact.merge",
                        "entity": "contact",
                        "entity_id": str(cid),
                        "details": details,
                    }
                )
        if phone_rows:
            await conn.execute(phones.insert(), phone_rows)
        if audit_rows:
            await conn.execute(audit_log.insert(), audit_rows)


def _phone_row(p: NormalizedPhone, contact_id: int) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "company_id": None,
        "raw": p.raw,
        "e164": p.e164,
        "national": p.national,
        "national_rev": p.national_rev,
        "label": "",
    }


async def import_contacts(
    engine: AsyncEngine,
    path: Path,
    *,
    mapping: Mapping[str, str] | None = None,
    region: str = "RU",
    user_id: int | None = None,
    batch_size: int = 1000,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Import contacts from the CSV file at ``path`` (see the module docstring).

    Commits one transaction per ``batch_size`` rows; ``progress(done, total)`` is called after
    each batch with bytes read and the file size. Raises ValidationError for an unusable file
    (no header, unknown mapping, not text) before anything is written.
    """
    path = Path(path)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError(
            "batch_size", f"batch_size must be a positive integer, got {batch_size!r}"
        )
    try:
        total = path.stat().st_size
        binary = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ValidationError("file", f"cannot read {path}: {exc.strerror or exc}") from None
    with binary:
        sample = binary.read(65536)
        if b"\x00" in sample:
            raise ValidationError("file", f"{path} is not a text (CSV) file")
        binary.seek(0)
        encoding = _sniff_encoding(sample)
        text = io.TextIOWrapper(binary, encoding=encoding, errors="replace", newline="")
        first_line = sample.decode(encoding, errors="replace").lstrip("\ufeff").split("\n", 1)[0]
        reader = csv.reader(text, delimiter=_sniff_delimiter(first_line))
        report = ImportReport()
        header: list[str] | None = None
        fields: list[str] = []
        importer = _Importer(region, user_id, report)
        batch: list[ParsedRow] = []
        last_line = 0
        try:
            for cells in reader:
                start_line = last_line + 1
                last_line = reader.line_num
                if header is None:
                    if not any(c.strip() for c in cells):
                        continue
                    header = [c.replace("\ufeff", "").strip() for c in cells]
                    fields = _fields_of(header, mapping)
                    report.columns = {
                        h: f for h, f in zip(header, fields, strict=True) if f != "ignore"
                    }
                    continue
                parsed = parse_row(cells, fields, start_line, region)
                if parsed is None:
                    continue
                report.rows += 1
                if isinstance(parsed, RowError):
                    report.skipped.append(parsed)
                    continue
                batch.append(parsed)
                if len(batch) >= batch_size:
                    async with engine.begin() as conn:
                        await importer.write_batch(conn, batch)
                    batch = []
                    if progress is not None:
                        progress(binary.tell(), total)
        except csv.Error as exc:
            report.skipped.append(RowError(reader.line_num, f"unreadable CSV: {exc}"))
            logger.warning("CSV import of %s stopped at line %d: %s", path, reader.line_num, exc)
        if header is None:
            raise ValidationError("file", f"{path} is empty: a header row is needed")
        if batch:
            async with engine.begin() as conn:
                await importer.write_batch(conn, batch)
        if progress is not None:
            progress(total, total)
    report.skipped.sort(key=lambda e: e.line)
    logger.info(
        "imported %s: %d rows, %d new, %d merged, %d skipped",
        path,
        report.rows,
        report.imported,
        report.merged,
        len(report.skipped),
    )
    return report


async def export_contacts(conn: AsyncConnection, path: Path) -> int:
    """Write every contact to ``path`` as CSV with :data:`EXPORT_HEADER`; returns the count."""
    count = 0
    last_id = 0
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(EXPORT_HEADER)
        while True:
            rows = (
                await conn.execute(
                    select(
                        contacts.c.id,
                        contacts.c.name,
                        contacts.c.emails,
                        contacts.c.tags,
                        contacts.c.notes,
                        companies.c.name.label("company_name"),
                        users.c.login.label("responsible_login"),
                    )
                    .select_from(
                        contacts.outerjoin(
                            companies, contacts.c.company_id == companies.c.id
                        ).outerjoin(users, contacts.c.responsible_user_id == users.c.id)
                    )
                    .where(contacts.c.id > last_id)
                    .order_by(contacts.c.id)
                    .limit(1000)
                )
            ).all()
            if not rows:
                break
            ids = [int(r.id) for r in rows]
            numbers: dict[int, list[str]] = {i: [] for i in ids}
            for p in await conn.execute(
                select(phones.c.contact_id, phones.c.raw)
                .where(phones.c.contact_id.in_(ids))
                .order_by(phones.c.id)
            ):
                numbers[int(p.contact_id)].append(p.raw)
            for r in rows:
                writer.writerow(
                    [
                        r.name,
                        "; ".join(numbers[int(r.id)]),
                        "; ".join(r.emails or []),
                        r.company_name or "",
                        r.responsible_login or "",
                        "; ".join(r.tags or []),
                        r.notes or "",
                    ]
                )
            count += len(rows)
            last_id = ids[-1]
    return count
