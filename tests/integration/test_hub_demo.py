"""Demo mode end to end: the looping fake PBX, the seeded people, a real login and a real pop."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import aiohttp
from websockets.asyncio.client import connect

from connector.app import Runtime, serve
from connector.demo import DEMO_PASSWORD, PLAYLIST, TRANSCRIPTS_DIR, demo_settings, seed_demo


def test_demo_command_settings_and_shipped_transcripts(tmp_path: Path) -> None:
    args = argparse.Namespace(
        host="127.0.0.1", port=0, hub_port=0, data_dir=tmp_path / "d", speed=3.0, pause=0.5
    )
    settings = demo_settings(args, environ={})
    assert settings.demo.enabled and settings.demo.speed == 3.0
    assert settings.storage.data_dir == tmp_path / "d"
    for name in (*PLAYLIST, "click_to_call"):
        assert (TRANSCRIPTS_DIR / f"{name}.ami").stat().st_size > 1000
        assert (TRANSCRIPTS_DIR / f"{name}.chunks.jsonl").exists()


async def test_demo_agent_logs_in_and_gets_a_real_pop(tmp_path: Path) -> None:
    args = argparse.Namespace(
        host="127.0.0.1", port=0, hub_port=0, data_dir=tmp_path / "d", speed=50.0, pause=0.2
    )
    settings = demo_settings(args, environ={})
    ready: asyncio.Future[tuple[Runtime, str]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(settings, on_ready=lambda rt, url: ready.set_result((rt, url)))
    )
    try:
        async with asyncio.timeout(60):
            runtime, url = await ready
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{url}/api/v1/console") as res:
                    info = await res.json()
                assert (
                    info["demo"] and {"login": "agent101"}.items() <= info["demo_logins"][0].items()
                )
                await runtime.extras["demo"].seeded.wait()
                async with http.post(
                    f"{url}/api/v1/auth/login",
                    json={"login": "agent101", "password": DEMO_PASSWORD},
                ) as res:
                    assert res.status == 200
                    token = (await res.json())["token"]
                headers = {"Authorization": f"Bearer {token}"}
                async with http.get(f"{url}/api/v1/hub", headers=headers) as res:
                    hub_url = (await res.json())["url"]
            async with connect(hub_url + f"?token={token}", proxy=None) as ws:
                card = None
                while card is None:
                    msg = json.loads(await ws.recv())
                    if msg["type"] == "call" and msg["event"]["type"] == "call.ringing":
                        assert msg["event"]["extension"] == "101"
                        card = msg["card"]
                    elif msg["type"] == "card":
                        card = msg["card"]
                    if card is not None and card["primary"] is None:
                        card = None  # a call from another number: wait for Ivan or Petr
            assert card["primary"]["name"] in ("Ivan Petrov", "Petr Sidorov")
            assert await seed_demo(runtime) is False  # seeding happens once
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
