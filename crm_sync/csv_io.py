"""Contacts in and out of CSV files.

Import reads a file with a header row. Columns are recognised by their header in English or
Russian (``name``/``ФИО``/``Имя``, ``phone``/``телефон`` - several phone columns allowed, and
one cell may hold several numbers separated by ``;`` or ``,`` -, ``email``/``почта``,
``company``/``компания``, ``responsible``/``ответственный`` (a user login), ``tags``/``теги``,
``notes``/``комментарий``); ``mapping`` overrides (``{"Mobile #": "phone", "Fax": "ignore"}``).
The delimiter (``,``, ``;`` or tab) is detected; a UTF-8 BOM is accepted.

A bad row is skipped and reported with its line number and reason; good rows are kept. A row
whose phone (E.164, else national number) belongs to an existing contact - in the database or
earlier in the file - is merged into that contact (phones, e-mails and tags unioned, notes
appended). Rows are written in batches, one transaction each, so a long import never holds the
database for long and a crash keeps the batches already written.

Export writes a header row and one row per contact; multi-valued cells are ``;`` separated,
so an exported file imports back unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = [
    "FIELDS",
    "HEADER_ALIASES",
    "EXPORT_HEADER",
    "ImportReport",
    "RowError",
    "detect_mapping",
    "export_contacts",
    "import_contacts",
]

#: Fields a column can map to; ``ignore`` drops the column.
FIELDS = ("name", "phone", "email", "company", "responsible", "tags", "notes", "ignore")

#: Header spellings (lower case, spaces collapsed) recognised without a mapping.
HEADER_ALIASES: dict[str, str] = {}

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


def detect_mapping(header: list[str], overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Map each header cell to a field (see :data:`FIELDS`); unknown headers map to ``ignore``.

    Raises ValidationError when an override names a column that is not in the header or a field
    that does not exist, or when no column maps to ``name`` or ``phone``.
    """
    raise NotImplementedError


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
    raise NotImplementedError


async def export_contacts(conn: AsyncConnection, path: Path) -> int:
    """Write every contact to ``path`` as CSV with :data:`EXPORT_HEADER`; returns the count."""
    raise NotImplementedError
