"""Write pcap files of RTP streams that ``sipp``'s ``play_pcap_audio`` can replay.

Debian's sip-tester ships only a PCMA pcap, so PCMU audio (payload type 0) and RFC 4733 DTMF
(payload type 101) are generated here: Ethernet / IPv4 / UDP / RTP, 20 ms per packet.
"""

from __future__ import annotations

import audioop
import math
import struct
from pathlib import Path

__all__ = ["dtmf_payloads", "tone_ulaw", "write_rtp_pcap"]

SAMPLES_PER_PACKET = 160  # 20 ms at 8 kHz


def tone_ulaw(seconds: float, hz: float = 1000.0, amplitude: int = 12000) -> bytes:
    """A sine tone as 8 kHz mu-law bytes."""
    n = int(seconds * 8000)
    pcm = b"".join(
        struct.pack("<h", int(amplitude * math.sin(2 * math.pi * hz * i / 8000))) for i in range(n)
    )
    return audioop.lin2ulaw(pcm, 2)


def dtmf_payloads(digit: str, steps: int = 5) -> list[tuple[bytes, bool]]:
    """RFC 4733 payloads of one key press and whether each starts the event (marker bit)."""
    event = "0123456789*#ABCD".index(digit)
    out = []
    for i in range(steps + 3):
        end = i >= steps
        duration = min(i + 1, steps) * SAMPLES_PER_PACKET
        out.append((struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration), i == 0))
    return out


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack("!10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(payload: bytes, src_port: int = 6000, dst_port: int = 6002) -> bytes:
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
    src = bytes([127, 0, 0, 1])
    dst = bytes([127, 0, 0, 1])
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _ip_checksum(ip)) + ip[12:]
    eth = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00"
    return eth + ip + udp


def write_rtp_pcap(path: Path, audio_ulaw: bytes, dtmf: str = "", ssrc: int = 0x1234ABCD) -> int:
    """Write ``audio_ulaw`` as PCMU packets, then ``dtmf`` key presses; returns the packet count.

    The audio's RTP timestamps are contiguous, so a receiver that places samples by timestamp
    gets exactly ``len(audio_ulaw)`` samples (rounded down to whole 20 ms packets).
    """
    packets: list[tuple[float, bytes]] = []
    t = 0.0
    seq = 1000
    ts = 50_000
    for off in range(0, len(audio_ulaw) - SAMPLES_PER_PACKET + 1, SAMPLES_PER_PACKET):
        marker = 0x80 if off == 0 else 0
        rtp = struct.pack("!BBHII", 0x80, marker | 0, seq, ts, ssrc)
        packets.append((t, rtp + audio_ulaw[off : off + SAMPLES_PER_PACKET]))
        seq += 1
        ts += SAMPLES_PER_PACKET
        t += 0.02
    for digit in dtmf:
        t += 0.1
        for payload, first in dtmf_payloads(digit):
            rtp = struct.pack("!BBHII", 0x80, (0x80 if first else 0) | 101, seq, ts, ssrc)
            packets.append((t, rtp + payload))
            seq += 1
            t += 0.02
        ts += SAMPLES_PER_PACKET * 10
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for when, payload in packets:
            frame = _frame(payload)
            sec = int(when)
            usec = int(round((when - sec) * 1_000_000))
            fh.write(struct.pack("<IIII", 1_700_000_000 + sec, usec, len(frame), len(frame)))
            fh.write(frame)
    return len(packets)
