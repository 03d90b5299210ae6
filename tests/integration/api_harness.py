"""A running API on a real SQLite file, reached over real HTTP, with a cast of users.

The cast: ``admin``; team A with supervisor ``sup_a`` and agents ``agent_a`` (ext 101) and
``agent_a2`` (ext 102); team B with supervisor ``sup_b`` and agent ``agent_b`` (ext 201).
Each has an API token in :attr:`ApiWorld.tokens`; ``agent_a`` also has a password.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from connector.app import Runtime, build_runtime
from connector.config import settings_from_mapping
from connector.web.app import create_app
from crm_sync import users

PASSWORD = "correct horse battery"

CAST: dict[str, dict[str, Any]] = {
    "admin": {"role": "admin", "team": ""},
    "sup_a": {"role": "supervisor", "team": "A"},
    "agent_a": {"role": "agent", "team": "A", "extensions": [{"pbx": "main", "extension": "101"}]},
    "agent_a2": {
        "role": "agent",
        "team": "A",
        "extensions": [{"pbx": "main", "extension": "102"}],
    },
    "sup_b": {"role": "supervisor", "team": "B"},
    "agent_b": {"role": "agent", "team": "B", "extensions": [{"pbx": "main", "extension": "201"}]},
}


@dataclass
class ApiWorld:
    """The client, the runtime and the cast (user ids and tokens by login)."""

    client: TestClient[Any, Any]
    runtime: Runtime
    ids: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        """The Authorization header of ``who``."""
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def call(
        self,
        who: str | None,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Make a request as ``who`` (None: no token); returns (status, decoded JSON or text)."""
        hdrs = dict(headers or {})
        if who is not None:
            hdrs.update(self.auth(who))
        kwargs: dict[str, Any] = {"headers": hdrs}
        if raw is not None:
            kwargs["data"] = raw
        elif body is not None:
            kwargs["json"] = body
        async with self.client.request(method, path, **kwargs) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()

    async def ok(self, who: str | None, method: str, path: str, body: Any = None) -> Any:
        """Make a request that must succeed (2xx); returns the decoded body."""
        status, data = await self.call(who, method, path, body)
        assert 200 <= status < 300, (method, path, status, data)
        return data


@asynccontextmanager
async def api_world(tmp_path: Path, **sections: dict[str, Any]) -> AsyncIterator[ApiWorld]:
    """Start the API on ``tmp_path`` with the cast; extra settings sections may be given."""
    raw: dict[str, Any] = {"storage": {"data_dir": str(tmp_path / "data")}, **sections}
    settings = settings_from_mapping(raw, base_dir=tmp_path, environ={})
    runtime = await build_runtime(settings)
    try:
        ids: dict[str, int] = {}
        tokens: dict[str, str] = {}
        async with runtime.engine.begin() as conn:
            for login, spec in CAST.items():
                data = {"login": login, "name": login.replace("_", " ").title(), **spec}
                if login == "agent_a":
                    data["password"] = PASSWORD
                user = await users.create_user(conn, data)
                ids[login] = user.id
                tokens[login] = (await users.issue_token(conn, user.id, "test")).token
        await runtime.reload_directory()
        async with TestClient(TestServer(create_app(runtime))) as client:
            yield ApiWorld(client=client, runtime=runtime, ids=ids, tokens=tokens)
    finally:
        await runtime.engine.dispose()
