"""``GET /api/v1/recordings/{id}``: stream a stored recording with HTTP Range, audited.

Who may listen: admins; the agents who took part in the call (rang, answered, talked last);
supervisors of a team one of those agents belongs to. Everyone else gets 403. Every request
that serves audio writes ``recording.play`` to the audit log (who, when, which recording, which
byte range).

The id is the only thing taken from the request: it must be a decimal number (else 400), the
stored relative path is resolved and must stay inside the recordings directory (else 404).
Range handling (206, ``Content-Range``, 416 for unsatisfiable ranges) is aiohttp's
:class:`~aiohttp.web.FileResponse`, which also reads the file off the event loop.

``GET /api/v1/recordings/{id}/info`` answers the metadata as JSON (same permission, not audited).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.recordings import RecordingStatus, resolve_stored
from connector.web.auth import principal
from connector.web.errors import bad_request, forbidden, not_found
from connector.web.keys import RUNTIME
from connector.web.openapi import ApiRoute, add_routes
from crm_sync.auth import Principal
from crm_sync.schema import activities, activity_participants, recordings, users

logger = logging.getLogger(__name__)

__all__ = ["may_hear", "setup"]

_MAX_ID_DIGITS = 18


def may_hear(who: Principal, participants: Iterable[tuple[int, str]]) -> bool:
    """True if ``who`` may play a recording of a call with these (user id, team) participants."""
    if who.role == "admin":
        return True
    if who.user_id is None or who.role not in ("agent", "supervisor"):
        return False
    people = list(participants)
    if any(uid == who.user_id for uid, _ in people):
        return True
    if who.role == "supervisor" and who.team:
        return any(team == who.team for _, team in people)
    return False


def parse_recording_id(raw: str) -> int:
    """The recording id from the URL, or 400 if it is not a plain decimal number."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > _MAX_ID_DIGITS:
        raise bad_request("a recording id is a number", field="id")
    return int(raw)


async def _participants(conn: AsyncConnection, pbx: str, conversation_id: str) -> list[Any]:
    rows = await conn.execute(
        select(users.c.id, users.c.team)
        .select_from(
            activities.join(
                activity_participants, activity_participants.c.activity_id == activities.c.id
            ).join(users, users.c.id == activity_participants.c.user_id)
        )
        .where(activities.c.pbx == pbx, activities.c.conversation_id == conversation_id)
    )
    return [(r.id, r.team) for r in rows]


async def _load_allowed(request: web.Request) -> tuple[Principal, Any]:
    who = principal(request)
    rec_id = parse_recording_id(request.match_info["id"])
    runtime = request.app[RUNTIME]
    async with runtime.engine.connect() as conn:
        row = (await conn.execute(select(recordings).where(recordings.c.id == rec_id))).first()
        if row is None:
            raise not_found(f"there is no recording {rec_id}")
        people = await _participants(conn, row.pbx, row.conversation_id)
    if not may_hear(who, ((int(uid), str(team or "")) for uid, team in people)):
        raise forbidden("only admins, the agents on the call and their supervisors may listen")
    return who, row


def _range_satisfiable(request: web.Request, size: int) -> bool:
    """False for a malformed Range header or one that selects no byte of the file."""
    if "Range" not in request.headers:
        return True
    try:
        rng = request.http_range
    except ValueError:
        return False
    start, stop = rng.start, rng.stop
    if start is None:
        return True
    if start < 0:  # a suffix: the last -start bytes
        return size > 0
    return start < size and (stop is None or stop > start)


async def get_recording(request: web.Request) -> web.StreamResponse:
    """Stream the audio (Range supported) and audit the play."""
    who, row = await _load_allowed(request)
    if row.status != RecordingStatus.READY or not row.path:
        raise not_found(f"recording {row.id} has no audio ({row.status})")
    directory = request.app[RUNTIME].settings.recordings.directory
    path = resolve_stored(directory, row.path)
    if path is None:
        logger.error("recording %s has a path outside the recordings directory", row.id)
        raise not_found(f"recording {row.id} has no audio")
    if not path.is_file():
        raise not_found(f"the file of recording {row.id} is gone")
    size = path.stat().st_size
    if not _range_satisfiable(request, size):
        # refused before anything is sent, so nothing was played: not audited
        return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
    from crm_sync.audit import record

    async with request.app[RUNTIME].engine.begin() as conn:
        await record(
            conn,
            who.user_id,
            "recording.play",
            "recording",
            row.id,
            {
                "login": who.login,
                "pbx": row.pbx,
                "conversation_id": row.conversation_id,
                "range": request.headers.get("Range", ""),
                "method": request.method,
            },
        )
    logger.info("recording %s played by %s", row.id, who.login)
    return web.FileResponse(
        path,
        headers={
            "Content-Type": row.content_type or "application/octet-stream",
            "Content-Disposition": f'inline; filename="recording-{row.id}.{row.format or "bin"}"',
            "Cache-Control": "private, no-cache",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def get_recording_info(request: web.Request) -> web.Response:
    """Metadata of one recording (JSON)."""
    _who, row = await _load_allowed(request)
    return web.json_response(
        {
            "id": row.id,
            "pbx": row.pbx,
            "conversation_id": row.conversation_id,
            "status": row.status,
            "format": row.format,
            "content_type": row.content_type,
            "duration_seconds": row.duration_seconds,
            "size_bytes": row.size_bytes,
            "sha256": row.sha256,
            "created_at": row.created_at.isoformat() if row.created_at else None,
            "url": f"/api/v1/recordings/{row.id}",
        }
    )


def setup(app: web.Application) -> None:
    """Add the recording routes."""
    add_routes(
        app,
        [
            ApiRoute(
                "GET",
                "/api/v1/recordings/{id}",
                get_recording,
                "Stream a recording (HTTP Range supported; every play is audited)",
                "recordings",
                description=__doc__ or "",
                responses={206: "partial content", 416: "range not satisfiable"},
            ),
            ApiRoute(
                "GET",
                "/api/v1/recordings/{id}/info",
                get_recording_info,
                "Metadata of a recording",
                "recordings",
            ),
        ],
    )
