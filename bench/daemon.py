"""A real ``connector run`` process for the benchmarks: its configuration, seeded store, launch.

:class:`Daemon` writes a configuration file into a fresh work directory, migrates and seeds the
SQLite store directly (agents with an extension and an API token each, contacts to look up),
starts ``connector --config X run`` as a child process (with the open-file limit raised, since
thousands of websockets are each a file descriptor) and stops it again. The benchmark drives it
from the parent process over loopback.
"""

from __future__ import annotations

import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import RESULTS, free_port, wait_port

TMP = RESULTS / "tmp"
PBX = "bench"
AMI_USER = "connector"
AMI_SECRET = "bench-secret"


def raise_nofile() -> None:
    """Raise this process's soft open-file limit to its hard limit (websockets are files)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def agent_token(i: int) -> str:
    """The API token of benchmark agent ``i``."""
    return f"vc_bench_agent_{i:06d}_000000000000000000000000000000"


def agent_extension(i: int) -> str:
    """The extension of benchmark agent ``i`` on the benchmark PBX."""
    return str(10_000 + i)


def contact_number(i: int) -> str:
    """The phone number of seeded contact ``i`` (callers are drawn from these)."""
    return f"+7916{i:07d}"


ADMIN_TOKEN = "vc_bench_admin_0000000000000000000000000000000000"


def seed(path: Path, agents: int, contacts: int, role: str = "agent") -> None:
    """Migrate ``path`` and fill it: an admin, ``agents`` users of ``role`` (one extension and
    one token each, teams of 50), and ``contacts`` contacts with one number each."""
    from crm_sync.auth import hash_token
    from crm_sync.db import migrate

    migrate(f"sqlite+aiosqlite:///{path}")
    db = sqlite3.connect(path)
    now = datetime.now(UTC).isoformat(sep=" ")
    db.execute(
        "INSERT INTO users (id, login, name, role, team, active, created_at, updated_at) "
        "VALUES (1, 'admin', 'Admin', 'admin', '', 1, ?, ?)",
        (now, now),
    )
    db.execute(
        "INSERT INTO api_tokens (user_id, token_hash, prefix, name, scope, created_at) "
        "VALUES (1, ?, 'vc_bench', 'bench', 'user', ?)",
        (hash_token(ADMIN_TOKEN), now),
    )
    db.executemany(
        "INSERT INTO users (id, login, name, role, team, active, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
        [
            (i + 2, f"agent{i}", f"Agent {i}", role, f"team{i // 50}", now, now)
            for i in range(agents)
        ],
    )
    db.executemany(
        "INSERT INTO extensions (user_id, pbx, extension) VALUES (?, ?, ?)",
        [(i + 2, PBX, agent_extension(i)) for i in range(agents)],
    )
    db.executemany(
        "INSERT INTO api_tokens (user_id, token_hash, prefix, name, scope, created_at) "
        "VALUES (?, ?, 'vc_bench', 'bench', 'user', ?)",
        [(i + 2, hash_token(agent_token(i)), now) for i in range(agents)],
    )
    db.executemany(
        "INSERT INTO contacts (id, name, emails, tags, notes, created_at, updated_at) "
        "VALUES (?, ?, '[]', '[]', '', ?, ?)",
        [(i + 1, f"Contact {i}", now, now) for i in range(contacts)],
    )
    db.executemany(
        "INSERT INTO phones (contact_id, raw, e164, national, national_rev, label) "
        "VALUES (?, ?, ?, ?, ?, '')",
        [
            (
                i + 1,
                contact_number(i),
                contact_number(i),
                contact_number(i)[2:],
                contact_number(i)[2:][::-1],
            )
            for i in range(contacts)
        ],
    )
    db.commit()
    db.close()


def _nofile_child() -> None:
    raise_nofile()


@dataclass
class Daemon:
    """One connector process on fresh ports and a fresh store under bench/results/tmp/<name>."""

    name: str
    agents: int = 0
    contacts: int = 10_000
    role: str = "agent"
    ami_port: int | None = None
    webhook: dict[str, str] | None = None
    hub: dict[str, Any] = field(default_factory=dict)
    port: int = 0
    hub_port: int = 0
    work: Path = field(default_factory=Path)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.work = TMP / self.name
        self.port = free_port()
        self.hub_port = free_port()

    def configure(self) -> None:
        """Write the configuration and the seeded store."""
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        db = self.work / "connector.db"
        seed(db, self.agents, self.contacts, self.role)
        hub = {"port": self.hub_port, "max_connections_per_user": 20, **self.hub}
        lines = [
            "[server]",
            f"port = {self.port}",
            "[storage]",
            f'data_dir = "{self.work}"',
            f'database_url = "sqlite+aiosqlite:///{db}"',
            "[logging]",
            'level = "WARNING"',
            "[hub]",
            *(f"{k} = {_toml(v)}" for k, v in hub.items()),
        ]
        if self.ami_port is not None:
            lines += [
                "[[pbx]]",
                f'name = "{PBX}"',
                'type = "asterisk"',
                'host = "127.0.0.1"',
                f"port = {self.ami_port}",
                f'username = "{AMI_USER}"',
                f'secret = "{AMI_SECRET}"',
                "ping_interval = 30",
                "ping_timeout = 10",
            ]
        if self.webhook is not None:
            lines += ["[[webhook]]", *(f"{k} = {_toml(v)}" for k, v in self.webhook.items())]
        (self.work / "connector.toml").write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 60.0) -> None:
        """Start ``connector run`` and wait until both the API and the hub listen."""
        exe = Path(sys.executable).with_name("connector")
        log = (self.work / "daemon.log").open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [str(exe), "--config", str(self.work / "connector.toml"), "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_nofile_child,
        )
        wait_port(self.port, timeout)
        wait_port(self.hub_port, timeout)

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 20 s)."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def rss_mb(self) -> float:
        """Resident memory of the daemon in MB."""
        import psutil

        assert self.proc is not None
        return float(psutil.Process(self.proc.pid).memory_info().rss) / 1e6

    def get(self, path: str) -> bytes:
        """GET an API path with the admin token."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            body: bytes = resp.read()
            return body

    def metric(self, name: str) -> dict[str, float]:
        """Every sample of Prometheus metric ``name`` (labels text -> value)."""
        out: dict[str, float] = {}
        for line in self.get("/metrics").decode().splitlines():
            if line.startswith(name) and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key[len(name) :]] = float(value)
        return out

    def hub_url(self, i: int, extra: str = "") -> str:
        """The websocket URL agent ``i`` connects to."""
        return f"ws://127.0.0.1:{self.hub_port}/ws?token={agent_token(i)}{extra}"

    def __enter__(self) -> Daemon:
        self.configure()
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def wait_for(condition: Any, timeout: float, what: str) -> None:
    """Poll ``condition()`` until true (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what}: not within {timeout:g} s")
