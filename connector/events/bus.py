"""In-process event bus with one bounded queue per subscriber.

Publishing never blocks and never waits for a consumer: each subscriber has its own bounded
queue; when a queue is full the event is dropped *for that subscriber only*, counted, and logged.
So a slow consumer is reported and never delays the others, and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from prometheus_client import Counter

from connector.events.model import Event

logger = logging.getLogger(__name__)

__all__ = ["EventBus", "Subscription"]

DROPPED = Counter(
    "connector_bus_dropped_events_total",
    "Events dropped because a subscriber's queue was full",
    ["subscriber"],
)
PUBLISHED = Counter("connector_bus_published_events_total", "Events published on the bus")


@dataclass(eq=False)
class Subscription:
    """One consumer's view of the bus: an async iterator over the events it wants."""

    name: str
    types: frozenset[str] | None
    queue: asyncio.Queue[Event]
    dropped: int = 0
    _closed: bool = field(default=False, repr=False)

    def wants(self, event: Event) -> bool:
        """True if this subscription asked for the event's type (or for every type)."""
        return self.types is None or event.TYPE in self.types

    async def get(self) -> Event:
        """Wait for the next event."""
        return await self.queue.get()

    def get_nowait(self) -> Event | None:
        """The next event if one is queued, else None."""
        try:
            return self.queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()


class EventBus:
    """Fan-out of events to subscribers with bounded, per-subscriber queues."""

    def __init__(self, default_queue_size: int = 10_000) -> None:
        self._subs: list[Subscription] = []
        self._default_queue_size = default_queue_size

    def subscribe(
        self,
        name: str,
        types: set[str] | frozenset[str] | None = None,
        queue_size: int | None = None,
    ) -> Subscription:
        """Register a consumer. ``types`` limits the event types it receives (None: all)."""
        size = queue_size or self._default_queue_size
        sub = Subscription(
            name=name,
            types=frozenset(types) if types is not None else None,
            queue=asyncio.Queue(maxsize=size),
        )
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to ``sub``; queued events are discarded."""
        sub._closed = True
        if sub in self._subs:
            self._subs.remove(sub)

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every interested subscriber without blocking."""
        PUBLISHED.inc()
        for sub in self._subs:
            if not sub.wants(event):
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.dropped += 1
                DROPPED.labels(sub.name).inc()
                if sub.dropped == 1 or sub.dropped % 1000 == 0:
                    logger.warning(
                        "subscriber %s is too slow: %d events dropped so far", sub.name, sub.dropped
                    )

    def publish_all(self, events: list[Event]) -> None:
        """Publish several events in order."""
        for event in events:
            self.publish(event)

    @property
    def subscribers(self) -> list[Subscription]:
        """The current subscriptions (for status pages and metrics)."""
        return list(self._subs)
