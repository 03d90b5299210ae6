"""The supervisor console in headless Chromium: filter the log, play a recording, export CSV."""

from __future__ import annotations

import csv
import io
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright, expect
from sqlalchemy import select

from crm_sync.contacts import create_contact
from crm_sync.schema import audit_log
from tests.integration.calllog_support import (
    SCENARIOS,
    WAVS,
    add_agents,
    add_user,
    open_runtime,
    replay_into,
    spool_pipeline,
    web_client,
    writer_running,
)

pytestmark = pytest.mark.browser

ALL = SCENARIOS
START = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
SECTIONS: dict[str, Any] = {"pbx": [{"name": "pbx1", "recordings_dir": "spool"}]}
RECORDED = {
    "inbound_answered": "in-20261128-212111-1795900871.1.wav",
    "click_to_call": "out-20261128-212202-1795900920.16.wav",
    "transfer": "in-20261128-212221-1795900941.27.wav",
}


async def test_supervisor_filters_plays_and_exports(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, **SECTIONS) as runtime:
        await add_agents(runtime)
        boss, boss_token = await add_user(runtime, "boss", "supervisor", "sales")
        async with runtime.engine.begin() as conn:
            await create_contact(conn, {"name": "Ivan Petrov", "phones": ["+79161234567"]})
        async with writer_running(runtime) as writer:
            ended = await replay_into(runtime, writer, ALL, START)
        spool = tmp_path / "spool"
        spool.mkdir()
        pipe = spool_pipeline(runtime, spool)
        for name, event in zip(ALL, ended, strict=True):
            if name in RECORDED:
                shutil.copy(WAVS / RECORDED[name], spool)
                await pipe.collect_call(event)

        async with web_client(runtime) as client, async_playwright() as pw:
            base = str(client.make_url("/")).rstrip("/")
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium")
            try:
                context = await browser.new_context(accept_downloads=True)
                await context.add_cookies([{"name": "vc_token", "value": boss_token, "url": base}])
                page = await context.new_page()
                problems: list[str] = []
                page.on("pageerror", lambda exc: problems.append(str(exc)))
                page.on(
                    "console",
                    lambda msg: problems.append(msg.text) if msg.type == "error" else None,
                )
                await page.goto(base + "/supervisor")
                await page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
                # the sales team's 7 calls (the queue call belongs to support)
                await expect(page.locator("#log tbody tr[data-id]")).to_have_count(7)
                assert await page.locator("#chart-hourly rect").count() > 0
                assert await page.locator("#stats tbody tr").count() == 5
                assert await page.locator("#notice").is_hidden()
                # the agent filter offers the supervisor's team (and "Anyone")
                assert await page.locator("select[name=agent] option").count() == 6

                # filter: inbound calls with a recording that reached number 9031112233
                await page.select_option("select[name=direction]", "inbound")
                await page.select_option("select[name=has_recording]", "true")
                await page.fill("input[name=number]", "9031112233")
                await page.click("#apply")
                await expect(page.locator("#log tbody tr[data-id]")).to_have_count(1)
                row = page.locator("#log tbody tr[data-id]")
                assert "+79031112233" in await row.inner_text()

                # play: the audio element loads the recording (Range requests, cookie auth)
                await row.locator("button.play").click()
                await page.wait_for_selector("#player[data-ready=true]", state="attached")
                duration = float(await page.get_attribute("#player", "data-duration") or 0)
                assert duration == pytest.approx(10.96, abs=0.3)

                # export the filtered log as CSV
                async with page.expect_download() as info:
                    await page.click("#export")
                download = await info.value
                text = Path(await download.path()).read_bytes().decode("utf-8-sig")
                rows = list(csv.DictReader(io.StringIO(text)))
                assert len(rows) == 1 and rows[0]["caller"] == "+79031112233"
                assert rows[0]["talked_last"] == "104"
                assert problems == []
            finally:
                await browser.close()

        async with runtime.engine.connect() as conn:
            plays = (
                await conn.execute(
                    select(audit_log.c.user_id).where(audit_log.c.action == "recording.play")
                )
            ).all()
        assert plays and all(p.user_id == boss for p in plays)


async def test_supervisor_link_in_agent_console(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, **SECTIONS) as runtime:
        _a, agent_token = await add_user(runtime, "anna", "agent", "sales", ("101",))
        _b, boss_token = await add_user(runtime, "boss", "supervisor", "sales")
        async with web_client(runtime) as client, async_playwright() as pw:
            base = str(client.make_url("/")).rstrip("/")
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium")
            try:
                for token, visible in ((boss_token, True), (agent_token, False)):
                    context = await browser.new_context()
                    await context.add_cookies([{"name": "vc_token", "value": token, "url": base}])
                    page = await context.new_page()
                    await page.goto(base + "/")
                    await expect(page.locator("#me-name")).not_to_have_text("…")
                    link = page.locator("#supervisor-link")
                    if visible:
                        await expect(link).to_be_visible()
                        await link.click()
                        await page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
                        assert page.url.endswith("/static/supervisor/index.html")
                    else:
                        await expect(link).to_be_hidden()
                    await context.close()
            finally:
                await browser.close()
