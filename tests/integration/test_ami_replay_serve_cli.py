"""``connector replay --serve``: the fake AMI server as a command, spoken to over real TCP."""

from __future__ import annotations

import asyncio
import re
import sys

from connector.adapters.ami_codec import AmiFramer, AmiMessage, encode_action
from tests.integration.ami_harness import DATA


async def _read_until(
    reader: asyncio.StreamReader, framer: AmiFramer, done: str
) -> list[AmiMessage]:
    out: list[AmiMessage] = []
    async with asyncio.timeout(10):
        while not any(m.event == done or m.response == done for m in out):
            data = await reader.read(65536)
            assert data, "the server closed the connection"
            out.extend(framer.feed(data))
    return out


async def test_ami_replay_serve_command_answers_login_and_replays() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connector.cli",
        "replay",
        "--serve",
        str(DATA / "inbound_busy.ami"),
        "--port",
        "0",
        "--speed",
        "0",
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        async with asyncio.timeout(30):
            line = (await proc.stderr.readline()).decode()
        found = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert found, line
        port = int(found.group(1))
        for attempt in range(2):  # every login gets the transcript
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            framer = AmiFramer()
            writer.write(
                encode_action(
                    "Login", {"Username": "connector", "Secret": "connector-secret"}, "l1"
                )
            )
            messages = await _read_until(reader, framer, "Hangup")
            assert framer.banner == "Asterisk Call Manager/11.0.0"
            assert messages[0].response == "Success" and messages[0].action_id == "l1"
            assert any(m.event == "DialEnd" and m.get("DialStatus") == "BUSY" for m in messages)
            writer.write(encode_action("Ping", {}, f"p{attempt}"))
            pong = await _read_until(reader, framer, "Success")
            assert any(m.get("Ping") == "Pong" for m in pong)
            writer.close()
            await writer.wait_closed()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(encode_action("Login", {"Username": "connector", "Secret": "nope"}, "bad"))
        failed = await _read_until(reader, AmiFramer(), "Error")
        assert failed[-1].get("Message") == "Authentication failed"
        writer.close()
        await writer.wait_closed()
    finally:
        proc.terminate()
        async with asyncio.timeout(10):
            await proc.wait()
