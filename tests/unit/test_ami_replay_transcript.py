"""Transcript editing for the fake AMI server: chunk boundaries follow every edit."""

from __future__ import annotations

from pathlib import Path

from connector.adapters.ami_replay_server import Chunk, Transcript, channels_up

DATA = Path(__file__).resolve().parents[1] / "data" / "ami"

RAW = (
    b"Asterisk Call Manager/11.0.0\r\n"
    b"Response: Success\r\nActionID: login-1\r\nMessage: Authentication accepted\r\n\r\n"
    b"Event: Newchannel\r\nChannel: PJSIP/101-1\r\nUniqueid: 1795900871.1\r\n"
    b"Linkedid: 1795900871.0\r\n\r\n"
    b"Event: Hangup\r\nChannel: PJSIP/101-1\r\nUniqueid: 1795900871.1\r\n"
    b"Linkedid: 1795900871.0\r\n\r\n"
    b"Response: Goodbye\r\nActionID: x\r\n\r\n"
)


def chunked(data: bytes, size: int) -> Transcript:
    chunks = tuple(Chunk(i / 10, data[i : i + size]) for i in range(0, len(data), size))
    return Transcript(chunks, eof=True)


def test_edit_keeps_bytes_and_moves_boundaries() -> None:
    t = chunked(b"0123456789", 3)  # 012|345|678|9
    edited = t.edit([(1, 2, b"AB"), (4, 7, b"")])
    assert edited.data == b"0AB23789"
    assert [c.data for c in edited.chunks] == [b"0AB2", b"3", b"78", b"9"]
    assert [c.at for c in edited.chunks] == [0.0, 0.3, 0.6, 0.9]


def test_events_only_drops_banner_responses_and_logoff_eof() -> None:
    for size in (1, 7, 64, len(RAW)):
        t = chunked(RAW, size).events_only()
        assert t.data.startswith(b"Event: Newchannel\r\n")
        assert t.data.endswith(b"Linkedid: 1795900871.0\r\n\r\n")
        assert [m.event for m in t.messages()] == ["Newchannel", "Hangup"]
        assert t.eof is False  # the EOF answered the recorder's own Logoff


def test_split_before_and_channels_up() -> None:
    head, tail = chunked(RAW, 5).events_only().split_before(b"Event: Hangup")
    assert head.data + tail.data == chunked(RAW, 5).events_only().data
    (up,) = channels_up(head)
    assert up["Channel"] == "PJSIP/101-1" and up["Uniqueid"] == "1795900871.1"
    assert channels_up(head + tail) == []


def test_with_round_renames_ids_and_substitute_whole_tokens() -> None:
    t = chunked(RAW, 9).events_only()
    assert t.with_round(0) is t
    second = t.with_round(2)
    assert b"Uniqueid: 1797900871.1\r\n" in second.data
    assert b"Linkedid: 1797900871.0\r\n" in second.data
    assert b"1795900871" not in second.data
    named = t.substitute({b"1795900871.1": b"c2c-abc"})
    assert b"Uniqueid: c2c-abc\r\n" in named.data
    assert b"Linkedid: 1795900871.0\r\n" in named.data  # not a prefix match


def test_load_real_transcript_with_its_chunking() -> None:
    t = Transcript.load(DATA / "inbound_answered.ami")
    assert t.data == (DATA / "inbound_answered.ami").read_bytes()
    assert len(t.chunks) > 1 and t.duration > 0
    events = t.events_only()
    assert events.messages()[0].event == "FullyBooted"
    reconnect = Transcript.load(DATA / "reconnect.ami").events_only()
    assert reconnect.eof is True  # the server closed after Shutdown
