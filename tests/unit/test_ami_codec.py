"""AMI framing: real transcripts with their real chunking, and every kind of bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from connector.adapters.ami_codec import AmiFramer, AmiMessage, encode_action
from connector.adapters.errors import (
    AmiDecodeError,
    AmiEncodeError,
    AmiMalformedLine,
    AmiMessageTooLarge,
    AmiProtocolError,
    AmiTruncatedMessage,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "ami"
BANNER_LINE = b"Asterisk Call Manager/11.0.0\r\n"
SCENARIOS = sorted(p.stem for p in DATA.glob("*.ami"))

EVENT = (
    b"Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/101-0000002a\r\n"
    + "CallerIDName: ООО Ромашка\r\n".encode()
    + b"Uniqueid: 1.1\r\n\r\n"
)


def chunks(name: str) -> list[bytes]:
    """The transcript split exactly as the real recv() calls split it."""
    data = (DATA / f"{name}.ami").read_bytes()
    out = []
    for line in (DATA / f"{name}.chunks.jsonl").read_text().splitlines():
        c = json.loads(line)
        out.append(data[c["off"] : c["off"] + c["len"]])
    assert b"".join(out) == data
    return out


def feed_all(framer: AmiFramer, parts: list[bytes]) -> list[AmiMessage]:
    msgs: list[AmiMessage] = []
    for part in parts:
        msgs.extend(framer.feed(part))
    return msgs


@pytest.mark.parametrize("name", SCENARIOS)
def test_real_transcripts_frame_cleanly(name: str) -> None:
    parts = chunks(name)
    framer = AmiFramer()
    msgs = feed_all(framer, parts)
    assert framer.banner == "Asterisk Call Manager/11.0.0"
    assert framer.error_count == 0, framer.drain_errors()
    assert framer.pending_bytes == 0
    data = b"".join(parts)
    # every message in the file, no more, no less
    assert len(msgs) == data.count(b"\r\n\r\n")
    # the same result byte by byte (every character split at every position)
    one = AmiFramer()
    assert feed_all(one, [data[i : i + 1] for i in range(len(data))]) == msgs


def test_cyrillic_name_split_across_reads() -> None:
    data = (DATA / "queue_call.ami").read_bytes()
    name = "ООО Ромашка".encode()
    at = data.index(name) + 1  # inside the first two-byte character
    framer = AmiFramer()
    msgs = feed_all(framer, [data[:at], data[at:]])
    names = {m.get("CallerIDName") for m in msgs if m.get("CallerIDName")}
    assert "ООО Ромашка" in names
    assert framer.error_count == 0


def test_headers_case_insensitive_and_repeated() -> None:
    framer = AmiFramer(expect_banner=False)
    (msg,) = framer.feed(
        b"Event: CEL\r\nUniqueID: 1.2\r\nVariable: A=1\r\nvariable: B=2\r\nEmpty:\r\n\r\n"
    )
    assert msg.event == "CEL"
    assert msg.get("uniqueid") == msg.get("Uniqueid") == "1.2"
    assert msg.get_all("VARIABLE") == ["A=1", "B=2"]
    assert msg.get("Empty") == "" and "empty" in msg
    assert msg.get("Missing", "x") == "x" and "Missing" not in msg
    assert msg.response == "" and msg.action_id == ""


def test_bare_lf_and_crlf_mixed() -> None:
    framer = AmiFramer()
    msgs = framer.feed(
        b"Asterisk Call Manager/11.0.0\nResponse: Success\nActionID: 7\n\n"
        b"Event: Hangup\r\nUniqueid: 1.3\r\n\r\n"
    )
    assert framer.banner == "Asterisk Call Manager/11.0.0"
    assert [m.response or m.event for m in msgs] == ["Success", "Hangup"]
    assert msgs[0].action_id == "7"


def test_bare_lf_stream_split_anywhere() -> None:
    data = (
        b"Asterisk Call Manager/11.0.0\nEvent: Hangup\nUniqueid: 1.4\n\nEvent: Newstate\nA: 1\n\n"
    )
    for cut in range(len(data) + 1):
        framer = AmiFramer()
        msgs = framer.feed(data[:cut]) + framer.feed(data[cut:])
        assert [m.event for m in msgs] == ["Hangup", "Newstate"], cut
        assert framer.pending_bytes == 0 and framer.error_count == 0


def test_framed_message_reads_like_a_built_one() -> None:
    (msg,) = AmiFramer(expect_banner=False).feed(EVENT)
    built = AmiMessage(msg.headers)
    assert msg == built and hash(msg) == hash(built)
    assert msg.event == built.event == "Newchannel"
    assert msg.get("calleridname") == "ООО Ромашка" and msg.to_bytes() == built.to_bytes() == EVENT
    assert msg.mentions("Ромашка") and built.mentions("Ромашка") and not msg.mentions("Hangup")
    with pytest.raises(AttributeError):
        msg._text = "x"  # type: ignore[misc]


def test_originate_response_keeps_its_response_header() -> None:
    framer = AmiFramer(expect_banner=False)
    (msg,) = framer.feed(b"Event: OriginateResponse\r\nResponse: Failure\r\nReason: 3\r\n\r\n")
    assert msg.event == "OriginateResponse" and msg.response == "Failure"
    assert framer.error_count == 0


def _errors(framer: AmiFramer) -> list[type[AmiProtocolError]]:
    return [type(e) for e in framer.drain_errors()]


def test_invalid_utf8_skips_message_and_resyncs() -> None:
    framer = AmiFramer(expect_banner=False)
    msgs = framer.feed(b"Event: Bad\r\nCallerIDName: \xff\xfe\r\nUniqueid: 9\r\n\r\n" + EVENT)
    assert [m.event for m in msgs] == ["Newchannel"]
    assert msgs[0].get("CallerIDName") == "ООО Ромашка"
    assert _errors(framer) == [AmiDecodeError]
    assert framer.error_count == 1
    assert framer.drain_errors() == []


def test_truncated_utf8_at_end_of_line_is_an_error() -> None:
    framer = AmiFramer(expect_banner=False)
    msgs = framer.feed(b"Event: Cdr\r\nCallerID: \xd0\r\n\r\n" + EVENT)
    assert [m.event for m in msgs] == ["Newchannel"]
    assert _errors(framer) == [AmiDecodeError]


def test_ten_megabyte_line_is_skipped_without_buffering() -> None:
    framer = AmiFramer(max_message_bytes=65_536, expect_banner=False)
    msgs = framer.feed(b"Event: Huge\r\nData: ")
    block = b"x" * 65_536
    for _ in range(160):  # 10 MiB in 64 KiB reads
        msgs += framer.feed(block)
        assert framer.pending_bytes < 65_536
    msgs += framer.feed(b"\r\nMore: y\r\n\r\n" + EVENT)
    assert [m.event for m in msgs] == ["Newchannel"]
    assert _errors(framer) == [AmiMessageTooLarge]


def test_ten_megabyte_line_in_one_read() -> None:
    framer = AmiFramer(expect_banner=False)
    msgs = framer.feed(b"Event: Huge\r\nData: " + b"y" * 10_000_000 + b"\r\n\r\n" + EVENT)
    assert [m.event for m in msgs] == ["Newchannel"]
    assert _errors(framer) == [AmiMessageTooLarge]


def test_malformed_line_is_skipped_message_kept() -> None:
    framer = AmiFramer(expect_banner=False)
    (msg,) = framer.feed(
        b"Event: Hangup\r\nthis is not a header\r\n: novalue\r\nUniqueid: 5\r\n\r\n"
    )
    assert msg.get("Uniqueid") == "5"
    assert _errors(framer) == [AmiMalformedLine, AmiMalformedLine]


def test_message_cut_by_next_event_is_dropped() -> None:
    framer = AmiFramer(expect_banner=False)
    msgs = framer.feed(b"Event: DialBegin\r\nDestUniq" + b"\r\n" + EVENT)
    assert [m.event for m in msgs] == ["Newchannel"]
    assert AmiTruncatedMessage in _errors(framer)


def test_truncated_at_eof() -> None:
    framer = AmiFramer(expect_banner=False)
    assert framer.feed(b"Event: Hangup\r\nUniqueid: 1.") == []
    framer.feed_eof()
    assert _errors(framer) == [AmiTruncatedMessage]
    assert framer.pending_bytes == 0
    assert [m.event for m in framer.feed(EVENT)] == ["Newchannel"]


def test_random_garbage_never_raises_and_next_message_survives() -> None:
    rng = random.Random(1234)
    framer = AmiFramer(max_message_bytes=4096)
    framer.feed(b"Asterisk Call Manager/11.0.0\r\n")
    for _ in range(200):
        framer.feed(rng.randbytes(rng.randint(1, 3000)))
    framer.feed(b"\r\n\r\n")
    msgs = framer.feed(EVENT)
    assert [m.event for m in msgs] == ["Newchannel"]
    assert framer.error_count > 0
    assert len(framer.drain_errors()) <= 1000


def test_banner_absent() -> None:
    framer = AmiFramer()
    msgs = framer.feed(EVENT)
    assert framer.banner is None
    assert [m.event for m in msgs] == ["Newchannel"]


def test_encode_action() -> None:
    raw = encode_action(
        "Originate",
        {"Channel": "PJSIP/101", "Variable": ["CRM_CALL_ID=42", "X=ю"], "Async": "true"},
        action_id="c2c-1",
    )
    assert (
        raw
        == (
            "Action: Originate\r\nActionID: c2c-1\r\nChannel: PJSIP/101\r\n"
            "Variable: CRM_CALL_ID=42\r\nVariable: X=ю\r\nAsync: true\r\n\r\n"
        ).encode()
    )
    (msg,) = AmiFramer(expect_banner=False).feed(raw)
    assert msg.get("Action") == "Originate" and msg.get_all("Variable")[1] == "X=ю"


@pytest.mark.parametrize(
    "headers",
    [{"Channel": "PJSIP/101\r\nAction: Hangup"}, {"Bad: name": "x"}, {"": "x"}, {"ActionID": "x"}],
)
def test_encode_action_refuses_injection(headers: dict[str, str]) -> None:
    with pytest.raises(AmiEncodeError):
        encode_action("Originate", headers, action_id="1")


def test_message_round_trip_bytes() -> None:
    msg = AmiMessage.of(("Event", "Hangup"), Uniqueid="1.1")
    (back,) = AmiFramer(expect_banner=False).feed(msg.to_bytes())
    assert back == msg


@pytest.mark.parametrize("seed", range(5))
def test_any_chunking_gives_the_same_messages_and_errors(seed: int) -> None:
    rng = random.Random(seed)
    parts = [EVENT]
    for _ in range(30):
        kind = rng.randrange(5)
        if kind == 0:
            parts.append(rng.randbytes(rng.randint(1, 300)) + b"\r\n\r\n")
        elif kind == 1:
            parts.append(b"Event: Bad\r\nName: \xd0\r\n\r\n")
        elif kind == 2:
            parts.append(b"Event: Big\r\nData: " + b"q" * rng.randint(100, 400) + b"\r\n\r\n")
        elif kind == 3:
            parts.append(b"Event: Cut\r\nA: 1\r\n")
        else:
            parts.append(EVENT)
    data = BANNER_LINE + b"".join(parts)

    def run(pieces: list[bytes]) -> tuple[list[AmiMessage], list[str]]:
        framer = AmiFramer(max_message_bytes=256)
        msgs = feed_all(framer, pieces)
        framer.feed_eof()
        return msgs, [type(e).__name__ for e in framer.drain_errors()]

    # Messages never depend on how the bytes were split. (Which error a line that is both
    # too long and not UTF-8 gets may: whichever shows first in the bytes at hand.)
    msgs, errors = run([data])
    by_byte = run([data[i : i + 1] for i in range(len(data))])
    cuts = sorted(rng.sample(range(1, len(data)), 40))
    random_cuts = run([data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)])
    assert msgs == by_byte[0] == random_cuts[0]
    assert errors and by_byte[1] and random_cuts[1]
    assert sum(m.event == "Newchannel" for m in msgs) >= 1
