"""``connector softphone`` as a real process against sipp: clear errors, quit on 'q'."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import pytest

from tests.integration.softphone_sipp import Sipp, free_udp_port

pytestmark = pytest.mark.sip


def write_config(tmp_path: Path, registrar_port: int, local_port: int, password: str) -> Path:
    rtp = free_udp_port()
    path = tmp_path / "softphone.toml"
    path.write_text(
        "[storage]\n"
        f'data_dir = "{tmp_path / "data"}"\n'
        "[softphone]\n"
        'server = "127.0.0.1"\n'
        f"port = {registrar_port}\n"
        'username = "alice"\n'
        f'password = "{password}"\n'
        'local_ip = "127.0.0.1"\n'
        f"local_port = {local_port}\n"
        f"rtp_port_low = {rtp}\n"
        f"rtp_port_high = {rtp}\n"
        "register_timeout = 1.0\n"
    )
    return path


async def run_cli(config: Path, stdin: bytes = b"") -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "connector.cli", "softphone", "--config", str(config),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode("utf-8", "replace")


@pytest.fixture
def registrar(tmp_path: Path):
    sipp = Sipp("registrar", free_udp_port(), tmp_path).start()
    yield sipp
    sipp.stop()


async def test_wrong_password(registrar: Sipp, tmp_path: Path) -> None:
    code, text = await run_cli(write_config(tmp_path, registrar.port, free_udp_port(), "wrong"))
    assert code == 3
    assert "wrong username or password" in text and "403" in text


async def test_unreachable_registrar(tmp_path: Path) -> None:
    code, text = await run_cli(write_config(tmp_path, free_udp_port(), free_udp_port(), "secret"))
    assert code == 4
    assert "registrar is unreachable" in text


async def test_port_in_use(registrar: Sipp, tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        code, text = await run_cli(write_config(tmp_path, registrar.port, port, "secret"))
    assert code == 5
    assert "already in use" in text


async def test_missing_username_is_a_configuration_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, 5060, free_udp_port(), "secret")
    config.write_text(config.read_text().replace('username = "alice"\n', ""))
    code, text = await run_cli(config)
    assert code == 2 and "softphone.username is required" in text


async def test_registers_and_quits_on_q(registrar: Sipp, tmp_path: Path) -> None:
    code, text = await run_cli(
        write_config(tmp_path, registrar.port, free_udp_port(), "secret"), stdin=b"tq"
    )
    assert code == 0, text
    assert "registered" in text and "auto-answer on" in text
