"""``connector replay FILE.ami --speed 0`` prints the call events as JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connector.cli import main
from connector.events.model import CallEnded
from connector.events.wire import from_json

DATA = Path(__file__).resolve().parents[1] / "data" / "ami"


def test_replay_prints_wire_events(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(DATA / "queue_call.ami"), "--speed", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    types = [json.loads(line)["type"] for line in lines]
    assert types == [
        "call.ringing",
        "call.ringing",
        "call.answered",
        "call.claimed",
        "call.ended",
    ]
    events = [from_json(line) for line in lines]
    end = events[-1]
    assert isinstance(end, CallEnded)
    assert end.answered_by == "202" and end.caller.name == "ООО Ромашка"


def test_replay_with_observations(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(DATA / "inbound_busy.ami"), "--speed", "0", "--observations"]) == 0
    types = [json.loads(line)["type"] for line in capsys.readouterr().out.splitlines()]
    assert "obs.leg_ringing" in types and "obs.leg_hung_up" in types
    assert types[-1] == "call.ended"


def test_replay_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["replay", str(tmp_path / "nope.ami"), "--speed", "0"]) == 1
    assert "nope.ami" in capsys.readouterr().err


def test_replay_without_chunk_index(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "call.ami"
    path.write_bytes((DATA / "inbound_answered.ami").read_bytes())
    assert main(["replay", str(path), "--speed", "0"]) == 0
    last = from_json(capsys.readouterr().out.splitlines()[-1])
    assert isinstance(last, CallEnded) and last.answered_by == "101"
