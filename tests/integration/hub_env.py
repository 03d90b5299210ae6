"""A real runtime with a real hub on loopback, seeded users and tokens, and websocket clients.

Shared by the hub integration tests and the browser tests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from connector.app import Runtime, build_runtime
from connector.config import settings_from_mapping
from connector.events.model import (
    CallAnswered,
    CallClaimed,
    CallEnded,
    CallRinging,
    Direction,
    Outcome,
    Party,
)
from connector.hub import CardBuilder, Hub
from crm_sync.auth import hash_password, issue_token
from crm_sync.schema import extensions, users

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

#: login -> (role, team, extensions)
PEOPLE: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "anna": ("agent", "sales", ("101",)),
    "boris": ("agent", "support", ("102",)),
    "vera": ("agent", "sales", ("201",)),
    "gleb": ("agent", "sales", ("202",)),
    "sofia": ("supervisor", "sales", ()),
    "root": ("admin", "", ()),
}


@dataclass
class HubEnv:
    """The running runtime and hub, the seeded user ids and their tokens."""

    runtime: Runtime
    hub: Hub
    ids: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    token_ids: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The hub's websocket URL (no token)."""
        return f"ws://127.0.0.1:{self.hub.bound_port}/ws"

    def connect(self, login: str | None, query: str = "", **kw: Any) -> Any:
        """A websocket client for ``login`` (token in the query), as an async context manager."""
        params = [query] if query else []
        if login is not None:
            params.insert(0, f"token={self.tokens[login]}")
        url = self.url + ("?" + "&".join(params) if params else "")
        return connect(url, proxy=None, open_timeout=5, close_timeout=2, **kw)


async def seed_people(
    runtime: Runtime, password: str = "secret"
) -> tuple[dict[str, int], dict[str, str], dict[str, int]]:
    """Insert :data:`PEOPLE` with extensions on PBX ``pbx1``; returns ids, tokens, token ids."""
    ids: dict[str, int] = {}
    tokens: dict[str, str] = {}
    token_ids: dict[str, int] = {}
    pw = hash_password(password)
    async with runtime.engine.begin() as conn:
        for login, (role, team, exts) in PEOPLE.items():
            result = await conn.execute(
                users.insert().values(
                    login=login,
                    name=login.capitalize(),
                    role=role,
                    team=team,
                    active=True,
                    password_hash=pw,
                    created_at=T0,
                    updated_at=T0,
                )
            )
            pk = result.inserted_primary_key
            assert pk is not None
            uid = int(pk[0])
            ids[login] = uid
            for ext in exts:
                await conn.execute(
                    extensions.insert().values(user_id=uid, pbx="pbx1", extension=ext)
                )
            token_ids[login], tokens[login] = await issue_token(conn, uid, "test")
    await runtime.reload_directory()
    return ids, tokens, token_ids


@asynccontextmanager
async def running_hub(
    tmp_path: Path,
    hub_settings: dict[str, Any] | None = None,
    card_builder: CardBuilder | None = None,
) -> AsyncIterator[HubEnv]:
    """A runtime on a fresh SQLite file with a hub listening on an ephemeral port."""
    raw = {
        "storage": {"data_dir": str(tmp_path)},
        "hub": {"port": 0, "heartbeat_seconds": 5, **(hub_settings or {})},
    }
    settings = settings_from_mapping(raw, base_dir=tmp_path, environ={})
    runtime = await build_runtime(settings)
    ids, tokens, token_ids = await seed_people(runtime)
    hub = Hub(runtime, card_builder=card_builder, host="127.0.0.1")
    task = asyncio.create_task(hub.run())
    try:
        async with asyncio.timeout(10):
            await hub.ready.wait()
        yield HubEnv(runtime, hub, ids, tokens, token_ids)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runtime.engine.dispose()


async def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """The next message, decoded."""
    async with asyncio.timeout(timeout):
        raw = await ws.recv()
    data: dict[str, Any] = json.loads(raw)
    return data


async def recv_type(ws: ClientConnection, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    """Skip messages until one of type ``kind`` (bounded)."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await recv(ws, timeout)
            if msg["type"] == kind:
                return msg


async def handshake(ws: ClientConnection) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read the ``hello`` and the ``snapshot`` that follow a connect (and any resync between)."""
    hello = await recv(ws)
    assert hello["type"] == "hello", hello
    snap = await recv_type(ws, "snapshot")
    return hello, snap


async def ping_is_next(ws: ClientConnection) -> None:
    """Assert that nothing else is queued for ``ws``: a ping is answered by the next message."""
    await ws.send(json.dumps({"type": "ping"}))
    msg = await recv(ws)
    assert msg["type"] == "pong", f"expected nothing before the pong, got {msg}"


def ringing(
    conv: str,
    ext: str,
    number: str = "+79161234567",
    name: str = "",
    at: datetime = T0,
    queue: str = "",
) -> CallRinging:
    """A call.ringing on pbx1."""
    return CallRinging(
        key=f"{conv}:ring:{ext}",
        pbx="pbx1",
        conversation_id=conv,
        occurred_at=at,
        observed_at=at + timedelta(milliseconds=20),
        leg_id=f"{conv}-{ext}",
        direction=Direction.INBOUND,
        caller=Party(number, name),
        callee=Party("74951234500", ""),
        extension=ext,
        queue=queue,
    )


def answered(conv: str, ext: str, at: datetime = T0) -> CallAnswered:
    """A call.answered on pbx1."""
    return CallAnswered(
        key=f"{conv}:ans:{ext}",
        pbx="pbx1",
        conversation_id=conv,
        occurred_at=at,
        observed_at=at,
        leg_id=f"{conv}-{ext}",
        direction=Direction.INBOUND,
        caller=Party("+79161234567"),
        extension=ext,
    )


def claimed(conv: str, ext: str, by: str, at: datetime = T0) -> CallClaimed:
    """A call.claimed on pbx1: ``ext`` lost the call to ``by``."""
    return CallClaimed(
        key=f"{conv}:claim:{ext}",
        pbx="pbx1",
        conversation_id=conv,
        occurred_at=at,
        observed_at=at,
        leg_id=f"{conv}-{ext}",
        extension=ext,
        claimed_by_extension=by,
    )


def ended(conv: str, rang: tuple[str, ...], by: str = "", at: datetime = T0) -> CallEnded:
    """A call.ended on pbx1."""
    return CallEnded(
        key=f"{conv}:end",
        pbx="pbx1",
        conversation_id=conv,
        occurred_at=at,
        observed_at=at,
        direction=Direction.INBOUND,
        outcome=Outcome.ANSWERED if by else Outcome.NO_ANSWER,
        caller=Party("+79161234567"),
        rang=rang,
        answered_by=by,
        talk_seconds=12.0 if by else 0.0,
        ring_seconds=3.0,
    )


async def quick_card(number: str, now: datetime) -> dict[str, Any]:
    """A card builder that answers at once without the store (routing tests)."""
    return {"status": "unknown", "number": {"raw": number}, "matches": [], "built": now.isoformat()}
