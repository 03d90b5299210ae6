"""A real runtime, web app and inbox worker on loopback for the webhook tests.

Requests are real HTTP to an aiohttp test server running ``create_app(await build_runtime())``
on a SQLite file in ``tmp_path``; the inbox worker runs as the daemon runs it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import select

from connector import webhooks_inbox
from connector.app import Runtime, build_runtime
from connector.config import settings_from_mapping
from connector.events.bus import Subscription
from connector.events.model import Event
from connector.webhooks_inbox import InboxWorker
from crm_sync.schema import extensions, users, webhook_inbox
from tests.integration.calllog_support import running, web_client

ACCOUNTS: list[dict[str, Any]] = [
    {
        "provider": "zadarma",
        "account": "zd1",
        "pbx": "zadarma-main",
        "key": "zd-user-key",
        "secret": "zd-api-secret",
        "timezone": "Europe/Moscow",
    },
    {
        "provider": "mango",
        "account": "mg1",
        "pbx": "mango-main",
        "key": "mango-product-key",
        "secret": "mango-salt",
    },
    {
        "provider": "megafon",
        "account": "mf1",
        "pbx": "megafon-main",
        "key": "megafon-rest-key",
        "secret": "megafon-crm-token",
    },
    {
        "provider": "generic",
        "account": "gen1",
        "pbx": "generic-main",
        "secret": "generic-shared-secret",
        "max_skew_seconds": 300,
    },
]


ZADARMA_SECRET = "zd-api-secret"
ZADARMA_URL = "/webhooks/zadarma/zd1"
#: Zadarma event -> the fields whose concatenation it signs.
ZADARMA_CONCAT = {
    "NOTIFY_START": ("caller_id", "called_did", "call_start"),
    "NOTIFY_INTERNAL": ("caller_id", "called_did", "call_start"),
    "NOTIFY_END": ("caller_id", "called_did", "call_start"),
    "NOTIFY_ANSWER": ("caller_id", "destination", "call_start"),
    "NOTIFY_OUT_START": ("internal", "destination", "call_start"),
    "NOTIFY_OUT_END": ("internal", "destination", "call_start"),
    "NOTIFY_RECORD": ("pbx_call_id", "call_id_with_rec"),
}


def zd_signature(fields: dict[str, str], secret: str = ZADARMA_SECRET) -> str:
    """base64 of the lower-case hex HMAC-SHA1, as the PHP SDK computes it."""
    data = "".join(fields[n] for n in ZADARMA_CONCAT[fields["event"]])
    hexdigest = hmac.new(secret.encode(), data.encode(), hashlib.sha1).hexdigest()
    return base64.b64encode(hexdigest.encode()).decode()


async def post_zadarma(env: Any, fields: dict[str, str], secret: str = ZADARMA_SECRET) -> Any:
    """Post a signed, url-encoded Zadarma notification to account zd1."""
    return await env.client.post(
        ZADARMA_URL,
        data=urlencode(fields).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Signature": zd_signature(fields, secret),
        },
    )


def zadarma_call(event: str, call_id: str, **extra: str) -> dict[str, str]:
    """The fields of a Zadarma notification of ``event`` for ``call_id``."""
    return {"event": event, "pbx_call_id": call_id, "call_start": "2026-11-28 15:00:00", **extra}


def zadarma_answered(
    call_id: str, caller: str, did: str, ext: str, *, duration: str, rec: str
) -> list[dict[str, str]]:
    """The notifications of an inbound call that ``ext`` answers and that is recorded as
    ``rec``: START, INTERNAL, ANSWER, END."""
    numbers = {"caller_id": caller, "called_did": did}
    return [
        zadarma_call("NOTIFY_START", call_id, **numbers),
        zadarma_call("NOTIFY_INTERNAL", call_id, internal=ext, **numbers),
        zadarma_call("NOTIFY_ANSWER", call_id, caller_id=caller, destination=ext),
        zadarma_call(
            "NOTIFY_END",
            call_id,
            internal=ext,
            duration=duration,
            disposition="answered",
            is_recorded="1",
            call_id_with_rec=rec,
            **numbers,
        ),
    ]


def mango_form(
    payload: dict[str, Any], key: str = "mango-product-key", salt: str = "mango-salt"
) -> dict[str, str]:
    """The form Mango posts: ``vpbx_api_key``, ``sign`` and the ``json`` string it signs."""
    text = json.dumps(payload)
    return {
        "vpbx_api_key": key,
        "sign": hashlib.sha256((key + text + salt).encode()).hexdigest(),
        "json": text,
    }


def metric(name: str, **labels: str) -> float:
    """The current value of a Prometheus sample (0 when it was never incremented)."""
    value = REGISTRY.get_sample_value(name, labels)
    return value or 0.0


@dataclass
class WebhookEnv:
    """The running pieces a test talks to."""

    runtime: Runtime
    client: TestClient[Any, Any]
    worker: InboxWorker
    events: Subscription

    async def next_event(
        self, type_: str, where: Callable[[Any], bool] = lambda e: True, timeout: float = 10.0
    ) -> Any:
        """The next bus event of ``type_`` matching ``where`` (others are skipped)."""

        async def find() -> Event:
            while True:
                event = await self.events.get()
                if event.TYPE == type_ and where(event):
                    return event

        return await asyncio.wait_for(find(), timeout)

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until the worker has processed everything that is pending."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            async with self.runtime.engine.connect() as conn:
                left = await conn.scalar(
                    select(webhook_inbox.c.id).where(webhook_inbox.c.status == "pending").limit(1)
                )
            if left is None:
                return
            if loop.time() > deadline:
                raise TimeoutError("the webhook inbox did not drain")
            self.worker.wake()
            with suppress(TimeoutError):
                await self.worker.wait_idle(0.5)

    async def inbox_rows(self) -> list[Any]:
        """Every inbox row, in arrival order."""
        async with self.runtime.engine.connect() as conn:
            return list(await conn.execute(select(webhook_inbox).order_by(webhook_inbox.c.id)))


def make_settings(
    tmp_path: Path, accounts: list[dict[str, Any]] | None = None, **extra: Any
) -> Any:
    """Settings with the test accounts and SQLite in ``tmp_path``."""
    raw: dict[str, Any] = {
        "storage": {"data_dir": str(tmp_path / "data")},
        "webhook": accounts if accounts is not None else ACCOUNTS,
        "recordings": {"directory": str(tmp_path / "recordings")},
    }
    raw.update(extra)
    return settings_from_mapping(raw, base_dir=tmp_path, environ={})


async def seed_agents(runtime: Runtime, pbx_exts: dict[str, list[str]]) -> dict[str, int]:
    """Users ``agent<ext>`` owning the extensions (on any PBX); returns login -> id."""
    from datetime import UTC, datetime

    ids: dict[str, int] = {}
    async with runtime.engine.begin() as conn:
        for _pbx, exts in pbx_exts.items():
            for ext in exts:
                login = f"agent{ext}"
                if login in ids:
                    continue
                res = await conn.execute(
                    users.insert().values(
                        login=login,
                        name=f"Agent {ext}",
                        role="agent",
                        team="sales",
                        active=True,
                        created_at=datetime.now(UTC),
                        updated_at=datetime.now(UTC),
                    )
                )
                uid = int(res.inserted_primary_key[0])
                ids[login] = uid
                await conn.execute(extensions.insert().values(user_id=uid, pbx="*", extension=ext))
    await runtime.reload_directory()
    return ids


@asynccontextmanager
async def webhook_env(
    tmp_path: Path,
    accounts: list[dict[str, Any]] | None = None,
    *,
    reorder_window: float = 1.0,
    settings: Any = None,
    run_worker: bool = True,
) -> AsyncIterator[WebhookEnv]:
    """Start the runtime, the web app on a loopback port and the inbox worker."""
    settings = settings or make_settings(tmp_path, accounts)
    runtime = await build_runtime(settings)
    webhooks_inbox.components(runtime)
    worker = InboxWorker(runtime, reorder_window=reorder_window, poll_interval=0.5)
    runtime.extras[webhooks_inbox.INBOX_KEY] = worker
    events = runtime.bus.subscribe("webhook-test")
    try:
        async with (
            web_client(runtime) as client,
            running(worker.run() if run_worker else asyncio.Event().wait()),
        ):
            yield WebhookEnv(runtime=runtime, client=client, worker=worker, events=events)
    finally:
        await runtime.engine.dispose()
