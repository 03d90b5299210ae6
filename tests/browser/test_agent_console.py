"""The agent console in headless Chromium against the whole connector and a fake Asterisk.

The connector runs for real (``serve``: web app, hub, AMI adapter, call log) with the demo people
and contacts seeded; the fake AMI server replays the captured calls in pieces so each state of
the card can be checked: ringing, answered, taken by a colleague, ended.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from connector.adapters.ami_replay_server import FakeAmiServer, Transcript
from connector.app import Runtime, serve
from connector.config import settings_from_mapping
from connector.demo import DEMO_PASSWORD, seed_demo

pytestmark = pytest.mark.browser

DATA = Path(__file__).resolve().parents[1] / "data" / "ami"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
expect.set_options(timeout=20_000)


@dataclass
class Stack:
    """The running connector, its URL and the fake PBX it is connected to."""

    runtime: Runtime
    url: str
    pbx: FakeAmiServer


def parts(name: str, *markers: bytes) -> list[Transcript]:
    """A captured call (events only) cut before each marker, in order."""
    rest = Transcript.load(DATA / f"{name}.ami").events_only()
    out = []
    for marker in markers:
        head, rest = rest.split_before(marker)
        out.append(head)
    return [*out, rest]


@asynccontextmanager
async def connector(tmp_path: Path) -> AsyncIterator[Stack]:
    """The connector on ephemeral ports, connected to a fake Asterisk, demo data seeded."""
    pbx = FakeAmiServer(
        secret="browser-secret",
        originate_transcript=Transcript.load(DATA / "click_to_call.ami"),
    )
    async with pbx:
        raw = {
            "server": {"port": 0},
            "hub": {"port": 0, "lookup_budget_ms": 2000},
            "storage": {"data_dir": str(tmp_path / "data")},
            "pbx": [{"name": "demo", "port": pbx.port, "secret": "browser-secret"}],
        }
        settings = settings_from_mapping(raw, base_dir=tmp_path, environ={})
        ready: asyncio.Future[tuple[Runtime, str]] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            serve(settings, on_ready=lambda rt, url: ready.set_result((rt, url)))
        )
        try:
            async with asyncio.timeout(30):
                runtime, url = await ready
                await seed_demo(runtime)
                await runtime.extras["hub"].ready.wait()
                await pbx.wait_until(lambda: pbx.logins >= 1)
            yield Stack(runtime, url, pbx)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Headless Debian Chromium."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def screenshots_on_failure(name: str, *pages: Page) -> AsyncIterator[None]:
    """Save a screenshot of every page to test-artifacts/ if the block fails."""
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        for i, page in enumerate(pages):
            try:
                await page.screenshot(path=str(ARTIFACTS / f"{name}-{i}.png"), full_page=True)
            except Exception:  # the page may be gone; the original failure matters
                pass
        raise


async def signed_in(browser: Browser, url: str, login: str) -> Page:
    """A fresh browser context signed in as ``login`` through the login page."""
    context = await browser.new_context(viewport={"width": 1366, "height": 800})
    page = await context.new_page()
    await page.goto(url + "/")
    await page.wait_for_url(re.compile(r"/login"))
    await page.fill("#login", login)
    await page.fill("#password", DEMO_PASSWORD)
    await page.click("#login-submit")
    await expect(page.locator("#hub-status")).to_have_attribute("data-status", "online")
    await expect(page.locator("#me-detail")).to_contain_text("ext.")
    return page


async def test_card_pops_updates_on_answer_and_ends(tmp_path: Path) -> None:
    ringing, answered, hangup = parts("inbound_answered", b"DialStatus: ANSWER", b"Event: Hangup")
    async with connector(tmp_path) as stack, chromium() as browser:
        page = await signed_in(browser, stack.url, "agent101")
        async with screenshots_on_failure("agent-card", page):
            await stack.pbx.play(ringing)
            card = page.locator("#live-cards .call-card")
            await expect(card).to_have_attribute("data-state", "ringing")
            await expect(card.locator(".contact-name")).to_have_text("Ivan Petrov")
            await expect(card.locator(".company-name")).to_have_text("Альфа Логистик")
            await expect(card.locator(".responsible")).to_have_text("Anna Smirnova")
            await expect(card.locator(".number")).to_contain_text("+7 916 123-45-67")
            await expect(card.locator(".open-tasks")).to_contain_text("Send the price list")
            await expect(page.locator("#live-count")).to_have_text("1")

            await stack.pbx.play(answered)
            await expect(card).to_have_attribute("data-state", "talking")
            await expect(card.locator(".call-state")).to_have_text("In call")

            await stack.pbx.play(hangup)
            await expect(card).to_have_attribute("data-state", "ended")
            await expect(card.locator(".call-state")).to_contain_text("Answered")

            # the debug panel shows the latency of that pop
            await page.click("#debug-btn")
            await expect(page.locator("#dbg-latency")).to_have_text(re.compile(r"\d+ ms"))
            # elsewhere in the console the ringing card pops up in the corner
            await page.click("nav.side button[data-view=calls]")
            await expect(page.locator("#calls-rows")).to_contain_text("Answered")
            await page.select_option("#call-filters select[name=outcome]", "missed")
            await page.click("#call-filters button[type=submit]")
            await expect(page.locator("#calls-rows")).to_contain_text("No calls match")
            await page.select_option("#call-filters select[name=outcome]", "answered")
            await page.fill("#call-filters input[name=number]", "916 123")
            await page.click("#call-filters button[type=submit]")
            row = page.locator("#calls-rows tr").first
            await expect(row).to_contain_text("Ivan Petrov")
            await expect(row).to_contain_text("+79161234567")


async def test_queue_call_pops_for_both_and_closes_for_the_colleague(tmp_path: Path) -> None:
    ringing, answered, hangup = parts("queue_call", b"DialStatus: ANSWER", b"Event: Hangup")
    async with connector(tmp_path) as stack, chromium() as browser:
        elena = await signed_in(browser, stack.url, "agent201")
        fedor = await signed_in(browser, stack.url, "agent202")
        async with screenshots_on_failure("queue-card", elena, fedor):
            # elena works on her tasks: the call pops up in the corner
            await elena.click("nav.side button[data-view=tasks]")
            await stack.pbx.play(ringing)
            for page, where in ((elena, "#pop-layer"), (fedor, "#live-cards")):
                card = page.locator(f"{where} .call-card")
                await expect(card).to_have_attribute("data-state", "ringing")
                # two exact matches for the office number: the contact first, then the company
                await expect(card.locator(".contact-name")).to_have_text("Maria Ivanova")
                await expect(card.locator(".matches")).to_contain_text("ООО Ромашка")

            await stack.pbx.play(answered)
            fedor_card = fedor.locator("#live-cards .call-card")
            await expect(fedor_card).to_have_attribute("data-state", "talking")
            elena_card = elena.locator("#pop-layer .call-card")
            await expect(elena_card).to_have_attribute("data-state", "closed")
            await expect(elena_card.locator(".call-state")).to_have_text(
                "Taken by Fedor Novikov (202)"
            )

            await stack.pbx.play(hangup)
            await expect(fedor_card).to_have_attribute("data-state", "ended")
            await expect(elena_card).to_have_attribute("data-state", "closed")


async def test_click_to_call_from_a_contact_reaches_the_pbx(tmp_path: Path) -> None:
    async with connector(tmp_path) as stack, chromium() as browser:
        page = await signed_in(browser, stack.url, "agent101")
        async with screenshots_on_failure("click-to-call", page):
            await page.click("nav.side button[data-view=contacts]")
            await page.fill("#contact-q", "Ivan")
            await page.click("#contact-search button[type=submit]")
            await page.click(".contact-row >> text=Ivan Petrov")
            await expect(page.locator(".contact-title")).to_have_text("Ivan Petrov")
            await page.click(".contact-phones .call-btn")
            originate = await stack.pbx.wait_for_action("Originate", timeout=20)
            assert "101" in originate.get("Channel")
            assert "9161234567" in originate.get("Exten")
            await expect(page.locator("#toasts")).to_contain_text("Calling")
            # the recorded click-to-call plays back: agent 101's phone rings for this call
            card = page.locator("#live-cards .call-card").first
            await expect(card.locator(".contact-name")).to_have_text("Ivan Petrov")


async def test_unknown_caller_becomes_a_contact_and_contacts_can_be_edited(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from connector.events.model import CallRinging, Direction, Party

    async with connector(tmp_path) as stack, chromium() as browser:
        page = await signed_in(browser, stack.url, "agent101")
        async with screenshots_on_failure("unknown-caller", page):
            now = datetime.now(UTC)
            stack.runtime.publish(
                CallRinging(
                    key="u1",
                    pbx="demo",
                    conversation_id="u1",
                    occurred_at=now,
                    observed_at=now,
                    direction=Direction.INBOUND,
                    caller=Party("8 (999) 123-45-67", "New Customer"),
                    extension="101",
                )
            )
            card = page.locator("#live-cards .call-card")
            await expect(card.locator(".contact-name")).to_have_text("New Customer")
            await card.locator("button.create-contact").click()
            form = page.locator("form.contact-form")
            await expect(form.locator("input[name=name]")).to_have_value("New Customer")
            await expect(form.locator("textarea[name=phones]")).to_have_value("+79991234567")
            await form.locator("input[name=tags]").fill("lead, web")
            await form.locator("button[type=submit]").click()
            await expect(page.locator(".contact-title")).to_have_text("New Customer")
            await expect(page.locator(".contact-phones")).to_contain_text("+79991234567")

            await page.click("button.edit-contact")
            await page.fill("form.contact-form input[name=name]", "Nina Customer")
            await page.click("form.contact-form button[type=submit]")
            await expect(page.locator(".contact-title")).to_have_text("Nina Customer")
            await page.fill("#contact-q", "8 999 123-45-67")
            await page.click("#contact-search button[type=submit]")
            await expect(page.locator(".contact-row")).to_have_count(1)
            await expect(page.locator(".contact-row")).to_contain_text("Nina Customer")


async def test_contact_gets_a_company_and_a_manager_and_is_found_by_its_last_digits(
    tmp_path: Path,
) -> None:
    from sqlalchemy import select

    from crm_sync.schema import companies, contacts, users

    async with connector(tmp_path) as stack, chromium() as browser:
        page = await signed_in(browser, stack.url, "agent101")
        async with screenshots_on_failure("contact-pickers", page):
            await page.click("nav.side button[data-view=contacts]")
            await page.click("#contact-new")
            form = page.locator("form.contact-form")
            await form.locator("input[name=name]").fill("Pavel Orlov")
            await form.locator("textarea[name=phones]").fill("+7 912 555-98-76")

            # a company name typed but not picked from the list is not saved by guesswork
            await form.locator("input[name=company]").fill("Nowhere Inc")
            await expect(form.locator(".picker-list")).to_contain_text("No company matches")
            await form.locator("button[type=submit]").click()
            await expect(form.locator(".form-error")).to_contain_text("Pick the company")

            await form.locator("input[name=company]").fill("Рома")
            await expect(form.locator(".picker-option")).to_have_count(1)
            await form.locator(".picker-option", has_text="ООО Ромашка").click()
            await expect(form.locator(".form-error")).to_be_hidden()
            await expect(form.locator("input[name=company]")).to_have_value("ООО Ромашка")
            manager = form.locator("select[name=responsible_user_id]")
            await expect(manager).to_have_attribute("data-loaded", "true")
            await manager.select_option(label="Fedor Novikov · support")
            await form.locator("button[type=submit]").click()

            await expect(page.locator(".contact-title")).to_have_text("Pavel Orlov")
            await expect(page.locator(".contact-company")).to_have_text("ООО Ромашка")
            await expect(page.locator(".contact-manager")).to_have_text("Fedor Novikov")
            async with stack.runtime.engine.connect() as conn:
                saved = (
                    await conn.execute(
                        select(contacts.c.company_id, contacts.c.responsible_user_id).where(
                            contacts.c.name == "Pavel Orlov"
                        )
                    )
                ).one()
                romashka = await conn.scalar(
                    select(companies.c.id).where(companies.c.name == "ООО Ромашка")
                )
                fedor = await conn.scalar(select(users.c.id).where(users.c.login == "agent202"))
            assert (saved.company_id, saved.responsible_user_id) == (romashka, fedor)

            # found by the last digits of its number, however they are written
            for query in ("9876", "55-98-76"):
                await page.fill("#contact-q", query)
                await page.click("#contact-search button[type=submit]")
                await expect(page.locator(".contact-row")).to_have_count(1)
                await expect(page.locator(".contact-row")).to_contain_text("Pavel Orlov")

            # the edit form shows both; the company can be taken away again
            await page.click("button.edit-contact")
            await expect(form.locator("input[name=company]")).to_have_value("ООО Ромашка")
            await expect(manager).to_have_value(str(fedor))
            await form.locator(".picker-clear").click()
            await form.locator("button[type=submit]").click()
            await expect(page.locator(".contact-company")).to_have_text("—")
            await expect(page.locator(".contact-manager")).to_have_text("Fedor Novikov")
