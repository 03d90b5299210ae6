"""A fake Asterisk AMI server on loopback that replays recorded transcripts.

It speaks enough AMI for the connector's adapter, for demos and for tests:

* sends the banner, answers ``Login`` (``Success`` + ``FullyBooted``, or after ``auth_delay``
  ``Error`` + close for a wrong secret, as ``auth_failure.ami`` shows), ``Ping`` (``Pong``),
  ``CoreShowChannels`` (from :attr:`FakeAmiServer.live_channels`, closed by
  ``CoreShowChannelsComplete``), ``Originate`` (recorded, answered ``Originate successfully
  queued``, then optionally a click-to-call transcript is replayed with the originate's
  ``ChannelId`` and ``ActionID`` substituted), ``Hangup`` and ``Logoff``;
* replays transcripts (:class:`Transcript`) after the login exchange with the recorded TCP
  chunking (``*.chunks.jsonl``) and, when ``speed`` > 0, the recorded timing divided by
  ``speed`` (``speed`` 0 never waits); in ``loop`` mode the playlist repeats forever with every
  ``...Uniqueid``/``...Linkedid`` value rewritten per round so ids never repeat;
* never interleaves its own replies inside a replayed message: replies wait for the replay to
  reach a message boundary, as a real Asterisk writes whole messages.

Controls for tests (the server is an async context manager)::

    async with FakeAmiServer(playlist=[Transcript.load(path).events_only()]) as pbx:
        ...pbx.port...
        await pbx.wait_until(lambda: pbx.logins >= 1)
        pbx.drop()                 # abort every connection (RST)
        pbx.hang_up()              # close every connection (FIN, after what was written)
        pbx.go_silent()            # half-open: socket stays open, nothing is answered or sent
        await pbx.restart(0.2)     # Shutdown event, EOF, refuse connects, come back Uptime 0
        originate = await pbx.wait_for_action("Originate")

Every wait is bounded; nothing here sleeps except to reproduce recorded timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from connector.adapters.ami_codec import AmiFramer, AmiMessage

logger = logging.getLogger(__name__)

__all__ = [
    "ChannelTable",
    "Chunk",
    "FakeAmiServer",
    "Transcript",
    "add_serve_arguments",
    "channels_up",
    "serve_command",
]

DEFAULT_BANNER = "Asterisk Call Manager/11.0.0"
_END = b"\r\n\r\n"
_ID_HEADER = re.compile(rb"^([A-Za-z]*(?:uniqueid|linkedid)): ?([^\r\n]*)\r?$", re.I | re.M)
_NUMERIC_ID = re.compile(rb"^(\d{6,12})\.(\d+)$")


# --------------------------------------------------------------------------------------------
# Transcripts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chunk:
    """One recorded ``recv()``: its bytes and the time since connect it arrived at."""

    at: float
    data: bytes


@dataclass(frozen=True, slots=True)
class Transcript:
    """Bytes an AMI server sent, split as they were received, with their timing.

    ``eof`` says the server closed the connection after the last chunk (``reconnect.ami``).
    Editing methods return new transcripts; chunk boundaries follow the edits (a boundary
    inside replaced bytes moves to the end of the replacement).
    """

    chunks: tuple[Chunk, ...]
    eof: bool = False
    name: str = ""

    @classmethod
    def load(cls, path: Path | str, *, chunked: bool = True) -> Transcript:
        """Read ``NAME.ami`` and, if present and ``chunked``, its ``NAME.chunks.jsonl``."""
        path = Path(path)
        data = path.read_bytes()
        chunks_path = path.with_suffix(".chunks.jsonl")
        if not chunked or not chunks_path.exists():
            return cls((Chunk(0.0, data),), name=path.stem)
        chunks: list[Chunk] = []
        eof = False
        for line in chunks_path.read_text("utf-8").splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            if rec.get("eof"):
                eof = True
                continue
            off, length = int(rec["off"]), int(rec["len"])
            if length:
                chunks.append(Chunk(float(rec["t"]), data[off : off + length]))
        covered = sum(len(c.data) for c in chunks)
        if covered < len(data):  # be lenient with a chunk list that stops early
            chunks.append(Chunk(chunks[-1].at if chunks else 0.0, data[covered:]))
        return cls(tuple(chunks), eof=eof, name=path.stem)

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str = "", eof: bool = False) -> Transcript:
        """A transcript of one chunk at time 0."""
        return cls((Chunk(0.0, data),) if data else (), eof=eof, name=name)

    @property
    def data(self) -> bytes:
        """All the bytes."""
        return b"".join(c.data for c in self.chunks)

    @property
    def duration(self) -> float:
        """Seconds between the first and the last chunk."""
        return self.chunks[-1].at - self.chunks[0].at if self.chunks else 0.0

    def __add__(self, other: Transcript) -> Transcript:
        shift = (self.chunks[-1].at if self.chunks else 0.0) - (
            other.chunks[0].at if other.chunks else 0.0
        )
        moved = tuple(Chunk(c.at + shift, c.data) for c in other.chunks)
        return Transcript(self.chunks + moved, eof=other.eof, name=self.name or other.name)

    # -- structure --------------------------------------------------------------------------

    def spans(self) -> list[tuple[int, int]]:
        """Byte spans of the banner line (if any) and of each message (blank line included)."""
        data = self.data
        out: list[tuple[int, int]] = []
        pos = 0
        if data.startswith(b"Asterisk Call Manager"):
            nl = data.find(b"\n")
            pos = nl + 1 if nl >= 0 else len(data)
            out.append((0, pos))
        while pos < len(data):
            end = data.find(_END, pos)
            stop = end + len(_END) if end >= 0 else len(data)
            out.append((pos, stop))
            pos = stop
        return out

    def messages(self) -> list[AmiMessage]:
        """The messages, parsed."""
        framer = AmiFramer(max_message_bytes=16 << 20)
        return framer.feed(self.data)

    def edit(self, edits: Iterable[tuple[int, int, bytes]]) -> Transcript:
        """Replace byte ranges ``[start, end)`` with new bytes (ranges must not overlap)."""
        ordered = sorted(edits)
        data = self.data
        pieces: list[bytes] = []
        pos = 0
        for start, end, repl in ordered:
            if start < pos:
                raise ValueError("overlapping edits")
            pieces.append(data[pos:start])
            pieces.append(repl)
            pos = end
        pieces.append(data[pos:])
        new_data = b"".join(pieces)

        def moved(boundary: int) -> int:
            delta = 0
            for start, end, repl in ordered:
                if end <= boundary:
                    delta += len(repl) - (end - start)
                elif start < boundary:
                    return start + delta + len(repl)
                else:
                    break
            return boundary + delta

        chunks: list[Chunk] = []
        old = 0
        new_prev = 0
        for c in self.chunks:
            old += len(c.data)
            new_end = moved(old)
            if new_end > new_prev:
                chunks.append(Chunk(c.at, new_data[new_prev:new_end]))
                new_prev = new_end
        if new_prev < len(new_data):
            at = self.chunks[-1].at if self.chunks else 0.0
            chunks.append(Chunk(at, new_data[new_prev:]))
        return replace(self, chunks=tuple(chunks))

    def events_only(self) -> Transcript:
        """Without the banner and without responses (to the recorder's own actions).

        What remains is what a server sends after the login exchange: events only. An EOF
        that followed the recorder's own ``Logoff`` (``Response: Goodbye``) is dropped too.
        """
        data = self.data
        spans = self.spans()
        drops = [
            (s, e, b"") for s, e in spans if not data[s:e].lstrip().lower().startswith(b"event:")
        ]
        eof = self.eof
        if eof and spans and data[spans[-1][0] :].lower().startswith(b"response: goodbye"):
            eof = False
        return replace(self.edit(drops), eof=eof)

    def split_before(self, marker: bytes, occurrence: int = 1) -> tuple[Transcript, Transcript]:
        """Cut at the start of the ``occurrence``-th message containing ``marker``."""
        data = self.data
        seen = 0
        for start, end in self.spans():
            if marker in data[start:end]:
                seen += 1
                if seen == occurrence:
                    return self._cut(start)
        raise ValueError(f"{marker!r} occurs fewer than {occurrence} times")

    def _cut(self, offset: int) -> tuple[Transcript, Transcript]:
        head: list[Chunk] = []
        tail: list[Chunk] = []
        pos = 0
        for c in self.chunks:
            end = pos + len(c.data)
            if end <= offset:
                head.append(c)
            elif pos >= offset:
                tail.append(c)
            else:
                head.append(Chunk(c.at, c.data[: offset - pos]))
                tail.append(Chunk(c.at, c.data[offset - pos :]))
            pos = end
        return (
            Transcript(tuple(head), name=self.name),
            Transcript(tuple(tail), eof=self.eof, name=self.name),
        )

    def substitute(self, mapping: Mapping[bytes, bytes]) -> Transcript:
        """Replace whole tokens (not parts of longer ids or numbers) everywhere."""
        if not mapping:
            return self
        keys = sorted(mapping, key=len, reverse=True)
        pattern = re.compile(
            rb"(?<![0-9A-Za-z.])(" + b"|".join(re.escape(k) for k in keys) + rb")(?![0-9])"
        )
        data = self.data
        return self.edit((m.start(), m.end(), mapping[m.group(1)]) for m in pattern.finditer(data))

    def round_ids(self, round_no: int) -> dict[bytes, bytes]:
        """The id rewriting of :meth:`with_round`: old ``...Uniqueid``/``...Linkedid`` -> new."""
        mapping: dict[bytes, bytes] = {}
        if round_no == 0:
            return mapping
        for m in _ID_HEADER.finditer(self.data):
            value = m.group(2).strip()
            if not value or value == b"<unknown>" or value in mapping:
                continue
            num = _NUMERIC_ID.match(value)
            if num:
                secs = int(num.group(1)) + round_no * 1_000_000
                mapping[value] = b"%d.%s" % (secs, num.group(2))
            else:
                mapping[value] = value + b"-r%d" % round_no
        return mapping

    def with_round(self, round_no: int) -> Transcript:
        """Every ``...Uniqueid``/``...Linkedid`` value made unique for replay round ``round_no``.

        Asterisk-style ids (``1795900871.1``) move their seconds by ``round_no`` million;
        other ids get a ``-r<round_no>`` suffix. Only those header values change (a recording
        file name that contains an id keeps its real name). Round 0 is unchanged.
        """
        mapping = self.round_ids(round_no)
        if not mapping:
            return self
        edits: list[tuple[int, int, bytes]] = []
        for m in _ID_HEADER.finditer(self.data):
            value = m.group(2).strip()
            if value in mapping:
                start = m.start(2)
                edits.append((start, start + len(value), mapping[value]))
        return self.edit(edits)


_SNAPSHOT_HEADERS = (
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
)


class ChannelTable:
    """The channels up according to the events seen so far (what CoreShowChannels lists).

    Each channel keeps its last snapshot (the unprefixed ``Channel``...``Linkedid`` headers of
    any event about it); a ``Hangup`` removes it.
    """

    def __init__(self) -> None:
        self._live: dict[str, dict[str, str]] = {}

    def observe(self, msg: AmiMessage) -> None:
        """Update from one event."""
        uid = msg.get("Uniqueid")
        if not uid or not msg.get("Channel") or msg.event in ("CEL", "CoreShowChannel"):
            return
        if msg.event == "Hangup":
            self._live.pop(uid, None)
            return
        snapshot = {k: msg.get(k) for k in _SNAPSHOT_HEADERS if k in msg}
        self._live[uid] = {**self._live.get(uid, {}), **snapshot}

    def clear(self) -> None:
        """Forget every channel (the PBX restarted)."""
        self._live.clear()

    def snapshot(self) -> list[dict[str, str]]:
        """The channels up, as ``CoreShowChannel`` headers."""
        out = []
        for snap in self._live.values():
            item = dict(snap)
            for key, default in (
                ("BridgeId", ""),
                ("Application", ""),
                ("ApplicationData", ""),
                ("Duration", "00:00:10"),
            ):
                item.setdefault(key, default)
            out.append(item)
        return out


def channels_up(transcript: Transcript) -> list[dict[str, str]]:
    """The channels still up at the end of ``transcript``, as ``CoreShowChannel`` headers."""
    table = ChannelTable()
    for msg in transcript.messages():
        table.observe(msg)
    return table.snapshot()


# --------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------


def _message(*pairs: tuple[str, str]) -> bytes:
    return AmiMessage(tuple(pairs)).to_bytes()


@dataclass
class _Originated:
    """What an Originate triggers: the transcript to replay, with ids to substitute."""

    transcript: Transcript
    recorded_action_id: bytes
    recorded_leg_id: bytes


def originate_script(transcript: Transcript) -> _Originated:
    """Prepare a click-to-call transcript to be replayed after an ``Originate``.

    The transcript's own ``OriginateResponse`` names the recorded ActionID and the agent leg's
    Uniqueid; both are replaced by the live Originate's ``ActionID`` and ``ChannelId``.
    """
    events = transcript.events_only()
    for msg in events.messages():
        if msg.event == "OriginateResponse":
            return _Originated(
                events, msg.action_id.encode("utf-8"), msg.get("Uniqueid").encode("utf-8")
            )
    raise ValueError(f"transcript {transcript.name!r} has no OriginateResponse")


class _Session:
    """One client connection."""

    def __init__(
        self, server: FakeAmiServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.framer = AmiFramer(max_message_bytes=1 << 20, expect_banner=False)
        self.logged_in = False
        self.silent = False
        self._mid_message = False
        self._pending: list[bytes] = []
        self._tail = b""
        self._tasks: set[asyncio.Task[None]] = set()
        self._play_lock = asyncio.Lock()
        self._replayed = AmiFramer(max_message_bytes=16 << 20)

    # -- output -----------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(data)

    def reply(self, data: bytes) -> None:
        """Send a whole message, after the replayed message in progress (if any) ends."""
        if self.silent:
            return
        if self._mid_message:
            self._pending.append(data)
        else:
            self._write(data)

    def _wrote_replay(self, data: bytes) -> None:
        self._write(data)
        for msg in self._replayed.feed(data):
            self.server.channels.observe(msg)
        self._tail = (self._tail + data)[-4:]
        self._mid_message = not self._tail.endswith(_END)
        if not self._mid_message and self._pending:
            pending, self._pending = self._pending, []
            for item in pending:
                self._write(item)

    async def play(self, transcript: Transcript, speed: float) -> None:
        """Write a transcript chunk by chunk, with its timing when ``speed`` > 0."""
        async with self._play_lock:
            prev = transcript.chunks[0].at if transcript.chunks else 0.0
            for chunk in transcript.chunks:
                if speed > 0 and chunk.at > prev:
                    await asyncio.sleep((chunk.at - prev) / speed)
                prev = max(prev, chunk.at)
                while self.silent and not self.writer.is_closing():
                    await self.server._changed_wait()
                if self.writer.is_closing():
                    return
                self._wrote_replay(chunk.data)
                with contextlib.suppress(ConnectionError):
                    await self.writer.drain()
            self.server._played += 1
            self.server._notify()
            if transcript.eof:
                self.close()

    def spawn_play(self, transcripts: Sequence[Transcript], speed: float, loop: bool) -> None:
        """Play transcripts in the background (in order; forever in loop mode)."""
        task = asyncio.create_task(self._play_all(transcripts, speed, loop))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _play_all(self, transcripts: Sequence[Transcript], speed: float, loop: bool) -> None:
        round_no = 0
        while True:
            for t in transcripts:
                await self.play(t.with_round(round_no) if loop else t, speed)
                if loop and self.server.loop_pause > 0:
                    await asyncio.sleep(self.server.loop_pause)
            round_no += 1
            if not loop or not transcripts:
                return

    def close(self) -> None:
        """Close cleanly (FIN)."""
        if not self.writer.is_closing():
            self.writer.close()

    def abort(self) -> None:
        """Drop the connection (RST)."""
        transport = self.writer.transport
        transport.abort()

    # -- input ------------------------------------------------------------------------------

    async def run(self) -> None:
        self._write(f"{self.server.banner}\r\n".encode())
        try:
            while not self.reader.at_eof():
                data = await self.reader.read(65536)
                if not data:
                    break
                for action in self.framer.feed(data):
                    await self._handle(action)
                self.framer.drain_errors()
        except (ConnectionError, OSError):
            pass
        finally:
            for task in list(self._tasks):
                task.cancel()
            self.close()

    async def _handle(self, action: AmiMessage) -> None:
        server = self.server
        name = action.get("Action").lower()
        aid = action.action_id
        server.actions.append(action)
        server._notify()
        if self.silent:
            return
        if name == "login":
            await self._login(action)
        elif not self.logged_in:
            self.reply(
                _message(("Response", "Error"), ("ActionID", aid), ("Message", "Permission denied"))
            )
        elif name == "ping":
            self.reply(
                _message(
                    ("Response", "Success"),
                    ("ActionID", aid),
                    ("Ping", "Pong"),
                    ("Timestamp", "1795900000.000000"),
                )
            )
        elif name == "coreshowchannels":
            self._core_show_channels(aid)
        elif name == "originate":
            self.reply(
                _message(
                    ("Response", "Success"),
                    ("ActionID", aid),
                    ("Message", "Originate successfully queued"),
                )
            )
            script = server.take_originate_script()
            if script is not None:
                # fresh ids for every leg of this call; the agent leg gets our ChannelId
                server.originates += 1
                renamed = script.transcript.round_ids(server.originates)
                played = script.transcript.with_round(server.originates)
                mapping = {script.recorded_action_id: aid.encode("utf-8")}
                channel_id = action.get("ChannelId")
                if channel_id and script.recorded_leg_id not in (b"", b"<unknown>"):
                    leg = renamed.get(script.recorded_leg_id, script.recorded_leg_id)
                    mapping[leg] = channel_id.encode("utf-8")
                self.spawn_play([played.substitute(mapping)], server.speed, False)
        elif name == "hangup":
            self.reply(
                _message(("Response", "Success"), ("ActionID", aid), ("Message", "Channel Hungup"))
            )
        elif name == "logoff":
            self.reply(
                _message(
                    ("Response", "Goodbye"),
                    ("ActionID", aid),
                    ("Message", "Thanks for all the fish."),
                )
            )
            self.close()
        else:
            self.reply(
                _message(
                    ("Response", "Error"),
                    ("ActionID", aid),
                    ("Message", "Invalid/unknown command"),
                )
            )

    async def _login(self, action: AmiMessage) -> None:
        server = self.server
        aid = action.action_id
        ok = action.get("Username") == server.username and action.get("Secret") == server.secret
        if not ok:
            server.failed_logins += 1
            server._notify()
            if server.auth_delay > 0:
                await asyncio.sleep(server.auth_delay)
            self.reply(
                _message(
                    ("Response", "Error"), ("ActionID", aid), ("Message", "Authentication failed")
                )
            )
            self.close()
            return
        self.logged_in = True
        self.reply(
            _message(
                ("Response", "Success"), ("ActionID", aid), ("Message", "Authentication accepted")
            )
        )
        uptime = str(server.uptime)
        self.reply(
            _message(
                ("Event", "FullyBooted"),
                ("Privilege", "system,all"),
                ("Uptime", uptime),
                ("LastReload", uptime),
                ("Status", "Fully Booted"),
            )
        )
        server.logins += 1
        server._notify()
        scripts = server.take_login_scripts()
        if scripts:
            self.spawn_play(scripts, server.speed, server.loop)

    def _core_show_channels(self, aid: str) -> None:
        server = self.server
        channels = (
            list(server.live_channels)
            if server.live_channels is not None
            else server.channels.snapshot()
        )
        parts = [
            _message(
                ("Response", "Success"),
                ("ActionID", aid),
                ("EventList", "start"),
                ("Message", "Channels will follow"),
            )
        ]
        for ch in channels:
            pairs = [("Event", "CoreShowChannel"), ("ActionID", aid)]
            pairs += [(k, v) for k, v in ch.items() if k.lower() not in ("event", "actionid")]
            parts.append(_message(*pairs))
        parts.append(
            _message(
                ("Event", "CoreShowChannelsComplete"),
                ("ActionID", aid),
                ("EventList", "Complete"),
                ("ListItems", str(len(channels))),
            )
        )
        self.reply(b"".join(parts))


@dataclass
class FakeAmiServer:
    """An AMI server on ``host``:``port`` (0 picks a free port) that replays transcripts.

    ``playlist`` is played to the first session that logs in (to every one with
    ``replay_each_login``); later logins get what was queued with :meth:`queue` since; with
    ``loop`` it repeats forever. ``originate_transcript``
    (a click-to-call capture) is replayed after every ``Originate``. ``CoreShowChannels`` lists
    ``live_channels`` if set, else the channels up in what was replayed (:attr:`channels`).
    """

    playlist: Sequence[Transcript] = ()
    host: str = "127.0.0.1"
    port: int = 0
    username: str = "connector"
    secret: str = "connector-secret"
    banner: str = DEFAULT_BANNER
    speed: float = 0.0
    loop: bool = False
    loop_pause: float = 0.0
    auth_delay: float = 0.0
    uptime: int = 1234
    originate_transcript: Transcript | None = None
    live_channels: list[dict[str, str]] | None = None
    replay_each_login: bool = False

    channels: ChannelTable = field(default_factory=ChannelTable, init=False)

    actions: list[AmiMessage] = field(default_factory=list, init=False)
    logins: int = field(default=0, init=False)
    failed_logins: int = field(default=0, init=False)
    connections: int = field(default=0, init=False)
    originates: int = field(default=0, init=False)
    _played: int = field(default=0, init=False)
    _server: asyncio.Server | None = field(default=None, init=False, repr=False)
    _sessions: set[_Session] = field(default_factory=set, init=False, repr=False)
    _changed: asyncio.Event | None = field(default=None, init=False, repr=False)
    _login_queue: list[Transcript] = field(default_factory=list, init=False, repr=False)
    _originate: _Originated | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._login_queue = list(self.playlist)
        if self.originate_transcript is not None:
            self._originate = originate_script(self.originate_transcript)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (on a free port when ``port`` is 0; :attr:`port` then holds it)."""
        self._changed = asyncio.Event()
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("fake AMI server listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        await self._stop_listening()
        for s in list(self._sessions):
            s.abort()
        self._notify()

    async def __aenter__(self) -> FakeAmiServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        """Run until cancelled (the CLI)."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(self, reader, writer)
        self._sessions.add(session)
        self.connections += 1
        self._notify()
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            self._notify()

    # -- scripting ----------------------------------------------------------------------------

    def queue(self, *transcripts: Transcript) -> None:
        """Play these to the next session that logs in."""
        self._login_queue.extend(transcripts)

    def take_login_scripts(self) -> list[Transcript]:
        """What the session logging in now plays (the queue is emptied)."""
        scripts, self._login_queue = self._login_queue, []
        if self.replay_each_login:
            self._login_queue = list(self.playlist)
        return scripts

    def take_originate_script(self) -> _Originated | None:
        """The transcript an Originate triggers, if any."""
        return self._originate

    def set_originate_transcript(self, transcript: Transcript | None) -> None:
        """Change what the next Originate replays."""
        self._originate = originate_script(transcript) if transcript is not None else None

    async def play(self, transcript: Transcript) -> None:
        """Play a transcript now to every logged-in session; returns when it is written."""
        await asyncio.gather(
            *(s.play(transcript, self.speed) for s in list(self._sessions) if s.logged_in)
        )

    def send_raw(self, data: bytes) -> None:
        """Write raw bytes to every session (garbage tests); no boundary handling."""
        for s in list(self._sessions):
            s._write(data)

    # -- faults -----------------------------------------------------------------------------

    def drop(self) -> None:
        """Abort every connection (the client sees a reset)."""
        for s in list(self._sessions):
            s.abort()

    def hang_up(self) -> None:
        """Close every connection cleanly (the client reads what was sent, then EOF)."""
        for s in list(self._sessions):
            s.close()

    def go_silent(self) -> None:
        """Half-open: keep every socket open but answer and send nothing any more."""
        for s in list(self._sessions):
            s.silent = True
        self._notify()

    async def restart(self, down_for: float = 0.2, *, keep_calls: bool = False) -> None:
        """Restart like ``core restart now``: Shutdown, EOF, refuse connects, come back fresh.

        The new "process" reports ``Uptime: 0`` in its FullyBooted; its calls are gone (unless
        ``keep_calls``, which models a connection loss rather than a restart).
        """
        shutdown = _message(
            ("Event", "Shutdown"),
            ("Privilege", "system,all"),
            ("Shutdown", "Cleanly"),
            ("Restart", "True"),
        )
        for s in list(self._sessions):
            s.reply(shutdown)
            s.close()
        await self._stop_listening()
        if down_for > 0:
            await asyncio.sleep(down_for)
        self.uptime = 0
        if not keep_calls:
            self.channels.clear()
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self._notify()

    # -- waiting ----------------------------------------------------------------------------

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def _changed_wait(self) -> None:
        assert self._changed is not None
        self._changed.clear()
        await self._changed.wait()

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``condition()`` is true (checked after every change); bounded."""
        async with asyncio.timeout(timeout):
            while not condition():
                await self._changed_wait()

    def actions_named(self, name: str) -> list[AmiMessage]:
        """The received actions called ``name`` (case-insensitive), in order."""
        return [a for a in self.actions if a.get("Action").lower() == name.lower()]

    async def wait_for_action(self, name: str, count: int = 1, timeout: float = 10.0) -> AmiMessage:
        """Wait until ``count`` actions called ``name`` arrived; return the last of them."""
        await self.wait_until(lambda: len(self.actions_named(name)) >= count, timeout)
        return self.actions_named(name)[count - 1]

    @property
    def played(self) -> int:
        """How many transcripts were played completely."""
        return self._played

    @property
    def sessions(self) -> int:
        """Connections open now."""
        return len(self._sessions)


# --------------------------------------------------------------------------------------------
# Command line: ``connector replay --serve FILE.ami --port P [--speed N] [--loop]``
# --------------------------------------------------------------------------------------------


def serve_command(args: Any) -> int:
    """Run the fake AMI server for ``connector replay --serve`` until interrupted.

    Uses ``args.file``, ``args.port``, ``args.speed``, ``args.loop``, ``args.username``,
    ``args.secret`` and ``args.originate`` (a click-to-call transcript, optional).
    """
    import sys

    try:
        playlist = [Transcript.load(args.file).events_only()]
        originate = Transcript.load(args.originate) if args.originate else None
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"connector replay: {exc}\n")
        return 1
    server = FakeAmiServer(
        playlist=playlist,
        host=args.host,
        port=args.port,
        username=args.username,
        secret=args.secret,
        speed=args.speed,
        loop=args.loop,
        loop_pause=args.pause,
        originate_transcript=originate,
        replay_each_login=True,
    )

    async def main() -> None:
        await server.start()
        sys.stderr.write(
            f"fake AMI server on {server.host}:{server.port} (user {server.username!r}); "
            f"replaying {Path(args.file).name} after each login"
            f"{' in a loop' if args.loop else ''}. Ctrl-C stops it.\n"
        )
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        sys.stderr.write(f"connector replay: cannot listen on {args.host}:{args.port}: {exc}\n")
        return 1
    return 0


def add_serve_arguments(parser: Any) -> None:
    """The ``--serve`` options of ``connector replay``."""
    group = parser.add_argument_group("fake AMI server (--serve)")
    group.add_argument(
        "--serve",
        action="store_true",
        help="run a fake AMI server on 127.0.0.1 that replays FILE after each login",
    )
    group.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    group.add_argument("--port", type=int, default=5038, help="TCP port (5038; 0 picks one)")
    group.add_argument("--loop", action="store_true", help="replay forever with fresh call ids")
    group.add_argument("--pause", type=float, default=0.0, help="seconds between loop rounds (0)")
    group.add_argument("--username", default="connector", help="AMI username to accept")
    group.add_argument("--secret", default="connector-secret", help="AMI secret to accept")
    group.add_argument(
        "--originate",
        type=Path,
        default=None,
        metavar="C2C.ami",
        help="click-to-call transcript replayed after each Originate (with its ChannelId)",
    )
