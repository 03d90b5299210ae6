"""In-process event bus with one bounded queue per subscriber.

Publishing never blocks and never waits for a consumer: each subscriber has its own bounded
queue; when a queue is full the event is dropped *for that subscriber only*, counted, and logged.
So a slow consumer is reported and never delays the others, and memory stays bounded.

With several processes (see :mod:`connector.cluster_bus`), events made by another process are
published with ``remote=True``. Only subscriptions that asked for them (``include_remote``)
receive those: screen pops go to every process's agents, while workers that write (call log,
outbox, recordings) see each event once, on the process that made it.
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
    include_remote: bool = False
    _closed: bool = field(default=False, repr=False)

    def wants(self, event: Event, remote: bool = False) -> bool:
        """True if this subscription asked for the event's type (or for every type), and, for
        an event from another process (``remote``), for remote events."""
        if remote and not self.include_remote:
            return False
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
        #: Subscriber names that receive remote events unless ``subscribe`` says otherwise.
        self.remote_subscribers: set[str] = set()

    def subscribe(
        self,
        name: str,
        types: set[str] | frozenset[str] | None = None,
        queue_size: int | None = None,
        include_remote: bool | None = None,
    ) -> Subscription:
        """Register a consumer. ``types`` limits the event types it receives (None: all).

        ``include_remote``: also receive events from other processes (None: if ``name`` is in
        :attr:`remote_subscribers`, which is empty unless clustering is on).
        """
        size = queue_size or self._default_queue_size
        if include_remote is None:
            include_remote = name in self.remote_subscribers
        sub = Subscription(
            name=name,
            types=frozenset(types) if types is not None else None,
            queue=asyncio.Queue(maxsize=size),
            include_remote=include_remote,
        )
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to ``sub``; queued events are discarded."""
        sub._closed = True
        if sub in self._subs:
            self._subs.remove(sub)

    def publish(self, event: Event, *, remote: bool = False) -> None:
        """Deliver ``event`` to every interested subscriber without blocking.

        ``remote``: the event was made by another process (only ``include_remote``
        subscriptions get it)."""
        PUBLISHED.inc()
        for sub in self._subs:
            if not sub.wants(event, remote):
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
