"""Leases in the shared database: which process holds each PBX connection (scale-out).

A lease is one row of ``pbx_leases`` (``pbx``, ``holder``, ``expires_at``). The row's name is
the PBX name for a PBX connection, or :data:`LEADER` for the workers that must run once in the
whole cluster. Taking or renewing a lease is one atomic conditional statement:

* ``UPDATE ... SET holder = me, expires_at = now + ttl WHERE pbx = name AND (holder = me OR
  expires_at < now)``; one row changed means we hold it;
* if no row exists, ``INSERT``; a concurrent insert by another process fails on the primary
  key and that process simply does not hold the lease.

So at most one process holds a lease at a time, provided the processes' clocks agree (use NTP):
each compares ``expires_at`` with its own clock.

:class:`LeasedComponent` wraps an existing component (an AMI adapter, a singleton worker) and
runs it only while this process holds its lease: it retries taking the lease every third of
``lease_seconds``, runs the component once it holds it, renews at the same pace, and stops the
component at once when a renewal fails or is refused (the database is unreachable, or another
process took over). On shutdown the lease is released so another process takes over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from connector.app import Component

logger = logging.getLogger(__name__)

__all__ = [
    "LEADER",
    "LeaseHolder",
    "LeaseState",
    "LeaseStore",
    "LeasedComponent",
]

#: The lease of the cluster-wide workers (a name no PBX can have: PBX names are [A-Za-z0-9_.-]).
LEADER = "*leader"

HELD = Gauge("connector_cluster_lease_held", "1 while this process holds the lease", ["lease"])
LOST = Counter(
    "connector_cluster_lease_lost_total",
    "Leases this process lost while holding them (renewal refused or failed)",
    ["lease"],
)


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    """Who holds a lease, and until when."""

    holder: str
    expires_at: datetime


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class LeaseStore:
    """Atomic take / renew / release of leases in ``pbx_leases``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def acquire(self, name: str, holder: str, now: datetime, ttl: float) -> bool:
        """Take or renew lease ``name`` for ``holder`` until ``now + ttl``; True if held.

        Succeeds when the lease is free, expired, or already ours; never steals a live lease.
        """
        from crm_sync.schema import pbx_leases as t

        expires = now + timedelta(seconds=ttl)
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(t)
                .where(and_(t.c.pbx == name, or_(t.c.holder == holder, t.c.expires_at < now)))
                .values(holder=holder, expires_at=expires)
            )
            if result.rowcount == 1:
                return True
        try:
            async with self.engine.begin() as conn:
                await conn.execute(t.insert().values(pbx=name, holder=holder, expires_at=expires))
        except IntegrityError:
            return False  # the row exists and someone else holds it (or just took it)
        return True

    async def release(self, name: str, holder: str) -> None:
        """Give up lease ``name`` if ``holder`` holds it (another process may take it at once)."""
        from crm_sync.schema import pbx_leases as t

        async with self.engine.begin() as conn:
            await conn.execute(delete(t).where(and_(t.c.pbx == name, t.c.holder == holder)))

    async def holders(self) -> dict[str, LeaseHolder]:
        """Every lease row (expired ones included), by name."""
        from crm_sync.schema import pbx_leases as t

        async with self.engine.connect() as conn:
            rows = await conn.execute(select(t.c.pbx, t.c.holder, t.c.expires_at))
            return {r.pbx: LeaseHolder(r.holder, _aware(r.expires_at)) for r in rows}


class LeaseState(enum.StrEnum):
    """Where a :class:`LeasedComponent` stands."""

    STANDBY = "standby"  # another process holds the lease (or nobody could take it yet)
    HOLDING = "holding"  # this process holds it and runs the component
    STOPPED = "stopped"


class LeaseLost(Exception):
    """The lease could not be renewed: the wrapped component must stop at once."""


class LeasedComponent:
    """Runs ``inner`` only while this process holds lease ``lease``.

    ``status`` (if given, e.g. the PBX's entry of ``runtime.pbx_status``) gets ``lease``
    (``holding``/``standby``), ``lease_holder`` (the process holding it, as far as known) and
    ``node`` (this process). ``standby`` (optional) runs while the lease is held elsewhere and
    is cancelled when this process takes over.
    """

    def __init__(
        self,
        inner: Component,
        lease: str,
        store: LeaseStore,
        node_id: str,
        lease_seconds: float,
        *,
        status: dict[str, Any] | None = None,
        standby: Callable[[], Coroutine[Any, Any, None]] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.lease = lease
        self.store = store
        self.node_id = node_id
        self.lease_seconds = lease_seconds
        self.status = status if status is not None else {}
        self.standby = standby
        self.clock = clock
        self._state = LeaseState.STOPPED
        self.changed = asyncio.Event()
        self.status.update(node=node_id, lease=self._state.value, lease_holder="")

    @property
    def state(self) -> LeaseState:
        """Standby, holding or stopped."""
        return self._state

    @property
    def period(self) -> float:
        """Seconds between attempts to take or renew the lease."""
        return self.lease_seconds / 3

    def _set_state(self, new: LeaseState, holder: str = "") -> None:
        """The one place the state (and the known holder) changes; wakes ``changed``."""
        if new is self._state and holder == self.status.get("lease_holder"):
            return
        self.status["lease_holder"] = holder
        if new is not self._state:
            logger.info("lease %s on %s: %s -> %s", self.lease, self.node_id, self._state, new)
            self._state = new
            self.status["lease"] = new.value
            HELD.labels(self.lease).set(1 if new is LeaseState.HOLDING else 0)
        self.changed.set()
        self.changed = asyncio.Event()

    async def _try(self) -> bool:
        """One bounded attempt to take or renew the lease; False on refusal or any error."""
        try:
            async with asyncio.timeout(self.period):
                return await self.store.acquire(
                    self.lease, self.node_id, self.clock(), self.lease_seconds
                )
        except Exception as exc:  # database down or slow: we cannot claim to hold it
            logger.warning("lease %s: cannot reach the database: %s", self.lease, exc)
            return False

    async def _holder(self) -> str:
        try:
            async with asyncio.timeout(self.period):
                found = (await self.store.holders()).get(self.lease)
        except Exception:
            return ""
        if found is None or found.expires_at < self.clock():
            return ""
        return found.holder

    async def run(self) -> None:
        """Wait for the lease, run the component while it is held, repeat; until cancelled."""
        try:
            while True:
                await self._wait_for_lease()
                self._set_state(LeaseState.HOLDING, self.node_id)
                try:
                    await self._hold()
                    return  # the component finished by itself
                except LeaseLost:
                    LOST.labels(self.lease).inc()
                    logger.error(
                        "lease %s lost by %s: %s stopped; another process takes over",
                        self.lease,
                        self.node_id,
                        self.name,
                    )
        except asyncio.CancelledError:
            # shutdown: hand the lease over at once (after a failure the supervisor restarts
            # the component here, still holding it)
            if self._state is LeaseState.HOLDING:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.period):
                        await self.store.release(self.lease, self.node_id)
                    logger.info("lease %s released by %s", self.lease, self.node_id)
            raise
        finally:
            self._set_state(LeaseState.STOPPED)

    async def _wait_for_lease(self) -> None:
        standby_task: asyncio.Task[None] | None = None
        try:
            while not await self._try():
                if standby_task is None and self.standby is not None:
                    standby_task = asyncio.create_task(self.standby(), name=f"{self.name}-standby")
                self._set_state(LeaseState.STANDBY, await self._holder())
                await asyncio.sleep(self.period)  # the retry pace of the lease, not a sync
        finally:
            if standby_task is not None:
                standby_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await standby_task

    async def _hold(self) -> None:
        """Run the component; renew every period; raise LeaseLost (component stopped) if not."""
        task = asyncio.create_task(self.inner.run(), name=self.name)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.period)
                if done:
                    task.result()  # re-raise the component's failure (the supervisor restarts)
                    return
                if not await self._try():
                    raise LeaseLost(self.lease)
        finally:
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
