"""``connector contacts import|export``: contacts from and to CSV files."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.cli_store import fail, run_with_engine, settings_of, stdout
from crm_sync.errors import CrmError, ValidationError

__all__ = ["SHOWN_ERRORS", "add_parser", "parse_map"]

#: How many skipped rows the summary lists (all are counted).
SHOWN_ERRORS = 50


def parse_map(items: list[str] | None) -> dict[str, str]:
    """``["Mobile=phone", "Fax=ignore"]`` -> ``{"Mobile": "phone", "Fax": "ignore"}``."""
    mapping: dict[str, str] = {}
    for item in items or []:
        column, sep, field = item.rpartition("=")
        if not sep or not column.strip() or not field.strip():
            raise ValidationError("map", f"--map must look like COLUMN=FIELD, got {item!r}")
        mapping[column.strip()] = field.strip()
    return mapping


def _cmd_import(args: argparse.Namespace) -> int:
    from crm_sync.csv_io import import_contacts

    settings = settings_of(args)
    region = (args.region or settings.storage.default_region).upper()
    out = stdout()
    try:
        mapping = parse_map(args.map)
    except CrmError as exc:
        return fail(exc)
    path: Path = args.file
    progress = Progress(
        TextColumn("[bold]importing[/bold] {task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=out,
        transient=True,
    )

    async def work(engine: AsyncEngine) -> Any:
        with progress:
            task = progress.add_task(path.name, total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            return await import_contacts(
                engine,
                path,
                mapping=mapping,
                region=region,
                batch_size=args.batch_size,
                progress=advance,
            )

    try:
        report = run_with_engine(settings, work)
    except CrmError as exc:
        return fail(exc)
    columns = ", ".join(f"{h} -> {f}" for h, f in report.columns.items())
    out.print(f"Columns: {columns}")
    out.print(
        f"{report.rows} rows: [green]{report.imported} imported[/green], "
        f"{report.merged} merged into existing contacts, "
        f"[{'red' if report.skipped else 'green'}]{len(report.skipped)} skipped[/]"
        + (f"; {report.companies_created} companies created" if report.companies_created else "")
    )
    for err in report.skipped[:SHOWN_ERRORS]:
        out.print(f"  line {err.line}: {err.reason}")
    if len(report.skipped) > SHOWN_ERRORS:
        out.print(f"  ... and {len(report.skipped) - SHOWN_ERRORS} more")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from crm_sync.csv_io import export_contacts

    path: Path = args.file
    if path.exists() and not args.overwrite:
        return fail(ValidationError("file", f"{path} exists; use --overwrite to replace it"))

    async def work(engine: AsyncEngine) -> int:
        async with engine.connect() as conn:
            return await export_contacts(conn, path)

    try:
        count = run_with_engine(settings_of(args), work)
    except CrmError as exc:
        return fail(exc)
    except OSError as exc:
        return fail(ValidationError("file", f"cannot write {path}: {exc.strerror or exc}"))
    stdout().print(f"Exported {count} contacts to [bold]{path}[/bold].")
    return 0


def add_parser(subparsers: Any) -> None:
    """Register ``connector contacts``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "contacts",
        help="import contacts from CSV, export them to CSV",
        description="Move contacts in and out of CSV files.",
    )
    sub = p.add_subparsers(dest="contacts_command", metavar="ACTION")
    sub.required = True
    imp = sub.add_parser(
        "import",
        help="import contacts from a CSV file",
        description=(
            "Import contacts from a CSV file with a header row (delimiter , ; or tab; UTF-8 or "
            "Windows-1251). Columns are recognised by their header in English or Russian: "
            "name/ФИО/Имя, phone/Телефон (several phone columns, or several numbers in one "
            "cell separated by ; or ,), email/Почта, company/Компания, responsible/"
            "Ответственный (a user login), tags/Теги, notes/Комментарий. Bad rows are skipped "
            "and listed with their line numbers; a row whose phone number belongs to an "
            "existing contact is merged into it."
        ),
    )
    imp.add_argument("file", type=Path, metavar="FILE.csv", help="the CSV file to import")
    imp.add_argument(
        "--map",
        action="append",
        metavar="COLUMN=FIELD",
        help="use column COLUMN as FIELD (name, phone, email, company, responsible, tags, "
        "notes, or ignore); repeat for several",
    )
    imp.add_argument(
        "--region",
        default=None,
        metavar="CC",
        help="country of numbers without a country code (default: [storage] default_region)",
    )
    imp.add_argument(
        "--batch-size",
        type=int,
        default=1000,
        metavar="N",
        help="rows per transaction (default 1000)",
    )
    imp.set_defaults(func=_cmd_import)
    exp = sub.add_parser(
        "export",
        help="export every contact to a CSV file",
        description="Write every contact to a CSV file with a header row (name, phones, "
        "emails, company, responsible, tags, notes); it can be imported back as is.",
    )
    exp.add_argument("file", type=Path, metavar="FILE.csv", help="the CSV file to write")
    exp.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    exp.set_defaults(func=_cmd_export)
