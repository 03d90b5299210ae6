"""Scale-out: several connector processes sharing one PostgreSQL and one Redis.

Off unless ``[cluster] redis_url`` is set; a single process runs exactly as without it.

What runs where, once clustering is on:

* **Every process**: the web API and the websocket hub (agents connect to any process), the
  tracker sweeper, click-to-call (for the PBXs this process holds), and the writers that handle
  each call event on the process that made it: the call log, the recording collector, and the
  queueing half of outgoing webhooks. Every call event is made by exactly one process (the one
  holding the PBX), so these see each event once, whether or not Redis is up.
* **One process per PBX**: the AMI adapter runs only on the process holding the PBX's lease
  (:mod:`connector.cluster_lease`); the others stand by and take over once the lease expires.
* **One process in the cluster** (the holder of the :data:`~connector.cluster_lease.LEADER`
  lease): the workers that poll shared tables, which would otherwise do the same work twice:
  the webhook inbox worker (provider webhooks are stored by whichever process received them),
  the outgoing webhook sender, and the recording retention purge. While another process is the
  leader, the outgoing webhook worker of this one only queues its local events (the queue is
  idempotent per subscription and event), and the leader sends them. Their ``wake()`` (called
  when a webhook or a retry is stored) is relayed to the leader over Redis, so work stored on
  any process is picked up at once rather than at the leader's next poll.
* **Events**: :class:`~connector.cluster_bus.ClusterBridge` exchanges call events over Redis so
  the hub of every process pops every call (see :mod:`connector.cluster_bus`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from connector.cluster_lease import LEADER, LeasedComponent, LeaseState, LeaseStore

if TYPE_CHECKING:
    from connector.app import Component, Runtime

logger = logging.getLogger(__name__)

__all__ = ["LEADER_COMPONENTS", "REMOTE_SUBSCRIBERS", "arrange", "cluster_components"]

#: Components that must run on one process of the cluster (the leader).
LEADER_COMPONENTS = frozenset({"webhook-inbox", "outbox", "recordings-retention"})

#: Bus subscribers that also get events made by other processes (screen pops).
REMOTE_SUBSCRIBERS = frozenset({"hub"})


def cluster_components(runtime: Runtime) -> list[Component]:
    """The Redis bridge when clustering is on (else nothing); run before the hub subscribes."""
    cluster = runtime.settings.cluster
    if not cluster.enabled:
        return []
    from connector.cluster_bus import ClusterBridge

    runtime.bus.remote_subscribers.update(REMOTE_SUBSCRIBERS)
    node = cluster.effective_node_id
    runtime.extras["node_id"] = node
    logger.info(
        "cluster: node %s, channel %s, lease %.1f s", node, cluster.channel, cluster.lease_seconds
    )
    return [ClusterBridge(runtime)]


def _outbox_standby(component: Any) -> Any:
    """While another process sends outgoing webhooks: queue our local events for it."""
    from connector.outbox import enqueue

    async def standby() -> None:
        sub = component.subscription
        while True:
            event = await sub.get()
            try:
                if await enqueue(component.runtime.engine, event, datetime.now(UTC)):
                    component.wake()  # relayed to the leader
            except Exception:
                logger.exception("cannot queue %s %s for outgoing webhooks", event.TYPE, event.key)

    return standby


def _relay_wakes(runtime: Runtime, component: Any, lease: LeasedComponent) -> None:
    """Make ``component.wake()`` also wake the leader's worker while this process stands by."""
    bridge = runtime.extras.get("cluster_bus")
    local_wake = getattr(component, "wake", None)
    if bridge is None or not callable(local_wake):
        return
    bridge.wakers[component.name] = local_wake

    def wake() -> None:
        local_wake()
        if lease.state is not LeaseState.HOLDING:
            bridge.request_wake(component.name)

    component.wake = wake  # the web handlers call it; it now reaches the leader too


def arrange(runtime: Runtime, components: list[Component]) -> list[Component]:
    """Wrap the components that must not run on every process in their lease.

    AMI adapters (anything with a ``pbx`` whose name starts with ``ami:``) get their PBX's
    lease; :data:`LEADER_COMPONENTS` get the leader lease. Unchanged when clustering is off.
    """
    cluster = runtime.settings.cluster
    if not cluster.enabled:
        return components
    store = LeaseStore(runtime.engine)
    node = cluster.effective_node_id
    out: list[Component] = []
    leases: dict[str, LeasedComponent] = runtime.extras.setdefault("leases", {})
    for component in components:
        pbx = getattr(component, "pbx", None)
        if component.name.startswith("ami:") and isinstance(pbx, str):
            status = runtime.pbx_status.setdefault(pbx, {"name": pbx})
            wrapped = LeasedComponent(
                component, pbx, store, node, cluster.lease_seconds, status=status
            )
        elif component.name in LEADER_COMPONENTS:
            standby = _outbox_standby(component) if component.name == "outbox" else None
            wrapped = LeasedComponent(
                component, LEADER, store, node, cluster.lease_seconds, standby=standby
            )
            _relay_wakes(runtime, component, wrapped)
        else:
            out.append(component)
            continue
        leases[component.name] = wrapped
        out.append(wrapped)
    return out
