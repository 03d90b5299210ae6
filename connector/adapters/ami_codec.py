"""AMI framing, sans I/O: bytes in, :class:`AmiMessage` out; actions to bytes.

Contract (feed, then drain)::

    framer = AmiFramer(max_message_bytes=65536)
    for msg in framer.feed(chunk):       # any chunking: mid-line, mid-character, several messages
        ...
    for err in framer.drain_errors():    # what was wrong with the input since the last drain
        log_and_count(err)
    framer.feed_eof()                    # at EOF: a half message is recorded as truncated

``feed`` never raises. Bad input is recorded as an
:class:`~connector.adapters.errors.AmiProtocolError` and the framer resynchronises:

* bytes that are not UTF-8 drop their message up to the next blank line (``AmiDecodeError``);
  the decoder is incremental, so a multi-byte character split across two reads is fine;
* a message (or a single line) longer than ``max_message_bytes`` is dropped without being
  buffered, up to its blank line (``AmiMessageTooLarge``);
* a line that is not ``Key: Value`` is skipped, the message kept (``AmiMalformedLine``);
* a message cut off by a new ``Event:``/``Response:`` line, or by EOF, is dropped
  (``AmiTruncatedMessage``).

The first line of a session is the banner (``Asterisk Call Manager/11.0.0``), with no blank
line after it; it is kept in :attr:`AmiFramer.banner`. CRLF and bare LF both end a line.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from connector.adapters.errors import (
    AmiDecodeError,
    AmiEncodeError,
    AmiMalformedLine,
    AmiMessageTooLarge,
    AmiProtocolError,
    AmiTruncatedMessage,
)

logger = logging.getLogger(__name__)

__all__ = ["AmiFramer", "AmiMessage", "encode_action"]

_MAX_KEPT_ERRORS = 1000


@dataclass(frozen=True, slots=True)
class AmiMessage:
    """One AMI message: its ``Key: Value`` headers in wire order (repeats kept).

    Header names are matched case-insensitively (``Uniqueid`` and CEL's ``UniqueID`` are the
    same header). Missing headers read as ``""`` (or the given default).
    """

    headers: tuple[tuple[str, str], ...]
    _index: dict[str, list[str]] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        index: dict[str, list[str]] = {}
        for name, value in self.headers:
            index.setdefault(name.lower(), []).append(value)
        object.__setattr__(self, "_index", index)

    @classmethod
    def of(cls, *pairs: tuple[str, str], **headers: str) -> AmiMessage:
        """Build a message from pairs and keyword headers (tests, fake servers)."""
        return cls(tuple(pairs) + tuple(headers.items()))

    def get(self, name: str, default: str = "") -> str:
        """The first value of header ``name`` (case-insensitive), or ``default``."""
        values = self._index.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        """Every value of a repeated header (``Variable``, ``ChanVariable``), in wire order."""
        return list(self._index.get(name.lower(), ()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers)

    @property
    def event(self) -> str:
        """The ``Event`` name, or ``""`` for a response."""
        return self.get("Event")

    @property
    def response(self) -> str:
        """The ``Response`` value (``Success``, ``Error``, ``Goodbye``...), or ``""``."""
        return self.get("Response")

    @property
    def action_id(self) -> str:
        """The ``ActionID`` this message answers, or ``""``."""
        return self.get("ActionID")

    def to_bytes(self) -> bytes:
        """The message as it appears on the wire (CRLF lines and the blank line)."""
        text = "".join(f"{name}: {value}\r\n" for name, value in self.headers) + "\r\n"
        return text.encode("utf-8")


class AmiFramer:
    """Incremental AMI parser for one session. Feed it bytes; it returns complete messages."""

    def __init__(self, max_message_bytes: int = 65_536, *, expect_banner: bool = True) -> None:
        if max_message_bytes < 64:
            raise ValueError(f"max_message_bytes must be >= 64, got {max_message_bytes}")
        self.max_message_bytes = max_message_bytes
        self.banner: str | None = None
        self.error_count = 0
        self.message_count = 0
        self._expect_banner = expect_banner
        self._errors: list[AmiProtocolError] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._line: list[str] = []
        self._line_bytes = 0
        self._headers: list[tuple[str, str]] = []
        self._msg_bytes = 0
        self._skipping = False
        self._skip_line_has_data = False

    # -- public ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[AmiMessage]:
        """Consume bytes as they came off the socket; return the messages they complete."""
        out: list[AmiMessage] = []
        pos = 0
        size = len(data)
        fast = True  # tried once per read: after a failure the rest goes line by line
        while pos < size:
            if fast and not self._skipping and not self._line_bytes and not self._line:
                fast = False
                pos = self._feed_lines(data, pos, out)
                if pos >= size:
                    break
            nl = data.find(b"\n", pos)
            end = nl if nl >= 0 else size
            if self._skipping:
                self._skip(data, pos, end, nl >= 0)
            elif self._msg_bytes + self._line_bytes + (end - pos) > self.max_message_bytes:
                self._too_large(nl >= 0)  # checked before slicing: a huge line is never copied
            else:
                self._take(data[pos:end], nl >= 0, out)
            pos = end + 1 if nl >= 0 else size
        return out

    def feed_eof(self) -> None:
        """The connection closed: a half-received message is recorded as truncated."""
        if self._headers or self._line_bytes:
            self._record(
                AmiTruncatedMessage(
                    f"connection closed inside a message ({self._msg_bytes + self._line_bytes} "
                    "bytes, no blank line)"
                )
            )
        self._reset_message()
        self._skipping = False

    def drain_errors(self) -> list[AmiProtocolError]:
        """The protocol errors recorded since the last drain (at most the last 1000)."""
        errors, self._errors = self._errors, []
        return errors

    @property
    def pending_bytes(self) -> int:
        """Bytes of the message being received (buffered, not yet complete)."""
        return self._msg_bytes + self._line_bytes

    # -- internals ------------------------------------------------------------------------

    def _record(self, error: AmiProtocolError) -> None:
        self.error_count += 1
        if len(self._errors) >= _MAX_KEPT_ERRORS:
            del self._errors[0]
        self._errors.append(error)
        if self.error_count <= 10 or self.error_count % 1000 == 0:
            logger.warning("AMI protocol error #%d: %s", self.error_count, error)

    def _reset_message(self) -> None:
        self._headers = []
        self._msg_bytes = 0
        self._line = []
        self._line_bytes = 0
        self._decoder.reset()

    def _start_skipping(self, error: AmiProtocolError, line_has_data: bool) -> None:
        self._record(error)
        self._reset_message()
        self._skipping = True
        self._skip_line_has_data = line_has_data

    def _skip(self, data: bytes, start: int, end: int, line_ends: bool) -> None:
        """Discard input up to (and including) the next blank line."""
        if not self._skip_line_has_data:
            for i in range(start, end):
                if data[i] != 0x0D:
                    self._skip_line_has_data = True
                    break
        if line_ends:
            if not self._skip_line_has_data:
                self._skipping = False
            self._skip_line_has_data = False

    def _feed_lines(self, data: bytes, pos: int, out: list[AmiMessage]) -> int:
        """Fast path: decode every complete line from ``pos`` at once if it is all valid UTF-8.

        Returns where it stopped (``pos`` unchanged when the slow path must take over: no
        complete line, a region too big to decode in one piece, or bytes that are not UTF-8, so
        errors are reported exactly as the line-by-line path reports them).
        """
        last = data.rfind(b"\n", pos)
        if last < 0 or last - pos > 4 * self.max_message_bytes:
            return pos
        try:
            text = data[pos : last + 1].decode("utf-8")
        except UnicodeDecodeError:
            return pos
        limit = self.max_message_bytes
        lines = text.split("\n")
        lines.pop()  # the empty string after the last newline
        for line in lines:
            n = (len(line) if line.isascii() else len(line.encode("utf-8"))) + 1
            if self._skipping:
                if not line.strip("\r"):
                    self._skipping = False
                continue
            if self._msg_bytes + n - 1 > limit:
                self._too_large(line_ends=True)
                continue
            if line.endswith("\r"):
                line = line[:-1]
            self._end_line(line, n, out)
        return last + 1

    def _too_large(self, line_ends: bool) -> None:
        self._start_skipping(
            AmiMessageTooLarge(
                f"message exceeds {self.max_message_bytes} bytes; skipped to its blank line"
            ),
            line_has_data=True,
        )
        if line_ends:
            self._skip_line_has_data = False

    def _take(self, piece: bytes, line_ends: bool, out: list[AmiMessage]) -> None:
        try:
            if piece:
                self._line.append(self._decoder.decode(piece, final=False))
            if line_ends:
                self._line.append(self._decoder.decode(b"", final=True))
        except UnicodeDecodeError as exc:
            self._start_skipping(
                AmiDecodeError(f"invalid UTF-8 ({exc.reason}); message skipped to its blank line"),
                line_has_data=True,
            )
            if line_ends:
                self._skip_line_has_data = False
            return
        self._line_bytes += len(piece)
        if not line_ends:
            return
        line = "".join(self._line)
        consumed = self._line_bytes + 1
        self._line = []
        self._line_bytes = 0
        if line.endswith("\r"):
            line = line[:-1]
        self._end_line(line, consumed, out)

    def _end_line(self, line: str, consumed: int, out: list[AmiMessage]) -> None:
        if self._expect_banner:
            self._expect_banner = False
            if line and ":" not in line:
                self.banner = line
                logger.debug("AMI banner: %s", line)
                return
        if not line:
            if self._headers:
                self.message_count += 1
                out.append(AmiMessage(tuple(self._headers)))
            self._reset_message()
            return
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not name:
            self._record(AmiMalformedLine(f"not a 'Key: Value' line: {line[:80]!r}"))
            return
        if value.startswith(" "):
            value = value[1:]
        # A second Event (or Response) header means the previous message lost its blank line.
        # "Event: OriginateResponse" legitimately carries a Response header after its Event.
        lower = name.lower() if name[0] in "EeRr" else ""
        starts = ("event", "response") if lower == "event" else ("response",)
        if lower in ("event", "response") and any(n.lower() in starts for n, _ in self._headers):
            self._record(
                AmiTruncatedMessage(
                    f"{name}: {value[:40]!r} began before the previous message ended; "
                    "previous message dropped"
                )
            )
            self._reset_message()
        self._headers.append((name, value))
        self._msg_bytes += consumed


def encode_action(name: str, headers: Mapping[str, str | list[str]], action_id: str) -> bytes:
    """Frame an AMI action: ``Action``, ``ActionID``, then ``headers`` (a list repeats a header).

    Raises :class:`~connector.adapters.errors.AmiEncodeError` if a name or value holds CR/LF
    (that would inject headers or end the message early) or a header name is empty.
    """
    lines = [("Action", name), ("ActionID", action_id)]
    for key, value in headers.items():
        if key.lower() in ("action", "actionid"):
            raise AmiEncodeError(f"header {key!r} is set by encode_action itself")
        values = value if isinstance(value, list) else [value]
        lines.extend((key, v) for v in values)
    for key, value in lines:
        if not key or ":" in key or any(c in key for c in "\r\n"):
            raise AmiEncodeError(f"invalid AMI header name {key!r}")
        if "\r" in value or "\n" in value:
            raise AmiEncodeError(f"AMI header {key} must not contain CR or LF")
    if not name:
        raise AmiEncodeError("action name is empty")
    return ("".join(f"{k}: {v}\r\n" for k, v in lines) + "\r\n").encode("utf-8")
