"""The durable webhook inbox: accept first, process asynchronously, survive restarts.

A provider request is verified and parsed by its codec in the web route, then stored in
``webhook_inbox`` (:func:`store`) before the provider gets its 2xx. The unique
``(provider, account, event_key)`` drops a provider's duplicate (it is still answered 200).

:class:`InboxWorker` (a component) processes ``pending`` rows: it parses the stored request
again, feeds the observations to the runtime (tracker, then bus) and marks the row ``done`` (or
``failed`` with the reason). Rows still pending at start-up are processed first, so a restart
loses nothing that was acknowledged.

Processed rows are kept ``keep_days`` (7) for deduplication, then purged.

Ordering: rows of one conversation that carry a provider sequence (Mango ``seq``) are processed
in sequence order; a row whose predecessor has not arrived yet waits up to ``reorder_window``
seconds for it. Rows without a sequence in such a conversation (Mango summary, record/added) go
after the sequenced ones. Everything else is processed in arrival order.

A recording that arrives after its call ended (Mango ``record/added``, Zadarma
``NOTIFY_RECORD``) only enriches the ended call: it goes straight to the recordings pipeline,
which attaches it to the call's activity.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter
from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.adapters import generic_webhook, mango, megafon, zadarma
from connector.adapters.errors import AdapterError
from connector.adapters.provider_clients import MangoClient, register_clients
from connector.adapters.webhook_request import Decoded, WebhookRequest
from connector.config import WebhookAccountSettings
from connector.events.model import RecordingFound

if TYPE_CHECKING:
    from connector.app import Component, Runtime

logger = logging.getLogger(__name__)

__all__ = [
    "CODECS",
    "INBOX_KEY",
    "InboxWorker",
    "account_of",
    "components",
    "store",
]

CODECS: dict[str, ModuleType] = {
    "zadarma": zadarma,
    "mango": mango,
    "megafon": megafon,
    "generic": generic_webhook,
}
INBOX_KEY = "webhook_inbox"

PROCESSED = Counter(
    "connector_webhook_processed_total",
    "Webhook inbox rows processed, by provider and result (done, failed)",
    ["provider", "result"],
)


def account_of(
    settings_webhooks: tuple[WebhookAccountSettings, ...], provider: str, account: str
) -> WebhookAccountSettings | None:
    """The configured account ``provider/account``, if any."""
    for hook in settings_webhooks:
        if hook.provider == provider and hook.account == account:
            return hook
    return None


async def store(
    engine: AsyncEngine,
    account: WebhookAccountSettings,
    request: WebhookRequest,
    decoded: Decoded,
    received_at: datetime,
) -> bool:
    """Store an accepted request durably; False if the provider sent this event before.

    Requests arriving together share one transaction (group commit): each waits until its row
    is committed, and concurrent writers never queue on SQLite's lock (whose busy handler
    sleeps and polls)."""
    row = {
        "provider": account.provider,
        "account": account.account,
        "event_key": decoded.event_key[:200],
        "conversation_id": decoded.conversation_id[:200],
        "seq": decoded.seq,
        "headers": request.to_record(),
        "body": request.body,
        "received_at": received_at,
        "status": "pending",
    }
    group = _GROUPS.get(engine)
    if group is None:
        group = _GROUPS[engine] = _GroupCommit(engine)
    return await group.add(row)


async def _insert_one(engine: AsyncEngine, row: dict[str, Any]) -> bool:
    from crm_sync.schema import webhook_inbox

    try:
        async with engine.begin() as conn:
            await conn.execute(webhook_inbox.insert().values(**row))
    except IntegrityError:
        return False
    return True


class _GroupCommit:
    """The rows waiting to be stored for one engine, written by one task, many per commit."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.waiting: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        self.task: asyncio.Task[None] | None = None

    async def add(self, row: dict[str, Any]) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.waiting.append((row, future))
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._write(), name="webhook-inbox-store")
        return await future

    async def _write(self) -> None:
        from crm_sync.schema import webhook_inbox

        while self.waiting:
            batch, self.waiting = self.waiting, []
            try:
                if len(batch) == 1:
                    results = [await _insert_one(self.engine, batch[0][0])]
                else:
                    try:
                        async with self.engine.begin() as conn:
                            await conn.execute(webhook_inbox.insert(), [r for r, _ in batch])
                        results = [True] * len(batch)
                    except IntegrityError:  # a duplicate among them: tell which, one by one
                        results = [await _insert_one(self.engine, r) for r, _ in batch]
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), fresh in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(fresh)


_GROUPS: weakref.WeakKeyDictionary[AsyncEngine, _GroupCommit] = weakref.WeakKeyDictionary()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class InboxWorker:
    """Component: processes pending inbox rows, in provider order, until cancelled."""

    name = "webhook-inbox"

    def __init__(
        self,
        runtime: Runtime,
        *,
        reorder_window: float = 2.0,
        poll_interval: float = 5.0,
        batch: int = 200,
        keep_days: float = 7.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.runtime = runtime
        self.reorder_window = timedelta(seconds=reorder_window)
        self.poll_interval = poll_interval
        self.batch = batch
        self.keep_days = keep_days
        self.clock = clock
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.processed = 0

    def wake(self) -> None:
        """A new row was stored: look at the inbox now."""
        self._idle.clear()
        self._wake.set()

    async def wait_idle(self, timeout: float) -> None:
        """Wait until a pass found nothing left to process (for tests and shutdown)."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def run(self) -> None:
        """Process what is pending (also what was left before a restart), then wait for more."""
        next_purge = 0.0
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            if loop.time() >= next_purge:
                await self.purge(self.clock())
                next_purge = loop.time() + 3600.0
            held = await self.process_pending()
            if not held and not self._wake.is_set():
                self._idle.set()
            wait = self.reorder_window.total_seconds() if held else self.poll_interval
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0.05))
            except TimeoutError:
                pass

    async def purge(self, now: datetime) -> int:
        """Forget processed rows older than ``keep_days`` (duplicates are caught that long)."""
        from crm_sync.schema import webhook_inbox as t

        cutoff = now - timedelta(days=self.keep_days)
        async with self.runtime.engine.begin() as conn:
            result = await conn.execute(
                delete(t).where(and_(t.c.status != "pending", t.c.received_at < cutoff))
            )
        count = int(result.rowcount or 0)
        if count:
            logger.info("webhook inbox: %d processed row(s) older than %s purged", count, cutoff)
        return count

    async def process_pending(self) -> int:
        """One pass over the pending rows; returns how many rows are held waiting for order."""
        from crm_sync.schema import webhook_inbox as t

        async with self.runtime.engine.connect() as conn:
            rows = list(
                await conn.execute(
                    select(t).where(t.c.status == "pending").order_by(t.c.id).limit(self.batch)
                )
            )
        groups: dict[tuple[str, str, str], list[Any]] = {}
        order: list[tuple[str, str, str]] = []
        for row in rows:
            key = (row.provider, row.account, row.conversation_id or f"#{row.id}")
            if key not in groups:
                groups[key] = []
                order.append(key)
            groups[key].append(row)
        held = 0
        for key in order:
            group = groups[key]
            if any(r.seq is not None for r in group):
                group.sort(key=lambda r: (r.seq is None, r.seq or 0, r.id))
                last = await self._last_seq(key)
                for row in group:
                    if row.seq is not None and last is not None and row.seq > last + 1:
                        age = self.clock() - _aware(row.received_at)
                        if age < self.reorder_window:
                            held += 1
                            break  # wait for the missing predecessor
                    await self._process(row)
                    if row.seq is not None:
                        last = row.seq if last is None else max(last, row.seq)
            else:
                for row in group:
                    await self._process(row)
        return held

    async def _last_seq(self, key: tuple[str, str, str]) -> int | None:
        from crm_sync.schema import webhook_inbox as t

        provider, account, conversation = key
        async with self.runtime.engine.connect() as conn:
            value = await conn.scalar(
                select(func.max(t.c.seq)).where(
                    and_(
                        t.c.provider == provider,
                        t.c.account == account,
                        t.c.conversation_id == conversation,
                        t.c.status != "pending",
                    )
                )
            )
        # Mango numbers the events of a call from 1; nothing seen yet means 0 came last.
        return int(value) if value is not None else 0

    async def _process(self, row: Any) -> None:
        from crm_sync.schema import webhook_inbox as t

        status, error = "done", ""
        try:
            await self._apply(row)
        except AdapterError as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            logger.warning("webhook %s/%s #%s failed: %s", row.provider, row.account, row.id, exc)
        except Exception as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            logger.exception("webhook %s/%s #%s failed", row.provider, row.account, row.id)
        PROCESSED.labels(row.provider, status).inc()
        self.processed += 1
        async with self.runtime.engine.begin() as conn:
            await conn.execute(
                update(t)
                .where(t.c.id == row.id)
                .values(status=status, error=error[:2000], processed_at=self.clock())
            )

    async def _apply(self, row: Any) -> None:
        account = account_of(self.runtime.settings.webhook, row.provider, row.account)
        codec = CODECS.get(row.provider)
        if account is None or codec is None:
            raise AdapterError(f"no configured account {row.provider}/{row.account}")
        request = WebhookRequest.from_record(row.headers or {}, bytes(row.body))
        received_at = _aware(row.received_at)
        decoded: Decoded = codec.parse(account, request, received_at)
        if decoded.callback is not None:
            clients = self.runtime.extras.get("provider_clients") or {}
            client = clients.get((row.provider, row.account))
            if isinstance(client, MangoClient):
                client.resolve(decoded.callback.command_id, decoded.callback.result)
            logger.info(
                "%s: command %s finished with result %s",
                account.pbx_name,
                decoded.callback.command_id,
                decoded.callback.result,
            )
        if not decoded.observations:
            return
        active_before = self._is_active(account.pbx_name, decoded.conversation_id)
        self.runtime.ingest(decoded.observations, now=received_at)
        for obs in decoded.observations:
            if isinstance(obs, RecordingFound) and not active_before:
                self._late_recording(obs)

    def _is_active(self, pbx: str, conversation_id: str) -> bool:
        active_calls = getattr(self.runtime.tracker, "active_calls", None)
        if active_calls is None:
            return True
        return any(c.conversation_id == conversation_id for c in active_calls(pbx))

    def _late_recording(self, obs: RecordingFound) -> None:
        """A recording of a call that already ended: hand it to the pipeline directly."""
        pipeline = self.runtime.extras.get("recordings")
        if pipeline is None:
            logger.info("recording %s of ended call %s: no pipeline", obs.reference, obs.pbx)
            return

        async def collect() -> None:
            try:
                await pipeline.collect(
                    pbx=obs.pbx,
                    conversation_id=obs.conversation_id,
                    source=obs.reference,
                    day=obs.at,
                )
            except Exception:
                logger.exception("late recording %s failed", obs.reference)

        task = asyncio.get_running_loop().create_task(collect())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def components(runtime: Runtime) -> list[Component]:
    """The inbox worker, and the provider API clients registered for click-to-call."""
    if not runtime.settings.webhook:
        return []
    register_clients(runtime)
    base = str(runtime.extras.get("url") or "").rstrip("/")
    for hook in runtime.settings.webhook:
        logger.info(
            "%s webhooks of %s: %s/webhooks/%s/%s",
            hook.provider,
            hook.pbx_name,
            base,
            hook.provider,
            hook.account,
        )
    worker = InboxWorker(runtime)
    runtime.extras[INBOX_KEY] = worker
    return [worker]
