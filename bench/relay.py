"""The pop-latency floor: a bare relay from AMI to websockets, with the connector's libraries.

``python -m bench.relay AMI_PORT WS_PORT`` logs in to the AMI endpoint on AMI_PORT, splits the
byte stream on ``\\r\\n\\r\\n``, and for every ``DialBegin`` writes a small JSON frame to the
websockets of the dialed extension (agents connect to ``ws://127.0.0.1:WS_PORT/?ext=N``). No
tracker, no lookup, no authentication, no store: the least work that still does the same I/O.
"""

from __future__ import annotations

import asyncio
import json
import sys
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bench.daemon import AMI_SECRET, AMI_USER, PBX, raise_nofile

clients: dict[str, set[ServerConnection]] = {}


async def _agent(ws: ServerConnection) -> None:
    assert ws.request is not None
    ext = parse_qs(urlsplit(ws.request.path).query).get("ext", [""])[0]
    clients.setdefault(ext, set()).add(ws)
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass
    finally:
        clients[ext].discard(ws)


def _relay(block: bytes) -> None:
    if not block.startswith(b"Event: DialBegin\r\n"):
        return
    fields = dict(line.split(": ", 1) for line in block.decode().split("\r\n") if ": " in line)
    ext = fields.get("DestChannel", "").partition("/")[2].rsplit("-", 1)[0]
    frame = json.dumps(
        {
            "type": "call",
            "conversation": f"{PBX}/{fields.get('Linkedid', '')}",
            "event": {"type": "call.ringing", "extension": ext},
            "number": fields.get("CallerIDNum", ""),
        }
    )
    for ws in list(clients.get(ext, ())):
        asyncio.ensure_future(ws.send(frame))


async def main(ami_port: int, ws_port: int) -> None:
    """Serve agents and relay until killed."""
    async with serve(_agent, "127.0.0.1", ws_port, max_queue=64, ping_interval=20):
        reader, writer = await asyncio.open_connection("127.0.0.1", ami_port)
        writer.write(
            f"Action: Login\r\nActionID: 1\r\nUsername: {AMI_USER}\r\n"
            f"Secret: {AMI_SECRET}\r\nEvents: on\r\n\r\n".encode()
        )
        await reader.readline()  # banner
        pending = b""
        while True:
            data = await reader.read(65536)
            if not data:
                return
            pending += data
            *blocks, pending = pending.split(b"\r\n\r\n")
            for block in blocks:
                _relay(block)


if __name__ == "__main__":
    raise_nofile()
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
