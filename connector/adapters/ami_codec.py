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
import re
from collections.abc import Iterator, Mapping

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
_SEP = b"\r\n\r\n"
#: A message the fast path takes as it is: ``Name: value`` lines joined by CRLF, names of
#: printable ASCII without ``:`` or spaces, and no Event/Response header after the first line
#: (the line-by-line parser decides what such a message means). Checked as "the first line
#: starts well and no later line starts badly", which is cheaper than matching every value.
_GOOD_START = re.compile(r"[!-9;-~]+: ")
_BAD_LINE = re.compile(r"\r\n(?:(?![!-9;-~]+: )|(?i:event|response): )")
_set = object.__setattr__


class AmiMessage:
    """One AMI message: its ``Key: Value`` headers in wire order (repeats kept).

    Header names are matched case-insensitively (``Uniqueid`` and CEL's ``UniqueID`` are the
    same header). Missing headers read as ``""`` (or the given default).

    A message framed from the wire keeps its text and splits it into headers only when a
    header is first asked for: most AMI events are noise nobody reads past their name.
    Messages are immutable and compare by their headers.
    """

    __slots__ = ("_headers", "_index", "_text")

    _headers: tuple[tuple[str, str], ...] | None
    _index: dict[str, str] | None
    _text: str | None

    def __init__(self, headers: tuple[tuple[str, str], ...]) -> None:
        _set(self, "_headers", headers)
        _set(self, "_index", None)
        _set(self, "_text", None)

    @classmethod
    def _framed(cls, text: str) -> AmiMessage:
        """A message whose text the framer has checked: ``Name: value`` lines joined by CRLF,
        names of printable ASCII without ``:`` or spaces (so each line splits at its first
        ``": "`` exactly as the line-by-line parser splits it)."""
        msg = cls.__new__(cls)
        _set(msg, "_headers", None)
        _set(msg, "_index", None)
        _set(msg, "_text", text)
        return msg

    @classmethod
    def of(cls, *pairs: tuple[str, str], **headers: str) -> AmiMessage:
        """Build a message from pairs and keyword headers (tests, fake servers)."""
        return cls(tuple(pairs) + tuple(headers.items()))

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """Every ``(name, value)`` in wire order."""
        headers = self._headers
        if headers is None:
            assert self._text is not None
            lines = [line.partition(": ") for line in self._text.split("\r\n")]
            headers = tuple([(name, value) for name, _, value in lines])
            _set(self, "_headers", headers)
        return headers

    def _lookup(self) -> dict[str, str]:
        index = self._index
        if index is None:
            # the first value of each name wins: build from the last header to the first
            index = {name.lower(): value for name, value in reversed(self.headers)}
            _set(self, "_index", index)
        return index

    def get(self, name: str, default: str = "") -> str:
        """The first value of header ``name`` (case-insensitive), or ``default``."""
        index = self._index
        if index is None:
            index = self._lookup()
        return index.get(name.lower(), default)

    def get_all(self, name: str) -> list[str]:
        """Every value of a repeated header (``Variable``, ``ChanVariable``), in wire order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def mentions(self, text: str) -> bool:
        """False when ``text`` appears in no header name or value (a cheap pre-filter: an
        event whose interesting value is absent need not be looked at further)."""
        if self._text is not None:
            return text in self._text
        return any(text in name or text in value for name, value in self.headers)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AmiMessage):
            return NotImplemented
        return self.headers == other.headers

    def __hash__(self) -> int:
        return hash(self.headers)

    def __repr__(self) -> str:
        return f"AmiMessage(headers={self.headers!r})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"AmiMessage is immutable (cannot set {name!r})")

    @property
    def event(self) -> str:
        """The ``Event`` name, or ``""`` for a response."""
        text = self._text
        if text is not None and text.startswith("Event: "):
            # the first header is Event: it is the first value of that name
            end = text.find("\r\n")
            return text[7:] if end < 0 else text[7:end]
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
        if self._text is not None:
            return (self._text + "\r\n\r\n").encode("utf-8")
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
        self._pending = b""

    # -- public ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[AmiMessage]:
        """Consume bytes as they came off the socket; return the messages they complete."""
        out: list[AmiMessage] = []
        if self._pending:
            data = self._pending + data
            self._pending = b""
        pos = 0
        size = len(data)
        while pos < size:
            if not self._clean():
                pos = self._feed_slow(data, pos, size, out, until_clean=True)
                continue
            pos = self._feed_fast(data, pos, size, out)
        return out

    def _clean(self) -> bool:
        """True between messages: nothing half-read, nothing being skipped, no banner due."""
        return not (
            self._skipping or self._headers or self._line_bytes or self._line or self._expect_banner
        )

    def _feed_fast(self, data: bytes, pos: int, size: int, out: list[AmiMessage]) -> int:
        """Between messages: cut whole messages at their blank line (CRLF CRLF) in the bytes,
        decode each once, and keep an incomplete tail as bytes for the next read (so a
        character split across reads is never decoded in halves). Anything unusual (bare LF,
        bytes that are not UTF-8, odd lines, a message near the size limit) is handed to the
        line-by-line parser with exactly its bytes, so errors are reported as it reports them.
        Returns where it stopped (the end, or where the line-by-line parser must go on)."""
        if data.count(b"\n", pos, size) != data.count(b"\r\n", pos, size):
            return self._feed_slow(data, pos, size, out)  # bare LF somewhere: line by line
        last = data.rfind(_SEP, pos)
        if last < 0:
            return self._keep_tail(data, pos, size, out)
        limit = self.max_message_bytes - 4
        framed = AmiMessage._framed
        good_start = _GOOD_START.match
        bad_line = _BAD_LINE.search
        while pos <= last:
            sep = data.find(_SEP, pos, last + 4)
            if sep == pos:
                pos += 4  # an empty message: blank lines only
                continue
            if sep - pos <= limit:
                block = data[pos:sep]
                try:
                    text = block.decode("utf-8")
                except UnicodeDecodeError:
                    text = ""
                if good_start(text) and not bad_line(text):
                    self.message_count += 1
                    out.append(framed(text))
                    pos = sep + 4
                    continue
            pos = self._feed_slow(data, pos, sep + 4, out)
            if not self._clean():
                return pos
        if pos < size:
            return self._keep_tail(data, pos, size, out)
        return pos

    def _keep_tail(self, data: bytes, pos: int, size: int, out: list[AmiMessage]) -> int:
        """An incomplete message at the end of the read: keep its bytes (up to the size limit;
        beyond it the line-by-line parser drops it without buffering)."""
        if size - pos > self.max_message_bytes:
            return self._feed_slow(data, pos, size, out)
        self._pending = data[pos:size]
        return size

    def _feed_slow(
        self, data: bytes, pos: int, size: int, out: list[AmiMessage], until_clean: bool = False
    ) -> int:
        """Line by line from ``pos`` to ``size`` (or, ``until_clean``, only until a message
        ends); returns where it stopped."""
        while pos < size:
            nl = data.find(b"\n", pos, size)
            end = nl if nl >= 0 else size
            if self._skipping:
                self._skip(data, pos, end, nl >= 0)
            elif self._msg_bytes + self._line_bytes + (end - pos) > self.max_message_bytes:
                self._too_large(nl >= 0)  # checked before slicing: a huge line is never copied
            else:
                self._take(data[pos:end], nl >= 0, out)
            pos = end + 1 if nl >= 0 else size
            if until_clean and nl >= 0 and self._clean():
                break
        return pos

    def feed_eof(self) -> None:
        """The connection closed: a half-received message is recorded as truncated."""
        if self._pending:
            pending, self._pending = self._pending, b""
            self._feed_slow(pending, 0, len(pending), [])
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
        return self._msg_bytes + self._line_bytes + len(self._pending)

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
