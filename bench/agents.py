"""Many agents' websockets in one process: connect them, and time the frames they receive."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


@dataclass
class Agents:
    """Websocket clients; ``pops[conversation]`` is when its ``call.ringing`` frame arrived,
    ``cards[conversation]`` when its caller card arrived (in the pop or in a later frame)."""

    pops: dict[str, float] = field(default_factory=dict)
    cards: dict[str, float] = field(default_factory=dict)
    other: dict[str, float] = field(default_factory=dict)
    frames: int = 0
    closed: int = 0
    sockets: list[ClientConnection] = field(default_factory=list)
    on_frame: Callable[[dict[str, Any], float], None] | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def connect(self, urls: list[str], parallel: int = 50, first_frame: bool = True) -> float:
        """Connect one websocket per URL (``parallel`` handshakes at a time); each counts as
        connected once its first frame (the hub's ``hello``) arrived. Returns the seconds taken."""
        sem = asyncio.Semaphore(parallel)
        t0 = time.perf_counter()

        async def one(url: str) -> None:
            async with sem:
                ws = await connect(
                    url, max_queue=None, ping_interval=None, open_timeout=60, close_timeout=2
                )
                if first_frame:
                    await asyncio.wait_for(ws.recv(), 60)
                self.sockets.append(ws)
                self._tasks.append(asyncio.create_task(self._read(ws)))

        await asyncio.gather(*(one(u) for u in urls))
        return time.perf_counter() - t0

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                now = time.perf_counter()
                self.frames += 1
                msg = json.loads(raw)
                kind = msg.get("type")
                conv = msg.get("conversation", "")
                if kind == "call":
                    if msg["event"]["type"] == "call.ringing":
                        self.pops.setdefault(conv, now)
                        if msg.get("card") or "card_pending" not in msg:
                            self.cards.setdefault(conv, now)
                elif kind == "card":
                    self.cards.setdefault(conv, now)
                if self.on_frame is not None:
                    self.on_frame(msg, now)
        except ConnectionClosed:
            pass
        finally:
            self.closed += 1

    async def wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Poll ``condition`` every 20 ms until true or ``timeout``; returns whether it held."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if condition():
                return True
            await asyncio.sleep(0.02)
        return condition()

    async def close(self) -> None:
        """Close every socket."""
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        self.sockets.clear()
