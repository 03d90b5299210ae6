"""Outgoing webhooks: our events, signed, delivered through a durable outbox.

Admins subscribe URLs to event types (``call.ringing``, ``call.ended``, ``recording.ready``,
``task.created``..., or ``*`` for all; see :mod:`connector.web.api_subscriptions`).

* :class:`OutboxWorker` (a component) consumes the bus and writes one ``webhook_deliveries`` row
  per (subscription, event) (:func:`enqueue`); the row is unique on ``(subscription_id,
  event_id)``, the event id being the event's idempotency key, so the same event is never
  queued twice.
* It then POSTs due rows (:meth:`OutboxWorker.deliver_due`): JSON ``{"id", "type",
  "occurred_at", "event"}`` where ``event`` is the :mod:`connector.events.wire` form, with the
  headers ``X-Connector-Event-Id``, ``X-Connector-Event-Type``, ``X-Connector-Delivery``,
  ``X-Connector-Attempt``, ``X-Connector-Timestamp`` and ``X-Connector-Signature: v1=<hex
  HMAC-SHA256(secret, timestamp + "." + body)>`` (the scheme of the generic inbound webhook).
* Any 2xx is delivered. Anything else (status, timeout, refused connection) is retried after an
  exponential backoff (``backoff_base_seconds * 2**(attempt-1)``, at most
  ``backoff_max_seconds``); after ``max_attempts`` the row is ``dead`` (visible, and retriable,
  through the API). Each endpoint is limited to its ``rate_per_second`` (or the default).
* Rows live in the database, so a restart loses no pending delivery; receivers deduplicate on
  ``X-Connector-Event-Id`` (a delivery cut off after the receiver took it is sent again).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
from prometheus_client import Counter
from sqlalchemy import and_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.adapters.generic_webhook import sign_body
from connector.config import OutgoingWebhookSettings
from connector.events.model import Event
from connector.events.wire import event_to_dict

if TYPE_CHECKING:
    from connector.app import Component, Runtime

logger = logging.getLogger(__name__)

__all__ = [
    "OUTBOX_KEY",
    "OutboxWorker",
    "backoff_seconds",
    "components",
    "delivery_body",
    "delivery_headers",
    "enqueue",
]

OUTBOX_KEY = "outbox"

DELIVERIES = Counter(
    "connector_outgoing_webhook_deliveries_total",
    "Outgoing webhook delivery attempts by result (delivered, retry, dead)",
    ["result"],
)


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """The wait before attempt ``attempt + 1`` after ``attempt`` failures (1-based)."""
    return float(min(cap, base * (2 ** max(0, attempt - 1))))


def delivery_body(event: Event) -> str:
    """The JSON body delivered for an event (stable: the same event gives the same body)."""
    return json.dumps(
        {
            "id": event.key,
            "type": event.TYPE,
            "occurred_at": event.occurred_at.astimezone(UTC).isoformat(),
            "event": event_to_dict(event),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def delivery_headers(
    secret: str,
    body: bytes,
    event_id: str,
    event_type: str,
    delivery_id: int,
    attempt: int,
    now: float,
) -> dict[str, str]:
    """The headers of one delivery attempt, signature included."""
    ts = int(now)
    return {
        "Content-Type": "application/json",
        "User-Agent": "voip-connector-webhooks/1",
        "X-Connector-Event-Id": event_id,
        "X-Connector-Event-Type": event_type,
        "X-Connector-Delivery": str(delivery_id),
        "X-Connector-Attempt": str(attempt),
        "X-Connector-Timestamp": str(ts),
        "X-Connector-Signature": sign_body(secret, ts, body),
    }


def _wants(types: Any, event_type: str) -> bool:
    return isinstance(types, list) and ("*" in types or event_type in types)


async def enqueue(engine: AsyncEngine, event: Event, now: datetime) -> int:
    """Queue ``event`` for every active subscription that wants it; returns rows added."""
    from crm_sync.schema import webhook_deliveries as d
    from crm_sync.schema import webhook_subscriptions as s

    async with engine.connect() as conn:
        subs = list(await conn.execute(select(s.c.id, s.c.event_types).where(s.c.active)))
    wanted = [row.id for row in subs if _wants(row.event_types, event.TYPE)]
    if not wanted:
        return 0
    payload = delivery_body(event)
    added = 0
    for sub_id in wanted:
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    d.insert().values(
                        subscription_id=sub_id,
                        event_id=event.key[:200],
                        event_type=event.TYPE,
                        payload=payload,
                        status="pending",
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
            added += 1
        except IntegrityError:
            pass  # this event is already queued for this subscription
    return added


@dataclass
class _Bucket:
    """A per-endpoint pacer: at most ``rate`` sends per second."""

    rate: float
    next_at: float = 0.0

    def delay(self, now: float) -> float:
        """Seconds to wait before the next send (0: now); reserves the slot."""
        start = max(now, self.next_at)
        self.next_at = start + 1.0 / self.rate
        return start - now


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class OutboxWorker:
    """Component: bus -> outbox rows -> signed HTTP deliveries with retries."""

    name = "outbox"

    def __init__(
        self,
        runtime: Runtime,
        *,
        poll_interval: float = 5.0,
        batch: int = 100,
        session_factory: Callable[[], aiohttp.ClientSession] = aiohttp.ClientSession,
    ) -> None:
        self.runtime = runtime
        self.settings: OutgoingWebhookSettings = runtime.settings.outgoing_webhooks
        self.poll_interval = poll_interval
        self.batch = batch
        self.session_factory = session_factory
        self._wake = asyncio.Event()
        self._buckets: dict[int, _Bucket] = {}
        self._progress = asyncio.Condition()
        self.sent = 0
        self.attempted = 0
        self.dead = 0
        # subscribe now, so no event published before run() starts is missed
        self.subscription = runtime.bus.subscribe(self.name)

    def wake(self) -> None:
        """Something was queued (or retried): look at the outbox now."""
        self._wake.set()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait (bounded) until ``predicate()`` holds; checked after every delivery attempt."""
        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(predicate), timeout)

    async def run(self) -> None:
        """Queue bus events and deliver due rows until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._consume(self.subscription))
            await self._deliver_forever()

    async def _consume(self, sub: Any) -> None:
        while True:
            event = await sub.get()
            try:
                if await enqueue(self.runtime.engine, event, datetime.now(UTC)):
                    self.wake()
            except Exception:
                logger.exception("cannot queue %s %s for outgoing webhooks", event.TYPE, event.key)

    async def _deliver_forever(self) -> None:
        async with self.session_factory() as session:
            while True:
                self._wake.clear()
                try:
                    wait = await self.deliver_due(session)
                except Exception:
                    logger.exception("outgoing webhook pass failed")
                    wait = self.poll_interval
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, wait))
                except TimeoutError:
                    pass

    async def deliver_due(self, session: aiohttp.ClientSession) -> float:
        """Send every due row once; returns seconds until the next row is due (bounded)."""
        from crm_sync.schema import webhook_deliveries as d
        from crm_sync.schema import webhook_subscriptions as s

        now = datetime.now(UTC)
        async with self.runtime.engine.connect() as conn:
            rows = list(
                await conn.execute(
                    select(
                        d.c.id,
                        d.c.subscription_id,
                        d.c.event_id,
                        d.c.event_type,
                        d.c.payload,
                        d.c.attempts,
                        s.c.url,
                        s.c.secret,
                        s.c.rate_per_second,
                    )
                    .join(s, s.c.id == d.c.subscription_id)
                    .where(and_(d.c.status == "pending", d.c.next_attempt_at <= now, s.c.active))
                    .order_by(d.c.next_attempt_at, d.c.id)
                    .limit(self.batch)
                )
            )
        by_endpoint: dict[int, list[Any]] = {}
        for row in rows:
            by_endpoint.setdefault(row.subscription_id, []).append(row)
        if by_endpoint:
            await asyncio.gather(
                *(self._send_all(session, group) for group in by_endpoint.values())
            )
        if len(rows) >= self.batch:
            return 0.0
        async with self.runtime.engine.connect() as conn:
            next_due = await conn.scalar(
                select(func.min(d.c.next_attempt_at))
                .join(s, s.c.id == d.c.subscription_id)
                .where(and_(d.c.status == "pending", s.c.active))
            )
        if next_due is None:
            return self.poll_interval
        gap = (_aware(next_due) - datetime.now(UTC)).total_seconds()
        return min(self.poll_interval, max(0.0, gap))

    async def _send_all(self, session: aiohttp.ClientSession, rows: list[Any]) -> None:
        for row in rows:
            rate = row.rate_per_second or self.settings.rate_per_second
            bucket = self._buckets.get(row.subscription_id)
            if bucket is None or bucket.rate != rate:
                bucket = self._buckets[row.subscription_id] = _Bucket(rate)
            pause = bucket.delay(time.monotonic())
            if pause > 0:
                await asyncio.sleep(pause)  # pacing for the endpoint's rate limit
            await self._send(session, row)

    async def _send(self, session: aiohttp.ClientSession, row: Any) -> None:
        from crm_sync.schema import webhook_deliveries as d

        attempt = row.attempts + 1
        body = row.payload.encode()
        headers = delivery_headers(
            row.secret, body, row.event_id, row.event_type, row.id, attempt, time.time()
        )
        status: int | None = None
        error = ""
        try:
            async with session.post(
                row.url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds),
                allow_redirects=False,
            ) as resp:
                status = resp.status
                if not 200 <= status < 300:
                    error = f"HTTP {status}: {(await resp.text(errors='replace'))[:300]}"
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        now = datetime.now(UTC)
        values: dict[str, Any] = {"attempts": attempt, "last_status": status, "last_error": error}
        if not error:
            values.update(status="delivered", delivered_at=now)
            result = "delivered"
            self.sent += 1
        elif attempt >= self.settings.max_attempts:
            values.update(status="dead")
            result = "dead"
            self.dead += 1
            logger.warning(
                "outgoing webhook %s to %s is dead after %d attempts: %s",
                row.event_id,
                row.url,
                attempt,
                error,
            )
        else:
            wait = backoff_seconds(
                attempt, self.settings.backoff_base_seconds, self.settings.backoff_max_seconds
            )
            values.update(next_attempt_at=now + timedelta(seconds=wait))
            result = "retry"
            logger.info(
                "outgoing webhook %s to %s failed (%s); retry in %.1f s",
                row.event_id,
                row.url,
                error,
                wait,
            )
        DELIVERIES.labels(result).inc()
        async with self.runtime.engine.begin() as conn:
            await conn.execute(update(d).where(d.c.id == row.id).values(**values))
        async with self._progress:
            self.attempted += 1
            self._progress.notify_all()


def components(runtime: Runtime) -> list[Component]:
    """The outbox worker (always on: subscriptions are made at run time through the API)."""
    worker = OutboxWorker(runtime)
    runtime.extras[OUTBOX_KEY] = worker
    return [worker]
