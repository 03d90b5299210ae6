"""Events between connector processes over Redis pub/sub (scale-out).

:class:`ClusterBridge` is a component. It

* subscribes to the local bus (local events only) and publishes each event on the Redis
  channel as ``{"node": <our node id>, "event": <wire form>}`` (:mod:`connector.events.wire`);
* subscribes to the channel and republishes every event of *another* node on the local bus
  with ``remote=True``: the hub (``include_remote``) pops it to agents connected here, while the
  writers (call log, outbox, recordings) ignore it, since the node that made it handles it.
  Our own messages come back from Redis and are dropped, and a remote event is never sent on
  (no loops);
* reconnects with jittered exponential backoff. While Redis is unreachable the node works
  alone (pops reach only agents connected to it): logged once per outage, shown by the gauge
  ``connector_cluster_redis_up`` and counted in ``connector_cluster_events_total``; the bridge
  never stops the daemon.

It also carries *wakes*: a provider webhook or a retried delivery stored by a process that
does not run the cluster-wide workers asks the leader's worker to look at the table now
(``{"node": ..., "wake": "webhook-inbox"}``) instead of at its next poll; see
:func:`connector.cluster.arrange`.

Bad messages on the channel (not JSON, unknown type, an observation) are logged, counted and
skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError

from connector.events.bus import Subscription
from connector.events.model import EVENT_TYPES
from connector.events.wire import WireFormatError, event_from_dict, event_to_dict

if TYPE_CHECKING:
    from connector.app import Runtime
    from connector.events.model import Event

logger = logging.getLogger(__name__)

__all__ = ["ClusterBridge", "Wake", "decode_message", "encode_message"]

REDIS_UP = Gauge("connector_cluster_redis_up", "1 while connected to the cluster's Redis")
EVENTS = Counter(
    "connector_cluster_events_total",
    "Events exchanged with other connector processes",
    ["direction", "result"],  # sent/received; ok, dropped (Redis down), invalid, own
)


@dataclass(frozen=True, slots=True)
class Wake:
    """Ask the cluster-wide worker ``worker`` to look at its table now."""

    worker: str


def encode_message(node: str, item: Event | Wake) -> str:
    """The channel message carrying ``item`` (an event, or a wake) from ``node``."""
    doc: dict[str, Any] = {"node": node}
    if isinstance(item, Wake):
        doc["wake"] = item.worker
    else:
        doc["event"] = event_to_dict(item)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def decode_message(data: str | bytes) -> tuple[str, Event | Wake]:
    """``(node, event or wake)`` of a channel message; :class:`WireFormatError` if invalid."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireFormatError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("node"), str):
        raise WireFormatError("expected an object with a string 'node'")
    if "wake" in doc:
        if not isinstance(doc["wake"], str) or not doc["wake"]:
            raise WireFormatError(f"bad wake {doc['wake']!r}")
        return doc["node"], Wake(doc["wake"])
    payload = doc.get("event")
    if not isinstance(payload, dict) or payload.get("type") not in EVENT_TYPES:
        raise WireFormatError(f"not a call event: {str(payload)[:100]!r}")
    event = event_from_dict(payload)
    return doc["node"], event  # type: ignore[return-value]  # EVENT_TYPES: an Event


class ClusterBridge:
    """Component: local bus <-> Redis channel, shared by every process of the cluster."""

    name = "cluster-bus"

    def __init__(
        self,
        runtime: Runtime,
        *,
        reconnect_min: float = 0.2,
        reconnect_max: float = 30.0,
    ) -> None:
        cluster = runtime.settings.cluster
        self.runtime = runtime
        self.url = cluster.redis_url
        self.channel = cluster.channel
        self.node_id = cluster.effective_node_id
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.connected = False
        self.sent = 0
        self.received = 0
        self.dropped = 0
        self.invalid = 0
        self.wakes_received = 0
        #: Worker name -> its local ``wake`` (registered by :func:`connector.cluster.arrange`).
        self.wakers: dict[str, Callable[[], None]] = {}
        self._wakes: asyncio.Queue[str] = asyncio.Queue(maxsize=100)
        self._changed = asyncio.Event()
        # subscribe now, so no event published before run() starts is missed
        self.subscription: Subscription = runtime.bus.subscribe(self.name, include_remote=False)
        runtime.extras["cluster_bus"] = self

    def request_wake(self, worker: str) -> None:
        """Ask ``worker`` on the leader to look at its table now (dropped if Redis is down)."""
        if self.connected:
            with contextlib.suppress(asyncio.QueueFull):  # a wake is already on its way
                self._wakes.put_nowait(worker)

    async def wait_until(self, predicate: Any, timeout: float) -> None:
        """Wait (bounded) until ``predicate()`` holds; checked at every change of the bridge."""
        async with asyncio.timeout(timeout):
            while not predicate():
                changed = self._changed
                await changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _set_connected(self, up: bool) -> None:
        if up and not self.connected:
            logger.info("cluster: connected to Redis, channel %s", self.channel)
        self.connected = up
        REDIS_UP.set(1 if up else 0)
        self._notify()

    async def run(self) -> None:
        """Bridge until cancelled, reconnecting with backoff; never raises for Redis errors."""
        attempt = 0
        try:
            while True:
                try:
                    await self._session()
                except (RedisError, OSError, TimeoutError) as exc:
                    if self.connected:
                        attempt = 0
                    reason = str(exc) or type(exc).__name__
                    if attempt == 0:  # once per outage; the retries of the same outage quietly
                        logger.error(
                            "cluster: Redis %s is unreachable (%s); node %s works alone (pops "
                            "only to agents connected here) until it is back",
                            self.url,
                            reason,
                            self.node_id,
                        )
                    else:
                        logger.debug("cluster: Redis still unreachable: %s", reason)
                self._set_connected(False)
                delay = min(self.reconnect_max, self.reconnect_min * 2**attempt)
                delay *= 0.5 + random.random() / 2
                attempt = min(attempt + 1, 30)
                await self._drop_local_for(delay)
        finally:
            self._set_connected(False)

    async def _drop_local_for(self, seconds: float) -> None:
        """While Redis is down, local events stay local: drain them (counted), then retry."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while (left := until - loop.time()) > 0:
            try:
                async with asyncio.timeout(left):
                    await self.subscription.get()
            except TimeoutError:
                return
            self.dropped += 1
            EVENTS.labels("sent", "dropped").inc()

    async def _session(self) -> None:
        client: Redis = Redis.from_url(
            self.url, socket_connect_timeout=5.0, socket_timeout=10.0, health_check_interval=5
        )
        try:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._set_connected(True)
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._send_forever(client))
                    tg.create_task(self._send_wakes(client))
                    await self._receive_forever(pubsub)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        except* (RedisError, OSError, TimeoutError) as group:
            raise group.exceptions[0] from None
        finally:
            await client.aclose()

    async def _send_forever(self, client: Redis) -> None:
        while True:
            event = await self.subscription.get()
            try:
                await client.publish(self.channel, encode_message(self.node_id, event))
            except WireFormatError as exc:
                logger.warning("cluster: cannot encode %s: %s", event.TYPE, exc)
                continue
            except (RedisError, OSError):
                self.dropped += 1
                EVENTS.labels("sent", "dropped").inc()
                raise
            self.sent += 1
            EVENTS.labels("sent", "ok").inc()
            self._notify()

    async def _send_wakes(self, client: Redis) -> None:
        while True:
            worker = await self._wakes.get()
            await client.publish(self.channel, encode_message(self.node_id, Wake(worker)))

    async def _receive_forever(self, pubsub: Any) -> None:
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is None or message.get("type") != "message":
                continue
            self.handle(message.get("data", b""))

    def handle(self, data: str | bytes) -> None:
        """One channel message: republish another node's event locally as remote (or pass a
        wake to the local worker)."""
        try:
            node, item = decode_message(data)
        except WireFormatError as exc:
            self.invalid += 1
            EVENTS.labels("received", "invalid").inc()
            logger.warning("cluster: bad message on %s skipped: %s", self.channel, exc)
            return
        if node == self.node_id:
            EVENTS.labels("received", "own").inc()
            return
        if isinstance(item, Wake):
            waker = self.wakers.get(item.worker)
            if waker is not None:
                self.wakes_received += 1
                waker()
                self._notify()
            return
        event = item
        self.received += 1
        EVENTS.labels("received", "ok").inc()
        self.runtime.bus.publish(event, remote=True)
        self._notify()
