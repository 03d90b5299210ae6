"""The screen-pop hub: a `websockets` server that pushes call events and caller cards to agents.

The hub listens on its own port (``[hub] port``, default 8081; the console learns the URL from
``GET /api/v1/hub``). It authenticates each connection with an API token (``Authorization:
Bearer``, ``?token=`` or the ``vc_token`` cookie), then follows :mod:`connector.hub_protocol`.
Routing, numbering and replay are the pure :class:`connector.hub_state.HubState`; this module is
the I/O around it:

* one bus subscription; the events of one conversation are handled in order, and a call
  whose card is being looked up never holds up the others;
* on ``call.ringing`` the card is built at most once per conversation; the hub waits for it up
  to ``lookup_budget_ms`` and otherwise sends the pop with the number and ``card_pending``, and
  the card as soon as it is ready (so the pop always goes first);
* every connection has a bounded send queue drained by its own task; a client whose queue is
  full is disconnected (4408) and nobody else waits for it;
* revoked tokens: ``runtime.extras["on_token_revoked"](token_id)`` closes the live connections
  of a token at once (4403), and every ``heartbeat_seconds`` the hub re-checks the tokens of live
  connections in the database (revocations from other processes, deactivated users);
* the `websockets` keepalive pings every ``heartbeat_seconds`` and drops clients that stop
  answering; browsers, which cannot see those pings, send ``{"type": "ping"}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import select
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from connector.app import Component, Runtime
from connector.events.model import CallEvent, CallRinging, CallTransferred, Event, TaskCreated
from connector.hub_protocol import (
    SCOPES,
    Ack,
    CloseCode,
    Ping,
    ProtocolError,
    Subscribe,
    parse_client_message,
)
from connector.hub_state import HubState, StreamKey, remote_party
from crm_sync.auth import Principal, hash_token, resolve_token
from crm_sync.cards import build_card, display_number
from crm_sync.schema import api_tokens, users

logger = logging.getLogger(__name__)

__all__ = ["CardBuilder", "Hub", "hub_components"]

CALL_TYPES = frozenset(
    {"call.ringing", "call.answered", "call.claimed", "call.transferred", "call.ended"}
)

#: ``(number as dialed, now) -> card``; the default asks the store (crm_sync.cards.build_card).
CardBuilder = Callable[[str, datetime], Coroutine[Any, Any, dict[str, Any]]]

SEND_LATENCY = Histogram(
    "connector_hub_send_latency_seconds",
    "Time from a call event (at the PBX, or when the connector saw it) to its send to an agent",
    ["since"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONNECTIONS = Gauge("connector_hub_connections", "Live websocket connections to the hub")
DISCONNECTS = Counter(
    "connector_hub_disconnects_total", "Hub connections closed by the hub", ["reason"]
)
CLIENT_ERRORS = Counter(
    "connector_hub_client_errors_total", "Client messages the hub refused", ["code"]
)
CARDS = Counter("connector_hub_cards_total", "Caller cards built", ["outcome"])

#: Cards built at the same time at most (more wait their turn; their pops do not wait longer).
CARD_CONCURRENCY = 8

#: A client sending this many bad messages in a row is not a console: it is disconnected.
MAX_ERRORS_IN_A_ROW = 20


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


@dataclass(eq=False)
class Connection:
    """One live websocket: who it is, its stream, and its bounded send queue."""

    ws: ServerConnection
    who: Principal
    key: StreamKey
    limit: int
    pending: deque[dict[str, Any]] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    closing: str | None = None
    acked: int = 0
    errors_in_a_row: int = 0

    @property
    def user_id(self) -> int:
        """The connected user (pbx tokens never get this far)."""
        assert self.who.user_id is not None
        return self.who.user_id

    def enqueue(self, message: dict[str, Any], *, force: bool = False) -> bool:
        """Queue a message; False if the queue is full (``force`` ignores the limit)."""
        if self.closing is not None:
            return True
        if not force and len(self.pending) >= self.limit:
            return False
        self.pending.append(message)
        self.wakeup.set()
        return True


class Hub:
    """The websocket screen-pop hub (a runtime component)."""

    name = "hub"

    def __init__(
        self,
        runtime: Runtime,
        *,
        card_builder: CardBuilder | None = None,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings.hub
        self.host = host or runtime.settings.server.host
        self.port = self.settings.port if port is None else port
        self.epoch = secrets.token_hex(6)
        self.card_builder: CardBuilder = card_builder or self._card_from_store
        self.state = HubState(
            region=runtime.settings.storage.default_region,
            capacity=self.settings.replay_buffer,
            user_of=lambda pbx, ext: self.runtime.directory.user_of(pbx, ext),
            team_of=lambda uid: self.runtime.directory.team_of.get(uid, ""),
            name_of=lambda uid: self.runtime.directory.name_of.get(uid, ""),
        )
        self.connections: dict[int, list[Connection]] = {}
        self.ready = asyncio.Event()
        self.bound_port: int | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._card_tasks: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._card_slots = asyncio.Semaphore(CARD_CONCURRENCY)
        self._pop_waiting: set[str] = set()  # conversations whose pop waits for the card
        runtime.extras["hub"] = self
        runtime.extras["on_token_revoked"] = self.token_revoked

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Listen, route bus events, re-check tokens; until cancelled."""
        sub = self.runtime.bus.subscribe("hub", CALL_TYPES | {TaskCreated.TYPE})
        max_frame = max(self.settings.max_message_bytes * 4, 1 << 20)
        try:
            async with serve(
                self._handle,
                self.host,
                self.port,
                process_request=self._check_path,
                ping_interval=self.settings.heartbeat_seconds,
                ping_timeout=self.settings.heartbeat_seconds,
                max_size=max_frame,
                max_queue=64,
                # no per-message deflate: a zlib context per connection costs ~40 kB of memory
                # and compressing every frame costs CPU, for a few kB saved per pop on a LAN
                compression=None,
                close_timeout=5,
                server_header=None,
                logger=logging.getLogger("websockets.server"),
            ) as server:
                sockets = list(server.sockets)
                self.bound_port = sockets[0].getsockname()[1] if sockets else self.port
                self.runtime.extras["hub_port"] = self.bound_port
                logger.info(
                    "hub listening on ws://%s:%s%s", self.host, self.bound_port, self.settings.path
                )
                self._adopt_active_calls()
                self.ready.set()
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._watch_tokens(), name="hub-tokens")
                    while True:
                        self.dispatch_nowait(await sub.get())
        finally:
            self.runtime.bus.unsubscribe(sub)
            self.ready.clear()
            for task in [*self._card_tasks.values(), *self._lanes.values(), *self._tasks]:
                task.cancel()

    def _adopt_active_calls(self) -> None:
        """Calls already up when the hub starts (a restart) join the snapshots, with cards."""
        active = getattr(self.runtime.tracker, "active_calls", None)
        if active is None:
            return
        try:
            adopted = self.state.adopt(active(), _now())
        except Exception:
            logger.exception("hub: could not take over the calls in progress")
            return
        for key in adopted:
            view = self.state.calls[key]
            view.card_pending = True
            number = view.number.get("raw", "")
            task = asyncio.create_task(self._build_limited(number), name=f"card {key}")
            self._card_tasks[key] = task
            task.add_done_callback(self._late_card(key, number))
        if adopted:
            logger.info("hub: took over %d call(s) in progress", len(adopted))

    def _late_card(
        self, conversation: str, number: str
    ) -> Callable[[asyncio.Task[dict[str, Any]]], None]:
        def done(t: asyncio.Task[dict[str, Any]]) -> None:
            self._card_tasks.pop(conversation, None)
            view = self.state.calls.get(conversation)
            if t.cancelled() or view is None or not view.card_pending:
                return  # cancelled, the call is over, or the card went inside the pop
            if conversation in self._pop_waiting:
                return  # its pop waits for it and will carry it: never a card before its pop
            CARDS.labels("late").inc()
            self._send(self.state.card_ready(conversation, self._card_result(t, number)))

        return done

    def _check_path(self, _ws: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path.rstrip("/") != self.settings.path.rstrip("/"):
            return Response(
                HTTPStatus.NOT_FOUND,
                "Not Found",
                _headers(),
                f"the hub is at {self.settings.path}\n".encode(),
            )
        return None

    # ------------------------------------------------------------------ events

    def dispatch_nowait(self, event: Event) -> None:
        """Route an event without waiting: one lane per conversation keeps its events in order
        while a call whose card is being looked up never holds up the other calls."""
        if isinstance(event, TaskCreated):
            self._send(self.state.handle_task(event))
            return
        if event.TYPE not in CALL_TYPES:
            return
        call: CallEvent = event  # type: ignore[assignment]
        lane = f"{call.pbx}/{call.conversation_id}"
        before = self._lanes.get(lane)
        waits = isinstance(call, CallRinging | CallTransferred) and self.state.needs_card(call)
        if before is None and waits and self.settings.lookup_budget_ms == 0:
            self._begin_card(call)  # no budget: the pop goes now, the card follows
            waits = False
        if before is None and not waits:
            self._route(call)
            return
        task = asyncio.create_task(self._in_lane(before, call), name=f"hub {lane}")
        self._lanes[lane] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._lanes.get(lane) is t:
                del self._lanes[lane]

        task.add_done_callback(done)

    async def _in_lane(self, before: asyncio.Task[None] | None, call: CallEvent) -> None:
        if before is not None:
            await asyncio.wait({before})
        await self.dispatch(call)

    async def dispatch(self, event: Event) -> None:
        """Route one event to the connections that must see it, waiting for its card up to the
        lookup budget. Never raises: a failure is logged and the event skipped."""
        try:
            if isinstance(event, TaskCreated):
                self._send(self.state.handle_task(event))
                return
            if event.TYPE not in CALL_TYPES:
                return
            call: CallEvent = event  # type: ignore[assignment]
            if isinstance(call, CallRinging | CallTransferred) and self.state.needs_card(call):
                await self._start_card(call)
            self._route(call)
        except Exception:
            logger.exception("hub failed on %s; event skipped", event.TYPE)

    def _route(self, call: CallEvent) -> None:
        try:
            self._send(self.state.handle(call, _now()))
        except Exception:
            logger.exception("hub failed on %s; event skipped", call.TYPE)

    def _begin_card(self, event: CallEvent) -> asyncio.Task[dict[str, Any]]:
        """Start building the card of ``event``'s call (once per call); late unless awaited."""
        view = self.state.view_of(event, _now())
        view.card_pending = True
        number = remote_party(event).number
        task = asyncio.create_task(self._build_limited(number), name=f"card {view.key}")
        self._card_tasks[view.key] = task
        task.add_done_callback(self._late_card(view.key, number))
        return task

    async def _build_limited(self, number: str) -> dict[str, Any]:
        # a burst of calls must not flood the store (and the loop) with lookups at once
        async with self._card_slots:
            return await self.card_builder(number, _now())

    async def _start_card(self, event: CallEvent) -> None:
        task = self._begin_card(event)
        budget = self.settings.lookup_budget_ms / 1000
        conversation = f"{event.pbx}/{event.conversation_id}"
        self._pop_waiting.add(conversation)
        try:
            if budget > 0:
                await asyncio.wait({task}, timeout=budget)
        finally:
            self._pop_waiting.discard(conversation)
        if task.done() and not task.cancelled():
            # in budget: the card goes inside the pop (the done callback then finds it built)
            view = self.state.view_of(event, _now())
            view.card = self._card_result(task, remote_party(event).number)
            view.card_pending = False
            CARDS.labels("in_budget").inc()

    def _card_result(self, task: asyncio.Task[dict[str, Any]], number: str) -> dict[str, Any]:
        exc = task.exception()
        if exc is None:
            return task.result()
        CARDS.labels("failed").inc()
        logger.error("caller card for %r failed: %r", number, exc)
        view = display_number(number, self.runtime.settings.storage.default_region)
        return {
            "number": view,
            "status": "error",
            "error": "the caller could not be looked up; the CRM store did not answer",
            "matches": [],
            "primary": None,
            "create_contact": None if view["hidden"] else {"phone": view["e164"] or number},
        }

    async def _card_from_store(self, number: str, now: datetime) -> dict[str, Any]:
        async with self.runtime.engine.connect() as conn:
            return await build_card(
                conn, number, self.runtime.settings.storage.default_region, now=now
            )

    def _send(self, deliveries: list[tuple[StreamKey, dict[str, Any]]]) -> None:
        for key, message in deliveries:
            for conn in list(self.connections.get(key[0], ())):
                if conn.key == key and not conn.enqueue(message):
                    self._kick(
                        conn,
                        CloseCode.TOO_SLOW,
                        f"too slow: {conn.limit} messages waiting to be sent",
                        "slow",
                    )

    # ------------------------------------------------------------------ connections

    async def _handle(self, ws: ServerConnection) -> None:
        """One client, from authentication to close."""
        request = ws.request
        assert request is not None
        query = parse_qs(urlsplit(request.path).query)
        token, source = _token_of(request, query)
        if token is None:
            await self._refuse(ws, CloseCode.TOKEN_MISSING, "token required", "token_missing")
            return
        if source == "cookie" and not _same_host(request, self._public_hosts()):
            # a page of another site must not ride on the browser's cookie
            await self._refuse(ws, CloseCode.BAD_REQUEST, "origin not allowed", "bad_origin")
            return
        who, why = await self._authenticate(token)
        if who is None:
            code = CloseCode.TOKEN_REVOKED if why == "revoked" else CloseCode.TOKEN_INVALID
            await self._refuse(ws, code, f"token {why}", f"token_{why}")
            return
        if who.user_id is None:
            await self._refuse(
                ws, CloseCode.NOT_ALLOWED, "PBX tokens do not receive pops", "not_allowed"
            )
            return
        try:
            scope = _one(query, "scope") or "own"
            last_seq = _opt_int(_one(query, "last_seq"))
            epoch = _one(query, "epoch")
            if scope not in SCOPES:
                raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
            _check_scope(who, scope)
        except ValueError as exc:
            await self._refuse(ws, CloseCode.BAD_REQUEST, str(exc)[:120], "bad_request")
            return
        live = self.connections.setdefault(who.user_id, [])
        if len(live) >= self.settings.max_connections_per_user:
            limit = self.settings.max_connections_per_user
            await self._refuse(
                ws, CloseCode.TOO_MANY, f"too many connections (limit {limit})", "too_many"
            )
            return
        conn = Connection(ws=ws, who=who, key=(who.user_id, scope), limit=self.settings.send_queue)
        live.append(conn)
        CONNECTIONS.inc()
        directory = self.runtime.directory
        conn.enqueue(
            {
                "type": "hello",
                "user": {
                    "id": who.user_id,
                    "login": who.login,
                    "name": directory.name_of.get(who.user_id, who.login),
                    "role": who.role,
                    "team": who.team,
                    "extensions": [f"{p}/{e}" for p, e in who.extensions],
                },
                "epoch": self.epoch,
                "heartbeat_seconds": self.settings.heartbeat_seconds,
                "max_message_bytes": self.settings.max_message_bytes,
            },
            force=True,
        )
        self._resume(conn, scope, last_seq, epoch)
        sender = asyncio.create_task(self._sender(conn), name=f"hub-send-{who.login}")
        logger.info("hub: %s connected (%s, %d live)", who.login, scope, len(live))
        try:
            async for raw in ws:
                self._on_client_message(conn, raw)
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()
            if conn in live:
                live.remove(conn)
            if not live:
                self.connections.pop(who.user_id, None)
            CONNECTIONS.dec()
            logger.info("hub: %s disconnected (%s)", who.login, conn.closing or "by the client")

    async def _refuse(self, ws: ServerConnection, code: int, reason: str, label: str) -> None:
        DISCONNECTS.labels(label).inc()
        logger.info("hub: refused a connection from %s: %s", ws.remote_address, reason)
        await ws.close(code, reason)

    def _resume(
        self, conn: Connection, scope: str, last_seq: int | None, epoch: str | None
    ) -> None:
        """Queue the resync or the missed messages, then the snapshot (no await: no gap)."""
        key = (conn.user_id, scope)
        replay = self.state.replay(key, last_seq, epoch_matches=epoch in (None, self.epoch))
        if replay.resync is not None:
            conn.enqueue({"type": "resync", "reason": replay.resync, "seq": replay.seq}, force=True)
        for message in replay.messages:
            conn.enqueue({**message, "replayed": True}, force=True)
        conn.enqueue(
            {
                "type": "snapshot",
                "scope": scope,
                "seq": replay.seq,
                "epoch": self.epoch,
                "calls": self.state.snapshot(key),
            },
            force=True,
        )

    async def _sender(self, conn: Connection) -> None:
        """Drain one connection's queue onto its socket."""
        try:
            while True:
                while not conn.pending:
                    conn.wakeup.clear()
                    await conn.wakeup.wait()
                message = conn.pending.popleft()
                sent = _now()
                text = json.dumps({**message, "sent_at": sent.isoformat()}, ensure_ascii=False)
                await conn.ws.send(text)
                if message.get("type") == "call" and not message.get("replayed"):
                    for since in ("occurred", "observed"):
                        at = _parse_time(
                            message.get("pbx_time" if since == "occurred" else "observed_at")
                        )
                        if at is not None:
                            SEND_LATENCY.labels(since).observe(
                                max(0.0, (sent - at).total_seconds())
                            )
        except ConnectionClosed:
            return

    def _on_client_message(self, conn: Connection, raw: str | bytes) -> None:
        try:
            msg = parse_client_message(raw, self.settings.max_message_bytes)
        except ProtocolError as exc:
            self._client_error(conn, exc.code, exc.message)
            return
        conn.errors_in_a_row = 0
        if isinstance(msg, Ping):
            conn.enqueue({"type": "pong", "server_time": _now().isoformat()}, force=True)
        elif isinstance(msg, Ack):
            conn.acked = max(conn.acked, msg.seq)
        elif isinstance(msg, Subscribe):
            try:
                _check_scope(conn.who, msg.scope)
            except ValueError as exc:
                self._client_error(conn, "forbidden", str(exc))
                return
            conn.key = (conn.user_id, msg.scope)
            conn.enqueue({"type": "subscribed", "scope": msg.scope}, force=True)
            self._resume(conn, msg.scope, msg.last_seq, msg.epoch)

    def _client_error(self, conn: Connection, code: str, message: str) -> None:
        CLIENT_ERRORS.labels(code).inc()
        conn.errors_in_a_row += 1
        logger.info("hub: %s sent a bad message: %s", conn.who.login, message)
        conn.enqueue({"type": "error", "code": code, "message": message}, force=True)
        if conn.errors_in_a_row >= MAX_ERRORS_IN_A_ROW:
            self._kick(conn, CloseCode.BAD_REQUEST, "too many bad messages", "bad_messages")

    def _kick(self, conn: Connection, code: int, reason: str, label: str) -> None:
        """Close a connection from synchronous code (its close runs as a task)."""
        if conn.closing is not None:
            return
        conn.closing = reason
        conn.pending.clear()
        DISCONNECTS.labels(label).inc()
        logger.warning("hub: disconnecting %s: %s", conn.who.login, reason)
        live = self.connections.get(conn.user_id, [])
        if conn in live:
            live.remove(conn)
        task = asyncio.create_task(conn.ws.close(code, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ tokens

    async def _authenticate(self, token: str) -> tuple[Principal | None, str]:
        """The principal of ``token``, or None and why (``unknown``, ``revoked``, ``inactive``)."""
        async with self.runtime.engine.connect() as conn:
            who = await resolve_token(conn, token)
            if who is not None:
                return who, ""
            if len(token) > 200:
                return None, "unknown"
            row = (
                await conn.execute(
                    select(api_tokens.c.revoked_at).where(
                        api_tokens.c.token_hash == hash_token(token)
                    )
                )
            ).first()
        if row is None:
            return None, "unknown"
        return None, "revoked" if row.revoked_at is not None else "inactive"

    def token_revoked(self, token_id: int) -> int:
        """Close every live connection using ``token_id`` now; returns how many."""
        closed = 0
        for live in list(self.connections.values()):
            for conn in list(live):
                if conn.who.token_id == token_id:
                    self._kick(conn, CloseCode.TOKEN_REVOKED, "token revoked", "token_revoked")
                    closed += 1
        return closed

    async def check_tokens(self) -> int:
        """Re-check the tokens of every live connection; close the revoked ones."""
        by_token = {c.who.token_id: c for live in self.connections.values() for c in live}
        if not by_token:
            return 0
        async with self.runtime.engine.connect() as db:
            rows = await db.execute(
                select(api_tokens.c.id, api_tokens.c.revoked_at, users.c.active)
                .select_from(api_tokens.join(users, users.c.id == api_tokens.c.user_id))
                .where(api_tokens.c.id.in_(list(by_token)))
            )
            good = {r.id for r in rows if r.revoked_at is None and r.active}
        closed = 0
        for token_id in set(by_token) - good:
            closed += self.token_revoked(token_id)
        return closed

    async def _watch_tokens(self) -> None:
        # one indexed query for all live tokens: cheap enough to notice revocations quickly
        interval = min(self.settings.heartbeat_seconds, 5.0)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check_tokens()
            except Exception:
                logger.exception("hub: token check failed; retrying in %.1f s", interval)

    # ------------------------------------------------------------------ info

    def public_url(self, http_host: str, secure: bool) -> str:
        """The websocket URL browsers use, given the host of the page they loaded."""
        if self.settings.public_url:
            return self.settings.public_url
        host = http_host.rsplit(":", 1)[0] if not http_host.endswith("]") else http_host
        port = self.bound_port or self.port
        return f"{'wss' if secure else 'ws'}://{host}:{port}{self.settings.path}"

    def _public_hosts(self) -> set[str]:
        urls = (self.runtime.settings.server.public_url, self.settings.public_url)
        return {(urlsplit(u).hostname or "").lower() for u in urls if u}

    def stats(self) -> dict[str, Any]:
        """Live numbers for status pages."""
        return {
            "listening": self.ready.is_set(),
            "port": self.bound_port,
            "epoch": self.epoch,
            "connections": sum(len(v) for v in self.connections.values()),
            "users_connected": len(self.connections),
            "active_calls": len(self.state.calls),
            "uptime_seconds": round(time.time() - self.runtime.started_at, 1),
        }


def _headers() -> Any:
    from websockets.datastructures import Headers

    return Headers([("Content-Type", "text/plain; charset=utf-8")])


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _opt_int(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not text.isdigit() or len(text) > 18:
        raise ValueError("last_seq must be a non-negative integer")
    return int(text)


def _check_scope(who: Principal, scope: str) -> None:
    if scope == "team" and who.role not in ("supervisor", "admin"):
        raise ValueError(f"scope 'team' needs the supervisor role; you are {who.role}")
    if scope == "all" and who.role != "admin":
        raise ValueError(f"scope 'all' needs the admin role; you are {who.role}")


def _token_of(request: Request, query: dict[str, list[str]]) -> tuple[str | None, str]:
    """The token a handshake carries and where it was (header, query or cookie)."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer ") and header[7:].strip():
        return header[7:].strip(), "header"
    for name in ("token", "access_token"):
        value = _one(query, name)
        if value:
            return value, "query"
    raw_cookie = request.headers.get("Cookie")
    if raw_cookie:
        try:
            jar: SimpleCookie = SimpleCookie()
            jar.load(raw_cookie)
        except CookieError:
            return None, ""
        morsel = jar.get("vc_token")
        if morsel is not None and morsel.value:
            return morsel.value, "cookie"
    return None, ""


def _same_host(request: Request, public_hosts: set[str]) -> bool:
    """True unless a browser says the page that opens the socket is on another host (the
    hub's own Host, or the public host names configured for the server and the hub)."""
    origin = request.headers.get("Origin")
    if not origin:
        return True
    host = request.headers.get("Host", "")
    origin_host = (urlsplit(origin).hostname or "").lower()
    request_host = (urlsplit(f"//{host}").hostname or "").lower()
    return origin_host == request_host or origin_host in public_hosts


def hub_components(runtime: Runtime) -> list[Component]:
    """The hub as a runtime component (one per process)."""
    return [Hub(runtime)]
