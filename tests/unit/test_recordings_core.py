"""Pure pieces of the recordings feature: WAV emptiness, storage paths, path confinement,
who may listen, recording ids from URLs."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connector.recordings import is_header_only_wav, resolve_stored, storage_path
from connector.web.api_recordings import may_hear, parse_recording_id
from connector.web.errors import ApiError
from crm_sync.auth import Principal

WAVS = Path(__file__).resolve().parent.parent / "data" / "recordings"


def wav_header(data_len: int, extra_chunk: bytes = b"") -> bytes:
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 8000, 16000, 2, 16)
    body = b"WAVE" + fmt + extra_chunk + struct.pack("<4sI", b"data", data_len)
    return b"RIFF" + struct.pack("<I", len(body) + data_len) + body


def test_recordings_real_files_empty_or_not() -> None:
    for path in sorted(WAVS.glob("*.wav")):
        data = path.read_bytes()
        assert is_header_only_wav(data[:64], len(data)) == (len(data) == 44), path.name


def test_recordings_header_only_variants() -> None:
    assert is_header_only_wav(b"", 0)
    assert is_header_only_wav(wav_header(0), 44)
    list_chunk = struct.pack("<4sI", b"LIST", 4) + b"INFO"
    head = wav_header(0, list_chunk)
    assert is_header_only_wav(head, len(head))
    assert not is_header_only_wav(wav_header(16000, list_chunk), len(head) + 16000)
    assert not is_header_only_wav(b"ID3\x03" + b"\0" * 60, 5000)  # not a WAV: let ffmpeg decide


def test_recordings_storage_path_is_dated() -> None:
    day = datetime(2026, 1, 5, 23, 59, tzinfo=UTC)
    assert str(storage_path(42, day, "mp3")) == "2026/01/05/42.mp3"
    assert str(storage_path(7, day, "opus")) == "2026/01/05/7.opus"


@pytest.mark.parametrize(
    "relative",
    ["", "/etc/passwd", "../x.mp3", "2026/../../x.mp3", "..", ".", "a/\x00b", "\\windows"],
)
def test_recordings_resolve_refuses_escapes(tmp_path: Path, relative: str) -> None:
    assert resolve_stored(tmp_path / "rec", relative) is None


def test_recordings_resolve_accepts_inside(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    assert resolve_stored(root, "2026/11/28/1.mp3") == (root / "2026/11/28/1.mp3").resolve()


def who(role: str, uid: int | None = 1, team: str = "sales") -> Principal:
    return Principal(user_id=uid, login="x", role=role, team=team, extensions=(), token_id=1)


def test_recordings_who_may_hear() -> None:
    call = [(1, "sales"), (2, "sales")]
    assert may_hear(who("admin", 99, ""), call)
    assert may_hear(who("admin", 99, ""), [])
    assert may_hear(who("agent", 2), call)
    assert not may_hear(who("agent", 3), call)
    assert may_hear(who("supervisor", 50, "sales"), call)
    assert not may_hear(who("supervisor", 50, "support"), call)
    assert not may_hear(who("supervisor", 50, ""), [(1, "")])
    assert not may_hear(who("pbx", None, ""), call)
    assert not may_hear(who("agent", 1), [])


@pytest.mark.parametrize("raw", ["abc", "-1", "1.0", "", "１", "..", "1" * 19, " 1"])
def test_recordings_bad_ids_are_400(raw: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_recording_id(raw)
    assert err.value.status == 400


def test_recordings_good_id() -> None:
    assert parse_recording_id("0042") == 42
