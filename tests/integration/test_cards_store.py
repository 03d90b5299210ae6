"""Caller cards built from a real SQLite store: open callback tasks follow the number's key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from crm_sync.cards import build_card
from crm_sync.tasks import create_task
from tests.integration.store_support import migrated_engine

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


async def test_short_number_card_shows_its_open_callback_task(tmp_path: Path) -> None:
    async with migrated_engine(tmp_path) as engine:
        async with engine.begin() as conn:
            await create_task(
                conn,
                {"title": "Call back 06-11", "kind": "callback", "number_e164": "0611"},
                now=NOW,
            )
            await create_task(
                conn,
                {"title": "Call back Ivan", "kind": "callback", "number_e164": "+79161234567"},
                now=NOW,
            )
        async with engine.connect() as conn:
            short = await build_card(conn, "*06-11", "RU", now=NOW)
            full = await build_card(conn, "8 (916) 123-45-67", "RU", now=NOW)
        assert [t["title"] for t in short["open_tasks"]] == ["Call back 06-11"]
        assert [t["title"] for t in full["open_tasks"]] == ["Call back Ivan"]
