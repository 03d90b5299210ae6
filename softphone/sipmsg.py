"""Pure helpers for the few SIP messages pyVoIP 1.6 cannot parse or build itself.

Everything here takes bytes or strings and returns bytes or values; nothing touches a socket.
They back the patch layer in :mod:`softphone.patches`: answering ``OPTIONS``, refusing unknown
methods, ``487`` after ``CANCEL``, sending ``CANCEL``, reading a caller's display name without the
stray quote, and building RFC 4733 DTMF packets.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import struct

from connector.events.model import Party
from softphone.errors import MalformedMessage

__all__ = [
    "ALLOW",
    "DTMF_EVENTS",
    "MalformedMessage",
    "build_cancel",
    "build_response",
    "digest_authorization",
    "granted_expires",
    "parse_challenge",
    "dtmf_packets",
    "header_values",
    "parse_party",
    "request_method",
    "response_status",
]

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS"
"""The methods the patched phone handles."""

DTMF_EVENTS = "0123456789*#ABCD"
"""RFC 4733 event codes 0..15 in order."""

_COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
}
_TOKEN = re.compile(r"^[A-Za-z][A-Za-z0-9.!%*_+`'~-]*$")
_MAX_MESSAGE = 65_535


def _head_lines(raw: bytes) -> list[str]:
    if len(raw) > _MAX_MESSAGE:
        raise MalformedMessage(f"message of {len(raw)} bytes is too long")
    head = raw.split(b"\r\n\r\n", 1)[0]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedMessage(f"header is not UTF-8: {exc}") from None
    lines = text.split("\r\n")
    if not lines or not lines[0]:
        raise MalformedMessage("empty message")
    return lines


def request_method(raw: bytes) -> str | None:
    """The method of a SIP request (``"OPTIONS"``), or None for a response or anything else."""
    try:
        first = _head_lines(raw)[0]
    except MalformedMessage:
        return None
    parts = first.split(" ")
    if len(parts) != 3 or parts[2] != "SIP/2.0" or not _TOKEN.match(parts[0]):
        return None
    return parts[0].upper()


def response_status(raw: bytes) -> int | None:
    """The status code of a SIP response, or None if ``raw`` is not one."""
    try:
        first = _head_lines(raw)[0]
    except MalformedMessage:
        return None
    parts = first.split(" ", 2)
    if len(parts) < 2 or parts[0] != "SIP/2.0" or not parts[1].isdigit() or len(parts[1]) != 3:
        return None
    return int(parts[1])


def header_values(raw: bytes, name: str) -> list[str]:
    """Every value of header ``name`` (case-insensitive, compact forms understood), in order."""
    want = name.lower()
    out: list[str] = []
    for line in _head_lines(raw)[1:]:
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        key = _COMPACT.get(key, key)
        if key == want:
            out.append(value.strip())
    return out


def _one(raw: bytes, name: str) -> str:
    values = header_values(raw, name)
    if not values:
        raise MalformedMessage(f"no {name} header")
    return values[0]


def build_response(
    request: bytes,
    status: int,
    reason: str,
    *,
    to_tag: str | None = None,
    extra: tuple[str, ...] = (),
) -> bytes:
    """A response to ``request`` that copies Via, From, To, Call-ID and CSeq as RFC 3261 asks.

    A To tag is added (``to_tag`` or a random one) unless the request's To already has one.
    Raises :class:`MalformedMessage` when the request lacks a header a response needs.
    """
    vias = header_values(request, "Via")
    if not vias:
        raise MalformedMessage("no Via header")
    to = _one(request, "To")
    if ";tag=" not in to.replace(" ", ""):
        to = f"{to};tag={to_tag or secrets.token_hex(6)}"
    lines = [f"SIP/2.0 {status} {reason}"]
    lines += [f"Via: {v}" for v in vias]
    lines += [
        f"From: {_one(request, 'From')}",
        f"To: {to}",
        f"Call-ID: {_one(request, 'Call-ID')}",
        f"CSeq: {_one(request, 'CSeq')}",
        *extra,
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def build_cancel(invite: bytes) -> bytes:
    """The CANCEL for a sent INVITE: same Request-URI, top Via, From, To, Call-ID, CSeq number."""
    first = _head_lines(invite)[0]
    parts = first.split(" ")
    if len(parts) != 3 or parts[0] != "INVITE":
        raise MalformedMessage("not an INVITE")
    cseq = _one(invite, "CSeq").split()[0]
    lines = [
        f"CANCEL {parts[1]} SIP/2.0",
        f"Via: {header_values(invite, 'Via')[0]}",
        "Max-Forwards: 70",
        f"From: {_one(invite, 'From')}",
        f"To: {_one(invite, 'To')}",
        f"Call-ID: {_one(invite, 'Call-ID')}",
        f"CSeq: {cseq} CANCEL",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


_NAME_ADDR = re.compile(r'^\s*(?:"((?:[^"\\]|\\.)*)"|([^<"]*?))\s*<([^>]*)>')


def parse_party(header: str) -> Party:
    """Number and display name from a From/To value (``"Caller Sipp" <sip:100@host>;tag=x``).

    pyVoIP 1.6 strips quotes before trimming spaces and leaves ``'Caller Sipp" '``; this does not.
    """
    number = ""
    name = ""
    m = _NAME_ADDR.match(header)
    if m:
        name = (m.group(1) if m.group(1) is not None else m.group(2) or "").strip()
        name = re.sub(r"\\(.)", r"\1", name)
        uri = m.group(3)
    else:
        uri = header.split(";", 1)[0].strip()
    uri = uri.split(";", 1)[0]
    for scheme in ("sips:", "sip:", "tel:"):
        if uri.lower().startswith(scheme):
            uri = uri[len(scheme) :]
            break
    number = uri.split("@", 1)[0] if "@" in uri else uri
    return Party(number=number, name=name)


def dtmf_packets(
    digit: str,
    *,
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    duration_ms: int = 100,
) -> list[bytes]:
    """The RTP packets of one RFC 4733 key press: 20 ms updates, then the end packet three times.

    The first packet has the marker bit (receivers, pyVoIP among them, count a key on it). All
    share ``timestamp``; sequence numbers start at ``sequence``.
    """
    if len(digit) != 1 or digit.upper() not in DTMF_EVENTS:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    event = DTMF_EVENTS.index(digit.upper())
    volume = 10
    steps = max(1, duration_ms // 20)
    packets: list[bytes] = []
    seq = sequence
    for i in range(steps + 3):
        end = i >= steps
        duration = min(i + 1, steps) * 160
        marker = 0x80 if i == 0 else 0
        header = struct.pack(
            "!BBHII",
            0x80,
            marker | (payload_type & 0x7F),
            seq & 0xFFFF,
            timestamp & 0xFFFFFFFF,
            ssrc & 0xFFFFFFFF,
        )
        payload = struct.pack("!BBH", event, (0x80 if end else 0) | volume, duration)
        packets.append(header + payload)
        seq += 1
    return packets


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # RFC 2617 digest is MD5 by definition


def digest_authorization(
    challenge: dict[str, str],
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str | None = None,
    nc: int = 1,
) -> str:
    """The ``Authorization`` value answering a ``WWW-Authenticate: Digest`` challenge.

    Supports MD5 with and without ``qop=auth`` (RFC 2617) and echoes ``opaque``. pyVoIP 1.6
    ignores ``qop``, so registrars that send it (Asterisk PJSIP does) reject its answer.
    Raises :class:`MalformedMessage` when the challenge lacks realm or nonce or asks for an
    algorithm other than MD5.
    """
    realm = challenge.get("realm")
    nonce = challenge.get("nonce")
    if realm is None or nonce is None:
        raise MalformedMessage("the digest challenge has no realm or nonce")
    algorithm = challenge.get("algorithm", "MD5")
    if algorithm.upper() != "MD5":
        raise MalformedMessage(f"digest algorithm {algorithm} is not supported (only MD5)")
    ha1 = _md5(f"{username}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    qops = [q.strip() for q in challenge.get("qop", "").split(",") if q.strip()]
    parts = [
        f'username="{username}"',
        f'realm="{realm}"',
        f'nonce="{nonce}"',
        f'uri="{uri}"',
    ]
    if "auth" in qops:
        cnonce = cnonce or secrets.token_hex(8)
        count = f"{nc:08x}"
        response = _md5(f"{ha1}:{nonce}:{count}:{cnonce}:auth:{ha2}")
        parts += [f'response="{response}"', "qop=auth", f"nc={count}", f'cnonce="{cnonce}"']
    else:
        parts.append(f'response="{_md5(f"{ha1}:{nonce}:{ha2}")}"')
    parts.append("algorithm=MD5")
    if "opaque" in challenge:
        parts.append(f'opaque="{challenge["opaque"]}"')
    return "Digest " + ",".join(parts)


def granted_expires(raw: bytes, requested: int) -> int:
    """How long the registrar granted (``Expires`` header, else the Contact's ``expires``)."""
    for value in header_values(raw, "Expires"):
        if value.strip().isdigit():
            return int(value.strip())
    for contact in header_values(raw, "Contact"):
        m = re.search(r";\s*expires\s*=\s*(\d+)", contact, re.IGNORECASE)
        if m:
            return int(m.group(1))
    return requested


_PARAM = re.compile(r'([A-Za-z][\w-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]+)')


def parse_challenge(value: str) -> dict[str, str]:
    """The parameters of a ``Digest`` challenge (quoted values unquoted, names lower-case)."""
    value = value.strip()
    if value[:6].lower() == "digest":
        value = value[6:]
    out: dict[str, str] = {}
    for name, raw in _PARAM.findall(value):
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        out[name.lower()] = raw
    return out
