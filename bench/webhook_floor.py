"""The webhooks floor: the same aiohttp app answering 200 without work.

``python -m bench.webhook_floor PORT`` serves ``POST /webhooks/{provider}/{account}`` on
127.0.0.1:PORT: it reads the body and answers ``200``; no signature check, no store.
"""

from __future__ import annotations

import sys

from aiohttp import web


async def _accept(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(text="OK")


def main(port: int) -> None:
    """Serve until killed."""
    app = web.Application()
    app.router.add_post("/webhooks/{provider}/{account}", _accept)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
