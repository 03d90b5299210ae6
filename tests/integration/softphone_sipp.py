"""Running sipp as a real SIP peer for the softphone tests (own process group, killed on stop)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from connector.config import Secret, SoftphoneSettings

SCENARIOS = Path(__file__).resolve().parent.parent / "data" / "sip"


def free_udp_port() -> int:
    """A UDP port that was free a moment ago on 127.0.0.1 (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sipp:
    """One sipp process running a scenario from tests/data/sip as a UAS on 127.0.0.1."""

    def __init__(self, scenario: str, port: int, cwd: Path, **variables: str | int) -> None:
        self.scenario = scenario
        self.port = port
        self.cwd = cwd
        self.variables = variables
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = cwd / f"sipp-{scenario.replace(':', '-')}-{port}.log"

    def start(self) -> Sipp:
        """Start sipp in its own process group (bounded by -timeout)."""
        scenario = (
            ["-sn", self.scenario.removeprefix("builtin:")]
            if self.scenario.startswith("builtin:")
            else ["-sf", str(SCENARIOS / f"{self.scenario}.xml")]
        )
        args = [
            "sipp", *scenario,
            "-i", "127.0.0.1", "-p", str(self.port), "-mp", str(free_udp_port()),
            "-nostdin", "-timeout", "60", "-timeout_error", "-trace_err",
            "-error_file", str(self.log.with_suffix(".errors")),
        ]  # fmt: skip
        for name, value in self.variables.items():
            args += ["-set", name, str(value)]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                args, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.wait_bound()
        return self

    def wait_bound(self, timeout: float = 10.0) -> None:
        """Wait until sipp has bound its UDP port (probing with bind), bounded by ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"sipp exited early: {self.log.read_text(errors='replace')}")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind(("127.0.0.1", self.port))
                except OSError:
                    return  # taken: sipp is listening
            time.sleep(0.02)  # polling a condition that has no event to wait on
        raise TimeoutError(f"sipp did not bind UDP port {self.port}")

    def stop(self) -> None:
        """Kill the process group and reap it."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=10)


def phone_settings(registrar_port: int, tmp: Path, password: str = "secret") -> SoftphoneSettings:
    """Settings for a phone registered as alice at the sipp registrar on ``registrar_port``."""
    low = free_udp_port()
    return SoftphoneSettings(
        server="127.0.0.1",
        port=registrar_port,
        username="alice",
        password=Secret(password),
        local_ip="127.0.0.1",
        local_port=free_udp_port(),
        rtp_port_low=low,
        rtp_port_high=low,
        register_timeout=2.0,
        audio_out_dir=tmp / "recordings",
        pbx="softphone",
    )
