"""Recording pipeline: collect, transcode, store, announce, expire.

Sources:

* **Asterisk MixMonitor files**, named by the call's ``MIXMONITOR_FILENAME`` (``call.ended``
  carries it as ``recording``) under the PBX's ``recordings_dir``. Asterisk writes the file until
  the channel hangs up, so collection starts on ``call.ended`` and then waits until the file's
  size and modification time stop changing. A header-only WAV (44 bytes, no samples) is what an
  unanswered call leaves: the recording's status becomes ``empty``.
* **Provider URLs** (``http://`` or ``https://`` references, or ``zadarma:``/``mango:``
  references whose one-time link :func:`connector.adapters.provider_clients.recording_url`
  asks the provider's API for), downloaded with a timeout, retries and a size limit
  (``[recordings] max_download_bytes``).

Every source is transcoded with pydub/ffmpeg to MP3 or Opus (``[recordings] format``) in a worker
thread (:func:`asyncio.to_thread` in :meth:`RecordingPipeline._transcode_off_loop` is the only
crossing into threads), measured (duration) and hashed (SHA-256 of the stored file), stored as
``YYYY/MM/DD/<id>.<ext>`` under ``[recordings] directory`` and announced with
``recording.ready``. Rows live in the ``recordings`` table, one per (pbx, conversation, source):
collecting the same call twice does nothing the second time.

Statuses: ``pending`` -> ``ready`` | ``empty`` | ``failed``; ``ready`` -> ``deleted`` by retention.

Exceptions (all :class:`RecordingError`)::

    RecordingError
     +-- RecordingSourceError      the source is missing, unreadable or has a bad name
     +-- RecordingDownloadError    the provider URL could not be fetched (after retries)
     |    +-- RecordingTooLarge    the download exceeded max_download_bytes
     +-- RecordingTranscodeError   ffmpeg could not decode or encode it
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import aiohttp
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.config import RecordingSettings
from connector.events.model import CallEnded, Event, Outcome, RecordingReady

if TYPE_CHECKING:
    from connector.app import Component, Runtime

logger = logging.getLogger(__name__)

__all__ = [
    "CONTENT_TYPES",
    "RecordingDownloadError",
    "RecordingError",
    "RecordingPipeline",
    "RecordingSourceError",
    "RecordingStatus",
    "RecordingTooLarge",
    "RecordingTranscodeError",
    "StoredAudio",
    "components",
    "download",
    "is_header_only_wav",
    "purge_expired",
    "resolve_stored",
    "storage_path",
    "transcode",
]

CONTENT_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg"}
_WAV_HEADER_BYTES = 44
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,250}")


class RecordingError(Exception):
    """Something went wrong with one recording (the pipeline logs it and goes on)."""


class RecordingSourceError(RecordingError):
    """The source file is missing, unreadable, or its name is not acceptable."""


class RecordingDownloadError(RecordingError):
    """A provider URL could not be downloaded."""


class RecordingTooLarge(RecordingDownloadError):
    """A download grew beyond the configured size limit."""


class RecordingTranscodeError(RecordingError):
    """ffmpeg failed to decode the source or to encode the result."""


class RecordingStatus(enum.StrEnum):
    """Where a recording is in its life."""

    PENDING = "pending"
    READY = "ready"
    EMPTY = "empty"
    FAILED = "failed"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class StoredAudio:
    """A transcoded recording on disk (``path`` relative to the recordings directory)."""

    path: str
    format: str
    content_type: str
    duration_seconds: float
    size_bytes: int
    sha256: str


# ---------------------------------------------------------------------------- pure-ish pieces


def storage_path(recording_id: int, day: datetime, fmt: str) -> PurePosixPath:
    """Where recording ``recording_id`` of ``day`` lives, relative to the recordings directory."""
    return PurePosixPath(f"{day:%Y}/{day:%m}/{day:%d}/{recording_id}.{fmt}")


def resolve_stored(directory: Path, relative: str) -> Path | None:
    """The absolute file for a stored relative path, or None if it would leave ``directory``."""
    root = directory.resolve()
    if not relative or relative.startswith(("/", "\\")) or "\x00" in relative:
        return None
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root) or candidate == root:
        return None
    return candidate


def is_header_only_wav(head: bytes, size: int) -> bool:
    """True if a WAV file holds no samples: 44 bytes or less, or a ``data`` chunk of length 0.

    ``head`` is the first bytes of the file (64 are enough), ``size`` its length.
    """
    if size <= _WAV_HEADER_BYTES:
        return True
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return False
    pos = 12
    while pos + 8 <= len(head):
        chunk, length = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
        if chunk == b"data":
            return length == 0 and size <= pos + 8
        pos += 8 + length + (length & 1)
    return False


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def transcode(
    src: Path, directory: Path, relative: PurePosixPath, fmt: str, bitrate: str
) -> StoredAudio | None:
    """Decode ``src`` with ffmpeg and store it as ``fmt`` at ``directory/relative`` (blocking).

    Returns None when the source holds no audio (header-only WAV, zero length). The result is
    written to a temporary name first and renamed, so a half-written file is never served.
    """
    from pydub import AudioSegment
    from pydub.exceptions import CouldntDecodeError, CouldntEncodeError

    try:
        size = src.stat().st_size
        with src.open("rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise RecordingSourceError(f"cannot read {src.name}: {exc.strerror}") from exc
    if is_header_only_wav(head, size):
        return None
    try:
        segment = AudioSegment.from_file(str(src))
    except (CouldntDecodeError, IndexError, OSError) as exc:
        raise RecordingTranscodeError(f"ffmpeg cannot decode {src.name}: {exc}") from exc
    if len(segment) == 0:
        return None
    dest = directory / relative
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    codec = "libopus" if fmt == "opus" else "libmp3lame"
    try:
        segment.export(
            str(tmp), format="opus" if fmt == "opus" else "mp3", codec=codec, bitrate=bitrate
        )
        os.replace(tmp, dest)
    except (CouldntEncodeError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise RecordingTranscodeError(f"ffmpeg cannot encode {src.name} to {fmt}: {exc}") from exc
    return StoredAudio(
        path=str(relative),
        format=fmt,
        content_type=CONTENT_TYPES[fmt],
        duration_seconds=round(len(segment) / 1000.0, 3),
        size_bytes=dest.stat().st_size,
        sha256=_sha256_of(dest),
    )


# ---------------------------------------------------------------------------- I/O glue


async def wait_until_stable(
    path: Path, *, interval: float, timeout: float, appear: bool = True
) -> bool:
    """Wait until ``path`` exists and its size and mtime stay the same for one ``interval``.

    Returns False if that does not happen within ``timeout`` seconds. MixMonitor keeps writing
    until the channel hangs up and may flush a moment after ``call.ended``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: tuple[int, int] | None = None
    while True:
        try:
            st = path.stat()
            now_sig: tuple[int, int] | None = (st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            now_sig = None
            if not appear:
                return False
        if now_sig is not None and now_sig == last:
            return True
        last = now_sig
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(interval)


async def download(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    *,
    timeout: float,
    retries: int,
    max_bytes: int,
    backoff: float = 0.5,
) -> int:
    """Download ``url`` into ``dest``; returns the number of bytes.

    Each attempt has ``timeout`` seconds in total; connection errors, timeouts and 5xx answers
    are retried ``retries`` times with exponential backoff; 4xx answers and a body larger than
    ``max_bytes`` are not. Raises :class:`RecordingDownloadError` / :class:`RecordingTooLarge`.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await _download_once(session, url, dest, timeout=timeout, max_bytes=max_bytes)
        except RecordingTooLarge:
            dest.unlink(missing_ok=True)
            raise
        except _Retryable as exc:
            dest.unlink(missing_ok=True)
            if attempt > retries:
                raise RecordingDownloadError(
                    f"download failed after {attempt} attempt(s): {exc}"
                ) from exc
            logger.warning("recording download attempt %d failed (%s); retrying", attempt, exc)
            await asyncio.sleep(backoff * 2 ** (attempt - 1))


class _Retryable(Exception):
    pass


async def _download_once(
    session: aiohttp.ClientSession, url: str, dest: Path, *, timeout: float, max_bytes: int
) -> int:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            if resp.status >= 500:
                raise _Retryable(f"HTTP {resp.status}")
            if resp.status >= 400:
                raise RecordingDownloadError(f"HTTP {resp.status} from the provider")
            if resp.content_length is not None and resp.content_length > max_bytes:
                raise RecordingTooLarge(
                    f"the recording is {resp.content_length} bytes, more than {max_bytes}"
                )
            total = 0
            dest.parent.mkdir(parents=True, exist_ok=True)
            with dest.open("wb") as fh:
                async for block in resp.content.iter_chunked(1 << 16):
                    total += len(block)
                    if total > max_bytes:
                        raise RecordingTooLarge(f"the recording is larger than {max_bytes} bytes")
                    fh.write(block)
            return total
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise _Retryable(str(exc) or type(exc).__name__) from exc


async def purge_expired(
    engine: AsyncEngine, directory: Path, retention_days: int, now: datetime
) -> int:
    """Delete stored recordings older than ``retention_days`` (0 keeps everything).

    Each deletion is logged; the row stays with status ``deleted`` so the call log still says
    there was a recording. Returns how many were deleted.
    """
    from crm_sync.schema import recordings

    if retention_days <= 0:
        return 0
    cutoff = now - timedelta(days=retention_days)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(recordings.c.id, recordings.c.path, recordings.c.created_at).where(
                    recordings.c.status == RecordingStatus.READY,
                    recordings.c.created_at < cutoff,
                )
            )
        ).all()
    deleted = 0
    for row in rows:
        target = resolve_stored(directory, row.path or "")
        if target is not None:
            try:
                target.unlink(missing_ok=True)
            except OSError as exc:
                logger.error("retention: cannot delete recording %s: %s", row.id, exc.strerror)
                continue
        async with engine.begin() as conn:
            await conn.execute(
                update(recordings)
                .where(recordings.c.id == row.id)
                .values(status=RecordingStatus.DELETED, path=None)
            )
        logger.info(
            "retention: deleted recording %s (%s, from %s, older than %d days)",
            row.id,
            row.path,
            row.created_at,
            retention_days,
        )
        deleted += 1
    return deleted


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class RecordingPipeline:
    """Collects recordings of ended calls and stores them (one instance per daemon)."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: RecordingSettings,
        source_dirs: dict[str, Path | None],
        publish: Callable[[Event], None],
        *,
        stable_interval: float = 0.5,
        appear_timeout: float = 30.0,
        download_backoff: float = 0.5,
        session_factory: Callable[[], aiohttp.ClientSession] = aiohttp.ClientSession,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.directory = settings.directory
        self.source_dirs = source_dirs
        self.publish = publish
        self.stable_interval = stable_interval
        self.appear_timeout = appear_timeout
        self.download_backoff = download_backoff
        self._session_factory = session_factory

    async def collect_call(self, event: CallEnded) -> int | None:
        """Collect the recording of an ended call (if it has one); returns the recording id."""
        if not event.recording:
            return None
        return await self.collect(
            pbx=event.pbx,
            conversation_id=event.conversation_id,
            source=event.recording,
            day=event.started_at or event.occurred_at,
            answered=event.outcome == Outcome.ANSWERED,
            event_key=event.key,
        )

    async def collect(
        self,
        *,
        pbx: str,
        conversation_id: str,
        source: str,
        day: datetime,
        answered: bool = True,
        event_key: str = "",
    ) -> int | None:
        """Collect one recording by source (MixMonitor file name or provider URL).

        Idempotent: a source already collected (ready, empty or deleted) is left alone. Errors
        are logged and stored on the row (status ``failed``); nothing is raised.
        """
        from crm_sync.schema import recordings

        rec_id, status = await self._claim(pbx, conversation_id, source)
        if status not in (RecordingStatus.PENDING, RecordingStatus.FAILED):
            logger.debug(
                "recording %s of %s/%s is already %s", rec_id, pbx, conversation_id, status
            )
            return rec_id
        day = _aware(day) or datetime.now(UTC)
        try:
            stored = await self._fetch_and_transcode(rec_id, pbx, source, day, answered)
        except RecordingError as exc:
            logger.error("recording %s of %s/%s failed: %s", rec_id, pbx, conversation_id, exc)
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(recordings)
                    .where(recordings.c.id == rec_id)
                    .values(status=RecordingStatus.FAILED, error=str(exc)[:2000])
                )
            return rec_id
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            if stored is None:
                await conn.execute(
                    update(recordings)
                    .where(recordings.c.id == rec_id)
                    .values(status=RecordingStatus.EMPTY, error="", ready_at=now)
                )
            else:
                await conn.execute(
                    update(recordings)
                    .where(recordings.c.id == rec_id)
                    .values(
                        status=RecordingStatus.READY,
                        path=stored.path,
                        format=stored.format,
                        content_type=stored.content_type,
                        duration_seconds=stored.duration_seconds,
                        size_bytes=stored.size_bytes,
                        sha256=stored.sha256,
                        error="",
                        ready_at=now,
                    )
                )
                await self._link_activity(conn, pbx, conversation_id, rec_id)
        if stored is None:
            logger.info("recording %s of %s/%s holds no audio", rec_id, pbx, conversation_id)
            return rec_id
        logger.info(
            "recording %s of %s/%s stored: %.1f s, %d bytes",
            rec_id,
            pbx,
            conversation_id,
            stored.duration_seconds,
            stored.size_bytes,
        )
        self.publish(
            RecordingReady(
                key=f"recording.ready:{pbx}:{conversation_id}:{rec_id}",
                pbx=pbx,
                conversation_id=conversation_id,
                occurred_at=now,
                observed_at=now,
                recording_id=rec_id,
                duration_seconds=stored.duration_seconds,
                content_type=stored.content_type,
            )
        )
        return rec_id

    async def _claim(self, pbx: str, conversation_id: str, source: str) -> tuple[int, str]:
        from crm_sync.schema import recordings

        key = (
            recordings.c.pbx == pbx,
            recordings.c.conversation_id == conversation_id,
            recordings.c.source == source,
        )
        try:
            async with self.engine.begin() as conn:
                result = await conn.execute(
                    recordings.insert().values(
                        pbx=pbx,
                        conversation_id=conversation_id,
                        source=source,
                        status=RecordingStatus.PENDING,
                        created_at=datetime.now(UTC),
                    )
                )
                pk = result.inserted_primary_key
                assert pk is not None
                return int(pk[0]), RecordingStatus.PENDING
        except IntegrityError:
            async with self.engine.connect() as conn:
                row = (
                    await conn.execute(select(recordings.c.id, recordings.c.status).where(*key))
                ).one()
            return int(row.id), str(row.status)

    @staticmethod
    async def _link_activity(conn: Any, pbx: str, conversation_id: str, rec_id: int) -> None:
        from crm_sync.schema import activities

        await conn.execute(
            update(activities)
            .where(activities.c.pbx == pbx, activities.c.conversation_id == conversation_id)
            .values(recording_id=rec_id)
        )

    async def _fetch_and_transcode(
        self, rec_id: int, pbx: str, source: str, day: datetime, answered: bool
    ) -> StoredAudio | None:
        relative = storage_path(rec_id, day, self.settings.format)
        remote = source.startswith(("http://", "https://"))
        if not remote and _is_provider_reference(source):
            source = await _provider_url(source)
            remote = True
        if remote:
            staging = self.directory / ".incoming" / f"{rec_id}.download"
            try:
                async with self._session_factory() as session:
                    await download(
                        session,
                        source,
                        staging,
                        timeout=self.settings.download_timeout,
                        retries=self.settings.download_retries,
                        max_bytes=self.settings.max_download_bytes,
                        backoff=self.download_backoff,
                    )
                return await self._transcode_off_loop(staging, relative)
            finally:
                staging.unlink(missing_ok=True)
        src = self._source_file(pbx, source)
        # An unanswered call leaves at most a header-only file; do not wait for one that is
        # not there.
        ready = await wait_until_stable(
            src,
            interval=self.stable_interval,
            timeout=self.appear_timeout,
            appear=answered,
        )
        if not ready:
            if not answered:
                return None
            raise RecordingSourceError(f"{src.name} did not appear or settle in time")
        stored = await self._transcode_off_loop(src, relative)
        if self.settings.remove_original:
            try:
                src.unlink()
                logger.debug("removed original %s", src.name)
            except OSError as exc:
                logger.warning("cannot remove original %s: %s", src.name, exc.strerror)
        return stored

    async def _transcode_off_loop(self, src: Path, relative: PurePosixPath) -> StoredAudio | None:
        # The one place where blocking audio work crosses into a thread.
        return await asyncio.to_thread(
            transcode, src, self.directory, relative, self.settings.format, self.settings.bitrate
        )

    def _source_file(self, pbx: str, source: str) -> Path:
        base = self.source_dirs.get(pbx)
        if base is None:
            raise RecordingSourceError(f"pbx {pbx!r} has no recordings_dir configured")
        name = PurePosixPath(source.replace("\\", "/")).name
        if not _SAFE_NAME.fullmatch(name) or name in (".", ".."):
            raise RecordingSourceError(f"unacceptable recording file name {name!r}")
        return base / name


def _is_provider_reference(source: str) -> bool:
    from connector.adapters.provider_clients import is_provider_reference

    return is_provider_reference(source)


async def _provider_url(reference: str) -> str:
    """The download link of a cloud PBX recording (``zadarma:<account>:<id>``...)."""
    from connector.adapters.errors import ProviderApiError
    from connector.adapters.provider_clients import recording_url

    try:
        return await recording_url(reference)
    except ProviderApiError as exc:
        raise RecordingDownloadError(f"no download link for {reference[:100]}: {exc}") from exc


# ---------------------------------------------------------------------------- components


class RecordingCollector:
    """Component: collects the recording of every ``call.ended`` that names one."""

    name = "recordings"

    def __init__(self, runtime: Runtime, pipeline: RecordingPipeline, concurrency: int = 2):
        self.runtime = runtime
        self.pipeline = pipeline
        self._slots = asyncio.Semaphore(concurrency)
        # subscribe now, so no call.ended published before run() starts is missed
        self.subscription = runtime.bus.subscribe(self.name, {CallEnded.TYPE})

    async def run(self) -> None:
        """Consume call.ended until cancelled; each recording is handled in its own task."""
        async with asyncio.TaskGroup() as tg:
            while True:
                event = await self.subscription.get()
                if isinstance(event, CallEnded) and event.recording:
                    tg.create_task(self._one(event))

    async def _one(self, event: CallEnded) -> None:
        async with self._slots:
            try:
                await self.pipeline.collect_call(event)
            except Exception:
                logger.exception("recording of %s/%s failed", event.pbx, event.conversation_id)


class RecordingRetention:
    """Component: once a day, delete recordings older than ``retention_days``."""

    name = "recordings-retention"

    def __init__(self, engine: AsyncEngine, settings: RecordingSettings, period: float = 86400.0):
        self.engine = engine
        self.settings = settings
        self.period = period

    async def run(self) -> None:
        """Purge now, then every ``period`` seconds."""
        while True:
            try:
                count = await purge_expired(
                    self.engine,
                    self.settings.directory,
                    self.settings.retention_days,
                    datetime.now(UTC),
                )
                if count:
                    logger.info("retention: %d recording(s) deleted", count)
            except Exception:
                logger.exception("recording retention run failed")
            await asyncio.sleep(self.period)


def components(runtime: Runtime) -> list[Component]:
    """The recording collector and, if retention is on, the daily purge."""
    pipeline = RecordingPipeline(
        runtime.engine,
        runtime.settings.recordings,
        {p.name: p.recordings_dir for p in runtime.settings.pbx},
        runtime.publish,
    )
    runtime.extras["recordings"] = pipeline
    out: list[Component] = [RecordingCollector(runtime, pipeline)]
    if runtime.settings.recordings.retention_days > 0:
        out.append(RecordingRetention(runtime.engine, runtime.settings.recordings))
    return out
