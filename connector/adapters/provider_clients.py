"""Clients of the cloud PBX APIs: click-to-call and recording links.

One client per configured ``[[webhook]]`` account, registered in ``runtime.controls`` under the
account's PBX name (so ``CallControl.originate`` works as for Asterisk):

* Zadarma: ``GET /v1/request/callback/`` signed with ``Authorization: key:signature``;
  recordings through ``GET /v1/pbx/record/request/``.
* Mango: ``POST /vpbx/commands/callback`` (form ``vpbx_api_key``, ``sign``, ``json``); the final
  result arrives later on our ``/result/callback`` and is handed to :meth:`MangoClient.resolve`;
  recordings through ``POST /vpbx/queries/recording/post`` (a redirect to a one-time URL).
* MegaFon: ``POST /makecall`` with ``X-API-KEY``.

The recordings pipeline turns a provider reference (``zadarma:<account>:<id>``,
``mango:<account>:<id>``, as :class:`~connector.events.model.RecordingFound` carries them) into a
downloadable URL with :func:`recording_url`. API base URLs come from ``api_base_url`` (tests point
them at a local server).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp

from connector.adapters import mango as mango_codec
from connector.adapters import zadarma as zadarma_codec
from connector.adapters.errors import ProviderApiError
from connector.config import WebhookAccountSettings

if TYPE_CHECKING:
    from connector.app import OriginateRequest, OriginateResult, Runtime

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BASE_URLS",
    "MangoClient",
    "MegaFonClient",
    "ProviderClient",
    "ZadarmaClient",
    "client_for",
    "is_provider_reference",
    "make_client",
    "recording_url",
    "register_clients",
]

DEFAULT_BASE_URLS = {
    "zadarma": "https://api.zadarma.com",
    "mango": "https://app.mango-office.ru",
    "megafon": "",
}
MANGO_RESULTS = {
    1000: "accepted",
    3100: "bad parameters",
    4001: "not supported",
}

SessionFactory = Callable[[], aiohttp.ClientSession]

_REGISTRY: dict[tuple[str, str], ProviderClient] = {}


@dataclass
class ProviderClient:
    """Base of the provider clients: an account and how to open HTTP sessions."""

    account: WebhookAccountSettings
    session_factory: SessionFactory = aiohttp.ClientSession
    timeout: float = 10.0
    pbx: str = field(init=False, default="")  # the PBX name this account's calls carry

    def __post_init__(self) -> None:
        self.pbx = self.account.pbx_name

    @property
    def base_url(self) -> str:
        """The API base URL (configured, or the provider's public one)."""
        base = self.account.api_base_url or DEFAULT_BASE_URLS.get(self.account.provider, "")
        if not base:
            raise ProviderApiError(f"{self.pbx}: api_base_url is not configured")
        return base.rstrip("/")

    async def _json(self, resp: aiohttp.ClientResponse) -> dict[str, Any]:
        text = await resp.text()
        if resp.status >= 400:
            raise ProviderApiError(f"{self.pbx}: HTTP {resp.status}: {text[:200]}")
        try:
            data = json.loads(text)
        except ValueError:
            raise ProviderApiError(f"{self.pbx}: the reply is not JSON: {text[:200]!r}") from None
        if not isinstance(data, dict):
            raise ProviderApiError(f"{self.pbx}: the reply is not a JSON object")
        return data

    async def originate(self, request: OriginateRequest) -> OriginateResult:
        """Ask the provider to ring the agent, then the number."""
        raise NotImplementedError

    async def hangup(self, conversation_id: str) -> None:
        """Cloud PBX APIs used here cannot end a call by conversation id."""
        raise ProviderApiError(f"{self.pbx}: hanging up is not supported by this provider")

    async def recording_url(self, recording_id: str) -> str:
        """A downloadable URL for a provider recording id."""
        raise ProviderApiError(f"{self.pbx}: recordings are not fetched through the API")


def _result(accepted: bool, reason: str = "") -> OriginateResult:
    from connector.app import OriginateResult

    return OriginateResult(accepted=accepted, reason=reason)


@dataclass
class ZadarmaClient(ProviderClient):
    """Zadarma user API v1."""

    def _headers(self, method_path: str, params: dict[str, str]) -> dict[str, str]:
        auth = zadarma_codec.sign_api_request(
            method_path, params, self.account.key, self.account.secret.get()
        )
        return {"Authorization": auth}

    async def _get(self, method_path: str, params: dict[str, str]) -> dict[str, Any]:
        params = {**params, "format": "json"}
        url = f"{self.base_url}{method_path}?{urlencode(sorted(params.items()))}"
        try:
            async with (
                self.session_factory() as session,
                session.get(
                    url,
                    headers=self._headers(method_path, params),
                    timeout=aiohttp.ClientTimeout(total=self.timeout),
                ) as resp,
            ):
                data = await self._json(resp)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ProviderApiError(f"{self.pbx}: {method_path} failed: {exc!r}") from exc
        if data.get("status") != "success":
            raise ProviderApiError(f"{self.pbx}: {method_path}: {data.get('message', data)}")
        return data

    async def originate(self, request: OriginateRequest) -> OriginateResult:
        """``/v1/request/callback/``: ring ``from`` (the extension), then dial ``to``."""
        try:
            await self._get(
                "/v1/request/callback/", {"from": request.extension, "to": request.number}
            )
        except ProviderApiError as exc:
            return _result(False, str(exc))
        return _result(True)

    async def recording_url(self, recording_id: str) -> str:
        """``/v1/pbx/record/request/?call_id=...``: a temporary link to the file."""
        data = await self._get("/v1/pbx/record/request/", {"call_id": recording_id})
        link = data.get("link")
        if not link and isinstance(data.get("links"), list) and data["links"]:
            link = data["links"][0]
        if not isinstance(link, str) or not link.startswith(("http://", "https://")):
            raise ProviderApiError(f"{self.pbx}: no recording link for {recording_id}")
        return link


@dataclass
class MangoClient(ProviderClient):
    """Mango Office VPBX API; click-to-call results arrive asynchronously."""

    _waiting: dict[str, asyncio.Future[int]] = field(default_factory=dict)
    results: dict[str, int] = field(default_factory=dict)
    result_wait: float = 10.0

    def _form(self, payload: dict[str, Any]) -> dict[str, str]:
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        return {
            "vpbx_api_key": self.account.key,
            "sign": mango_codec.sign(self.account.key, text, self.account.secret.get()),
            "json": text,
        }

    async def _post(
        self, path: str, payload: dict[str, Any], allow_redirects: bool = True
    ) -> tuple[int, dict[str, Any], str]:
        try:
            async with (
                self.session_factory() as session,
                session.post(
                    f"{self.base_url}/vpbx/{path}",
                    data=self._form(payload),
                    allow_redirects=allow_redirects,
                    timeout=aiohttp.ClientTimeout(total=self.timeout),
                ) as resp,
            ):
                if 300 <= resp.status < 400:
                    return resp.status, {}, resp.headers.get("Location", "")
                return resp.status, await self._json(resp), ""
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ProviderApiError(f"{self.pbx}: {path} failed: {exc!r}") from exc

    def resolve(self, command_id: str, result: int) -> None:
        """The final result of a command arrived on ``/result/callback``."""
        self.results[command_id] = result
        waiter = self._waiting.pop(command_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(result)

    async def originate(self, request: OriginateRequest) -> OriginateResult:
        """``commands/callback``, then wait (bounded) for the asynchronous result."""
        payload = {
            "command_id": request.call_id,
            "from": {"extension": request.extension},
            "to_number": request.number,
        }
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[request.call_id] = waiter
        try:
            try:
                _, data, _ = await self._post("commands/callback", payload)
            except ProviderApiError as exc:
                return _result(False, str(exc))
            immediate = _int(data.get("result"))
            if immediate != 1000:
                return _result(False, f"mango result {immediate}: {_mango_reason(immediate)}")
            if request.call_id in self.results:
                final = self.results[request.call_id]
            else:
                try:
                    final = await asyncio.wait_for(
                        waiter, timeout=min(request.timeout, self.result_wait)
                    )
                except TimeoutError:
                    return _result(True, "accepted; the final result has not arrived yet")
            if final != 1000:
                return _result(False, f"mango result {final}: {_mango_reason(final)}")
            return _result(True)
        finally:
            self._waiting.pop(request.call_id, None)

    async def recording_url(self, recording_id: str) -> str:
        """``queries/recording/post`` answers with a redirect to a one-time URL."""
        status, data, location = await self._post(
            "queries/recording/post",
            {"recording_id": recording_id, "action": "download"},
            allow_redirects=False,
        )
        if location.startswith(("http://", "https://")):
            return location
        raise ProviderApiError(f"{self.pbx}: no recording link for {recording_id} ({status})")


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _mango_reason(code: int) -> str:
    if code in MANGO_RESULTS:
        return MANGO_RESULTS[code]
    if 2000 <= code < 3000:
        return "billing restriction"
    if 5000 <= code < 6000:
        return "provider server error"
    return "rejected"


@dataclass
class MegaFonClient(ProviderClient):
    """MegaFon/ITooLabs CRM REST API v1 (``X-API-KEY``)."""

    async def originate(self, request: OriginateRequest) -> OriginateResult:
        """``POST /makecall {"user", "phone"}``; the PBX user is the agent's extension/login."""
        try:
            async with (
                self.session_factory() as session,
                session.post(
                    f"{self.base_url}/makecall",
                    json={"user": request.extension, "phone": request.number},
                    headers={"X-API-KEY": self.account.key},
                    timeout=aiohttp.ClientTimeout(total=self.timeout),
                ) as resp,
            ):
                data = await self._json(resp)
        except (TimeoutError, aiohttp.ClientError, ProviderApiError) as exc:
            return _result(False, str(exc))
        callid = data.get("callid")
        if not callid:
            return _result(False, f"no callid in the reply: {str(data)[:200]}")
        return _result(True, f"callid {callid}")


def make_client(
    account: WebhookAccountSettings, session_factory: SessionFactory = aiohttp.ClientSession
) -> ProviderClient | None:
    """The API client of an account (None for the generic webhook, which has no API)."""
    cls: type[ProviderClient] | None = {
        "zadarma": ZadarmaClient,
        "mango": MangoClient,
        "megafon": MegaFonClient,
    }.get(account.provider)
    if cls is None:
        return None
    return cls(account=account, session_factory=session_factory)


def register_clients(runtime: Runtime) -> dict[tuple[str, str], ProviderClient]:
    """Create a client per account, register it for click-to-call and recording links."""
    out: dict[tuple[str, str], ProviderClient] = {}
    for account in runtime.settings.webhook:
        client = make_client(account)
        if client is None:
            continue
        out[(account.provider, account.account)] = client
        _REGISTRY[(account.provider, account.account)] = client
        if account.provider != "megafon" or account.key:
            runtime.controls[account.pbx_name] = client
    runtime.extras["provider_clients"] = out
    return out


def client_for(provider: str, account: str) -> ProviderClient | None:
    """The registered client of an account."""
    return _REGISTRY.get((provider, account))


def is_provider_reference(reference: str) -> bool:
    """True for ``zadarma:...``/``mango:...`` references that need :func:`recording_url`."""
    return reference.startswith((zadarma_codec.RECORDING_PREFIX, mango_codec.RECORDING_PREFIX))


async def recording_url(reference: str) -> str:
    """A downloadable URL for a recording reference of a RecordingFound observation.

    ``http(s)://`` references are returned as they are; ``zadarma:<account>:<id>`` and
    ``mango:<account>:<id>`` are asked from that account's API (links expire: fetch right away).
    Raises :class:`ProviderApiError` when the account is unknown or the API fails.
    """
    if reference.startswith(("http://", "https://")):
        return reference
    provider, _, rest = reference.partition(":")
    account, sep, rec_id = rest.partition(":")
    if not sep or not rec_id:
        raise ProviderApiError(f"not a provider recording reference: {reference[:100]!r}")
    client = _REGISTRY.get((provider, account))
    if client is None:
        raise ProviderApiError(f"no {provider} account {account!r} is configured")
    return await client.recording_url(rec_id)
