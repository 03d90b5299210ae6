"""Provider recordings end to end: the webhook names a recording, the pipeline asks the provider
API (a local fake checking signatures) for a link, downloads, transcodes with ffmpeg, stores."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from contextlib import suppress
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.test_utils import TestServer

from connector.recordings import components as recording_components
from tests.integration.test_webhooks_click_to_call import accounts_with
from tests.integration.webhook_env import mango_form, post_zadarma, webhook_env, zadarma_answered

WAV = Path(__file__).parents[1] / "data" / "recordings" / "in-20261128-212111-1795900871.1.wav"


def zadarma_signed(request: web.Request) -> bool:
    query = urlencode(sorted(request.query.items()))
    data = request.path + query + hashlib.md5(query.encode()).hexdigest()
    digest = hmac.new(b"zd-api-secret", data.encode(), hashlib.sha1).hexdigest()
    return request.headers.get("Authorization") == (
        "zd-user-key:" + base64.b64encode(digest.encode()).decode()
    )


async def start_fake(asked: list[str]) -> TestServer:
    async def zadarma_record(request: web.Request) -> web.Response:
        if not zadarma_signed(request):
            return web.json_response({"status": "error"}, status=401)
        asked.append("zadarma:" + request.query["call_id"])
        link = str(request.url.with_path("/files/zd.wav").with_query(None))
        return web.json_response({"status": "success", "link": link})

    async def mango_record(request: web.Request) -> web.Response:
        form = await request.post()
        text = str(form["json"])
        sign = hashlib.sha256(("mango-product-key" + text + "mango-salt").encode()).hexdigest()
        if form["sign"] != sign:
            return web.json_response({"result": 3102}, status=401)
        asked.append("mango:" + json.loads(text)["recording_id"])
        raise web.HTTPFound(str(request.url.with_path("/files/mango.wav")))

    async def audio(request: web.Request) -> web.FileResponse:
        return web.FileResponse(WAV)

    app = web.Application()
    app.router.add_get("/v1/pbx/record/request/", zadarma_record)
    app.router.add_post("/vpbx/queries/recording/post", mango_record)
    app.router.add_get("/files/{name}", audio)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def test_zadarma_and_mango_recordings_are_fetched_and_stored(tmp_path: Path) -> None:
    asked: list[str] = []
    fake = await start_fake(asked)
    base = str(fake.make_url("")).rstrip("/")
    try:
        async with webhook_env(tmp_path, accounts_with(base)) as env:
            tasks = [asyncio.create_task(c.run()) for c in recording_components(env.runtime)]
            try:
                for fields in zadarma_answered(
                    "in_rec",
                    "79161234567",
                    "74951234567",
                    "101",
                    duration="3",
                    rec="1-1458313316.343456-101",
                ):
                    assert (await post_zadarma(env, fields)).status == 200
                ready = await env.next_event("recording.ready", timeout=30)
                assert ready.pbx == "zadarma-main" and ready.conversation_id == "in_rec"
                assert ready.duration_seconds > 2.5

                ts = int(time.time()) + 3 * 3600
                for seq, state in ((1, "Appeared"), (2, "Connected"), (3, "Disconnected")):
                    payload = {
                        "entry_id": "mg-rec",
                        "call_id": "1:1",
                        "timestamp": ts,
                        "seq": seq,
                        "call_state": state,
                        "location": "abonent",
                        "from": {"number": "79161234567"},
                        "to": {"extension": "101", "line_number": "74951234567"},
                    }
                    url = "/webhooks/mango/mg1/events/call"
                    assert (await env.client.post(url, data=mango_form(payload))).status == 200
                summary = {
                    "entry_id": "mg-rec",
                    "call_direction": 1,
                    "entry_result": 1,
                    "create_time": ts - 5,
                    "end_time": ts,
                }
                url = "/webhooks/mango/mg1/events/summary"
                assert (await env.client.post(url, data=mango_form(summary))).status == 200
                await env.next_event("call.ended", lambda e: e.conversation_id == "mg-rec")
                # the recording arrives after the call ended: it only enriches it
                added = {"entry_id": "mg-rec", "recording_id": "REC-77", "timestamp": ts}
                url = "/webhooks/mango/mg1/events/record/added"
                assert (await env.client.post(url, data=mango_form(added))).status == 200
                ready = await env.next_event("recording.ready", timeout=30)
                assert ready.pbx == "mango-main" and ready.conversation_id == "mg-rec"
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with suppress(asyncio.CancelledError):
                        await task
    finally:
        await fake.close()
    assert asked == ["zadarma:1-1458313316.343456-101", "mango:REC-77"]
