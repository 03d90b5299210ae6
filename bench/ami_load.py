"""AMI load generator: ringing calls written to whoever logs in to a fake AMI endpoint.

Each call is an inbound call from a seeded contact's number through ``PJSIP/trunk`` to one
agent's phone (``PJSIP/<extension>``, context ``agents``), as Asterisk 18 reports it:
``Newchannel`` x2 and ``DialBegin`` (written together; the write time is the call's start),
then ``DialEnd ANSWER`` after ``answer_after`` seconds and the two ``Hangup`` events after
``hangup_after`` seconds. Every call has fresh Uniqueid/Linkedid values, so the Linkedid
identifies the conversation on the agent's websocket (``bench/<linkedid>``).

The endpoint is the project's :class:`~connector.adapters.ami_replay_server.FakeAmiServer`
(login, ping, CoreShowChannels); the calls are written with its ``send_raw``, one whole batch of
messages per write.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from connector.adapters.ami_replay_server import FakeAmiServer

DID = "74951234500"


def _msg(pairs: list[tuple[str, str]]) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in pairs) + "\r\n").encode()


def _channel(
    prefix: str,
    channel: str,
    state: str,
    number: str,
    context: str,
    exten: str,
    uid: str,
    linked: str,
) -> list[tuple[str, str]]:
    desc = {"0": "Down", "4": "Ring", "5": "Ringing", "6": "Up"}[state]
    return [
        (prefix + "Channel", channel),
        (prefix + "ChannelState", state),
        (prefix + "ChannelStateDesc", desc),
        (prefix + "CallerIDNum", number),
        (prefix + "CallerIDName", "<unknown>"),
        (prefix + "ConnectedLineNum", "<unknown>"),
        (prefix + "ConnectedLineName", "<unknown>"),
        (prefix + "Language", "en"),
        (prefix + "AccountCode", ""),
        (prefix + "Context", context),
        (prefix + "Exten", exten),
        (prefix + "Priority", "1"),
        (prefix + "Uniqueid", uid),
        (prefix + "Linkedid", linked),
    ]


@dataclass(frozen=True)
class Call:
    """The AMI bytes of one call, in the three writes the generator makes."""

    linkedid: str
    extension: str
    ring: bytes
    answer: bytes
    hangup: bytes


def make_call(n: int, extension: str, caller: str, answered: bool = True) -> Call:
    """Call number ``n`` (unique ids) from ``caller`` to the agent on ``extension``; a call
    not ``answered`` rings until the caller hangs up (a missed call)."""
    base = 1_800_000_000 + n
    trunk_uid, agent_uid = f"{base}.1", f"{base}.2"
    trunk = f"PJSIP/trunk-{2 * n:08x}"
    phone = f"PJSIP/{extension}-{2 * n + 1:08x}"
    trunk_fields = _channel("", trunk, "4", caller, "from-trunk", DID, trunk_uid, trunk_uid)
    phone_fields = _channel("", phone, "0", extension, "agents", extension, agent_uid, trunk_uid)
    dest_fields = _channel("Dest", phone, "0", extension, "agents", extension, agent_uid, trunk_uid)
    ring = (
        _msg([("Event", "Newchannel"), ("Privilege", "call,all"), *trunk_fields])
        + _msg([("Event", "Newchannel"), ("Privilege", "call,all"), *phone_fields])
        + _msg(
            [
                ("Event", "DialBegin"),
                ("Privilege", "call,all"),
                *trunk_fields,
                *dest_fields,
                ("DialString", extension),
            ]
        )
    )
    answer = _msg(
        [
            ("Event", "DialEnd"),
            ("Privilege", "call,all"),
            *trunk_fields,
            *dest_fields,
            ("DialStatus", "ANSWER" if answered else "CANCEL"),
        ]
    )
    hangup = b"".join(
        _msg(
            [
                ("Event", "Hangup"),
                ("Privilege", "call,all"),
                *fields,
                ("Cause", "16"),
                ("Cause-txt", "Normal Clearing"),
            ]
        )
        for fields in (phone_fields, trunk_fields)
    )
    return Call(trunk_uid, extension, ring, answer, hangup)


@dataclass
class AmiLoad:
    """A fake AMI endpoint plus the schedule of calls written to it."""

    username: str
    secret: str
    answer_after: float = 1.0
    hangup_after: float = 3.0
    server: FakeAmiServer = field(init=False)
    written: dict[str, float] = field(default_factory=dict)
    calls: int = 0

    def __post_init__(self) -> None:
        self.server = FakeAmiServer(username=self.username, secret=self.secret)

    async def start(self) -> int:
        """Listen on a free port; returns it."""
        await self.server.start()
        return self.server.port

    async def wait_login(self, timeout: float = 60.0) -> None:
        """Until a client has logged in."""
        await self.server.wait_until(lambda: self.server.logins >= 1, timeout)

    def _later(self, delay: float, data: bytes) -> None:
        asyncio.get_running_loop().call_later(delay, self.server.send_raw, data)

    def write_calls(self, calls: list[Call]) -> None:
        """Write the ringing part of ``calls`` now (one write) and schedule the rest."""
        data = b"".join(c.ring for c in calls)
        now = time.perf_counter()
        self.server.send_raw(data)
        for c in calls:
            self.written[c.linkedid] = now
        self.calls += len(calls)
        if self.answer_after >= 0:
            self._later(self.answer_after, b"".join(c.answer for c in calls))
        self._later(self.hangup_after, b"".join(c.hangup for c in calls))

    async def paced(
        self, make: Callable[[int], Call], rate: float, seconds: float, first: int = 0
    ) -> int:
        """Write ``rate`` calls per second for ``seconds``; returns how many were written."""
        interval = 1.0 / rate
        total = int(rate * seconds)
        t0 = time.perf_counter()
        for k in range(total):
            due = t0 + k * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            self.write_calls([make(first + k)])
        return total

    async def stop(self) -> None:
        """Close the endpoint."""
        await self.server.stop()
