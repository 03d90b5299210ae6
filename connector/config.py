"""Typed, frozen settings: one TOML file plus ``CONNECTOR_*`` environment overrides.

Loading happens once at start-up (:func:`load_settings`). Every value is checked; a wrong one
raises :class:`ConfigError` whose message names the key, the value and what is allowed, e.g.
``pbx[0].port must be 1..65535, got 0``.

Environment overrides use a double underscore between levels:
``CONNECTOR_SERVER__PORT=9000`` sets ``[server] port``; ``CONNECTOR_PBX__0__SECRET=...`` sets
``secret`` of the first ``[[pbx]]``. Any secret key (``secret``, ``password``, ``token``,
``api_key``...) may instead be given as ``<key>_env = "VAR"`` naming an environment variable.
Secrets are :class:`Secret` values whose ``repr`` and ``str`` never show the value.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "AmiPbxSettings",
    "CallLogSettings",
    "ClusterSettings",
    "ConfigError",
    "DemoSettings",
    "HubSettings",
    "LoggingSettings",
    "OutgoingWebhookSettings",
    "RecordingSettings",
    "Secret",
    "ServerSettings",
    "Settings",
    "SoftphoneSettings",
    "StorageSettings",
    "WebhookAccountSettings",
    "load_settings",
    "settings_from_mapping",
]

ENV_PREFIX = "CONNECTOR_"
SECRET_KEYS = frozenset(
    {"secret", "password", "token", "api_key", "api_secret", "key", "salt", "signing_secret"}
)
ROLES = ("agent", "supervisor", "admin")
PROVIDERS = ("zadarma", "mango", "megafon", "generic")


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names key, value and rule."""


class Secret:
    """A string that never shows itself in logs, reprs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """The secret value itself."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSettings:
    """[server]: the HTTP/websocket listener."""

    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    max_body_bytes: int = 1_048_576
    trusted_proxies: tuple[str, ...] = ()
    metrics_public: bool = True  # False: GET /metrics needs an admin's API token


@dataclass(frozen=True)
class StorageSettings:
    """[storage]: where data lives."""

    data_dir: Path = Path("data")
    database_url: str = ""
    default_region: str = "RU"

    @property
    def effective_database_url(self) -> str:
        """The SQLAlchemy URL: ``database_url`` or SQLite in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'connector.db').resolve()}"


@dataclass(frozen=True)
class LoggingSettings:
    """[logging]."""

    level: str = "INFO"
    format: str = "text"


@dataclass(frozen=True)
class DialRule:
    """Rewrite a number before the PBX dials it: strip a matching prefix and add another."""

    match: str
    strip: int = 0
    prepend: str = ""


@dataclass(frozen=True)
class AmiPbxSettings:
    """[[pbx]] with type = "asterisk": one Asterisk reached over AMI."""

    name: str
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "connector"
    secret: Secret = field(default_factory=lambda: Secret(""))
    type: str = "asterisk"
    enabled: bool = True
    ping_interval: float = 5.0
    ping_timeout: float = 3.0
    connect_timeout: float = 5.0
    reconnect_min: float = 0.5
    reconnect_max: float = 60.0
    inbound_contexts: tuple[str, ...] = ("from-trunk", "from-pstn", "from-external", "from-did")
    outbound_contexts: tuple[str, ...] = (
        "outbound",
        "from-internal-outbound",
        "outbound-allroutes",
    )
    internal_contexts: tuple[str, ...] = ("agents", "from-internal", "default")
    trunk_patterns: tuple[str, ...] = ("PJSIP/trunk", "SIP/trunk", "IAX2/trunk")
    originate_context: str = "from-internal"
    originate_channel: str = "PJSIP/{extension}"
    originate_timeout: float = 30.0
    dial_rules: tuple[DialRule, ...] = ()
    recordings_dir: Path | None = None
    max_message_bytes: int = 65_536


@dataclass(frozen=True)
class WebhookAccountSettings:
    """[[webhook]]: one cloud PBX account posting events to /webhooks/{provider}/{account}."""

    provider: str
    account: str
    pbx: str = ""
    key: str = ""
    secret: Secret = field(default_factory=lambda: Secret(""))
    api_base_url: str = ""
    timezone: str = "UTC"
    allow_ips: tuple[str, ...] = ()
    max_skew_seconds: int = 300
    route_calls: bool = False  # Zadarma: answer NOTIFY_START with the manager's extension
    route_budget_ms: int = 500  # how long that answer may wait for the store

    @property
    def pbx_name(self) -> str:
        """The PBX name events of this account carry."""
        return self.pbx or f"{self.provider}:{self.account}"


@dataclass(frozen=True)
class HubSettings:
    """[hub]: the websocket screen-pop hub."""

    path: str = "/ws"
    heartbeat_seconds: float = 20.0
    replay_buffer: int = 500
    send_queue: int = 256
    max_connections_per_user: int = 10
    max_message_bytes: int = 65_536
    lookup_budget_ms: int = 150
    port: int = 8081  # the hub listens on its own port (0: any free port)
    public_url: str = ""  # ws:// or wss:// URL browsers use, if not host:port (proxies)


@dataclass(frozen=True)
class CallLogSettings:
    """[calllog]: call activities and missed-call tasks."""

    create_contacts_inbound: bool = False
    create_contacts_outbound: bool = False
    create_contacts_lines: tuple[str, ...] = ()
    missed_task_due_minutes: int = 30
    fallback_chain: tuple[str, ...] = ("responsible", "last_agent", "team", "default_user")
    fallback_team: str = ""
    fallback_user: str = ""


@dataclass(frozen=True)
class RecordingSettings:
    """[recordings]: collection, transcoding, storage and retention."""

    directory: Path = Path("data/recordings")
    format: str = "mp3"
    bitrate: str = "32k"
    retention_days: int = 0
    remove_original: bool = False
    download_timeout: float = 30.0
    download_retries: int = 3
    max_download_bytes: int = 200 * 1024 * 1024


@dataclass(frozen=True)
class OutgoingWebhookSettings:
    """[outgoing_webhooks]: delivery of our events to other systems."""

    max_attempts: int = 8
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 3600.0
    timeout_seconds: float = 10.0
    rate_per_second: float = 20.0


@dataclass(frozen=True)
class SoftphoneSettings:
    """[softphone]: the agent's SIP phone (``connector softphone``)."""

    server: str = "127.0.0.1"
    port: int = 5060
    username: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    local_ip: str = "127.0.0.1"
    local_port: int = 5080
    rtp_port_low: int = 10000
    rtp_port_high: int = 20000
    register_timeout: float = 5.0
    auto_answer: bool = False
    connector_url: str = "http://127.0.0.1:8080"
    token: Secret = field(default_factory=lambda: Secret(""))
    audio_in: Path | None = None
    audio_out_dir: Path | None = None
    pbx: str = "softphone"


@dataclass(frozen=True)
class DemoSettings:
    """[demo]: the built-in demo PBX that replays real transcripts in a loop."""

    enabled: bool = False
    speed: float = 1.0
    pause_seconds: float = 4.0
    port: int = 0


@dataclass(frozen=True)
class ClusterSettings:
    """[cluster]: several connector processes sharing one PostgreSQL and one Redis."""

    redis_url: str = ""  # empty: a single process, nothing is shared
    node_id: str = ""  # empty: hostname-pid
    lease_seconds: float = 15.0
    channel: str = "connector:events"

    @property
    def enabled(self) -> bool:
        """True when several processes cooperate (a Redis URL is set)."""
        return bool(self.redis_url)

    @property
    def effective_node_id(self) -> str:
        """This process's name in the cluster: ``node_id`` or ``<hostname>-<pid>``."""
        if self.node_id:
            return self.node_id
        import socket

        return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class Settings:
    """Everything the connector is configured with. Built once by :func:`load_settings`."""

    server: ServerSettings = field(default_factory=ServerSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    pbx: tuple[AmiPbxSettings, ...] = ()
    webhook: tuple[WebhookAccountSettings, ...] = ()
    hub: HubSettings = field(default_factory=HubSettings)
    calllog: CallLogSettings = field(default_factory=CallLogSettings)
    recordings: RecordingSettings = field(default_factory=RecordingSettings)
    outgoing_webhooks: OutgoingWebhookSettings = field(default_factory=OutgoingWebhookSettings)
    softphone: SoftphoneSettings = field(default_factory=SoftphoneSettings)
    demo: DemoSettings = field(default_factory=DemoSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    config_path: Path | None = None


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _fail(path: str, rule: str, value: object) -> ConfigError:
    shown = "***" if path.rsplit(".", 1)[-1] in SECRET_KEYS else repr(value)
    return ConfigError(f"{path} must be {rule}, got {shown}")


class _Section:
    """Reads one TOML table, checking each key; unknown keys are errors (typos get caught)."""

    def __init__(self, path: str, raw: object, environ: Mapping[str, str] | None = None) -> None:
        if not isinstance(raw, Mapping):
            raise _fail(path, "a table", raw)
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.path = path
        self.raw: dict[str, Any] = dict(raw)
        self.used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str) -> Any:
        self.used.add(key)
        env_key = f"{key}_env"
        if key in SECRET_KEYS and env_key in self.raw:
            self.used.add(env_key)
            var = self.raw[env_key]
            if not isinstance(var, str) or not var:
                raise _fail(self._key(env_key), "the name of an environment variable", var)
            if var not in self.environ:
                raise ConfigError(
                    f"{self._key(env_key)} names environment variable {var}, which is not set"
                )
            return self.environ[var]
        return self.raw.get(key)

    def string(self, key: str, default: str, choices: tuple[str, ...] | None = None) -> str:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise _fail(self._key(key), "a string", value)
        if choices is not None and value not in choices:
            raise _fail(self._key(key), "one of " + ", ".join(choices), value)
        return value

    def required_string(self, key: str, pattern: str | None = None) -> str:
        value = self._get(key)
        if not isinstance(value, str) or not value:
            raise _fail(self._key(key), "a non-empty string", value)
        if pattern is not None and not re.fullmatch(pattern, value):
            raise _fail(self._key(key), f"made of {pattern}", value)
        return value

    def secret(self, key: str) -> Secret:
        return Secret(self.string(key, ""))

    def integer(self, key: str, default: int, lo: int, hi: int) -> int:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise _fail(self._key(key), f"an integer {lo}..{hi}", value)
        return value

    def number(self, key: str, default: float, lo: float, hi: float) -> float:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise _fail(self._key(key), f"a number {lo:g}..{hi:g}", value) from None
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise _fail(self._key(key), f"a number {lo:g}..{hi:g}", value)
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, str) and value.lower() in (
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        ):
            return value.lower() in ("1", "true", "yes", "on")
        if not isinstance(value, bool):
            raise _fail(self._key(key), "true or false", value)
        return value

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _fail(self._key(key), "a list of strings", value)
        return tuple(value)

    def filepath(self, key: str, default: Path | None, base: Path | None) -> Path | None:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, str) or not value:
            raise _fail(self._key(key), "a non-empty path", value)
        p = Path(value).expanduser()
        if not p.is_absolute() and base is not None:
            p = base / p
        return p

    def table_list(self, key: str) -> list[object]:
        value = self._get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise _fail(self._key(key), "a list of tables ([[...]])", value)
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.raw) - self.used)
        if unknown:
            raise ConfigError(f"{self._key(unknown[0])} is not a known setting")


def _host(section: _Section, key: str, default: str) -> str:
    value = section.string(key, default)
    if not re.fullmatch(r"[A-Za-z0-9.\-:\[\]]+", value):
        raise _fail(section._key(key), "a host name or IP address", value)
    return value


def _url(section: _Section, key: str, default: str) -> str:
    value = section.string(key, default)
    if value and not re.match(r"^https?://[^\s/]+", value):
        raise _fail(section._key(key), "an http:// or https:// URL", value)
    return value.rstrip("/")


def _server(s: _Section) -> ServerSettings:
    out = ServerSettings(
        host=_host(s, "host", "127.0.0.1"),
        port=s.integer("port", 8080, 0, 65535),
        public_url=_url(s, "public_url", ""),
        max_body_bytes=s.integer("max_body_bytes", 1_048_576, 1024, 1 << 30),
        trusted_proxies=s.strings("trusted_proxies", ()),
        metrics_public=s.boolean("metrics_public", True),
    )
    s.finish()
    return out


def _storage(s: _Section, base: Path) -> StorageSettings:
    data_dir = s.filepath("data_dir", base / "data", base) or base / "data"
    url = s.string("database_url", "")
    if url and not re.match(r"^(sqlite\+aiosqlite|postgresql\+asyncpg)://", url):
        raise _fail(
            s._key("database_url"),
            "a sqlite+aiosqlite:// or postgresql+asyncpg:// URL",
            url,
        )
    region = s.string("default_region", "RU")
    if not re.fullmatch(r"[A-Z]{2}", region):
        raise _fail(s._key("default_region"), "a two-letter ISO country code like RU", region)
    s.finish()
    return StorageSettings(data_dir=data_dir, database_url=url, default_region=region)


def _logging(s: _Section) -> LoggingSettings:
    out = LoggingSettings(
        level=s.string("level", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
        format=s.string("format", "text", ("text", "json")),
    )
    s.finish()
    return out


def _dial_rules(s: _Section) -> tuple[DialRule, ...]:
    rules = []
    for i, raw in enumerate(s.table_list("dial_rules")):
        r = _Section(f"{s.path}.dial_rules[{i}]", raw, s.environ)
        match = r.required_string("match")
        try:
            re.compile(match)
        except re.error as exc:
            raise _fail(r._key("match"), f"a regular expression ({exc})", match) from None
        rules.append(
            DialRule(
                match=match,
                strip=r.integer("strip", 0, 0, 20),
                prepend=r.string("prepend", ""),
            )
        )
        r.finish()
    return tuple(rules)


def _pbx(s: _Section, base: Path) -> AmiPbxSettings:
    d = AmiPbxSettings(name="x")
    out = AmiPbxSettings(
        name=s.required_string("name", r"[A-Za-z0-9_.\-]+"),
        type=s.string("type", "asterisk", ("asterisk",)),
        enabled=s.boolean("enabled", True),
        host=_host(s, "host", d.host),
        port=s.integer("port", d.port, 1, 65535),
        username=s.string("username", d.username),
        secret=s.secret("secret"),
        ping_interval=s.number("ping_interval", d.ping_interval, 0.1, 3600),
        ping_timeout=s.number("ping_timeout", d.ping_timeout, 0.1, 600),
        connect_timeout=s.number("connect_timeout", d.connect_timeout, 0.1, 600),
        reconnect_min=s.number("reconnect_min", d.reconnect_min, 0.01, 600),
        reconnect_max=s.number("reconnect_max", d.reconnect_max, 0.01, 3600),
        inbound_contexts=s.strings("inbound_contexts", d.inbound_contexts),
        outbound_contexts=s.strings("outbound_contexts", d.outbound_contexts),
        internal_contexts=s.strings("internal_contexts", d.internal_contexts),
        trunk_patterns=s.strings("trunk_patterns", d.trunk_patterns),
        originate_context=s.string("originate_context", d.originate_context),
        originate_channel=s.string("originate_channel", d.originate_channel),
        originate_timeout=s.number("originate_timeout", d.originate_timeout, 1, 600),
        dial_rules=_dial_rules(s),
        recordings_dir=s.filepath("recordings_dir", None, base),
        max_message_bytes=s.integer("max_message_bytes", d.max_message_bytes, 1024, 16 << 20),
    )
    if "{extension}" not in out.originate_channel:
        raise _fail(
            s._key("originate_channel"), "a pattern containing {extension}", out.originate_channel
        )
    if out.reconnect_min > out.reconnect_max:
        raise _fail(
            s._key("reconnect_min"),
            f"at most reconnect_max ({out.reconnect_max:g})",
            out.reconnect_min,
        )
    s.finish()
    return out


def _webhook(s: _Section) -> WebhookAccountSettings:
    out = WebhookAccountSettings(
        provider=s.string("provider", "", PROVIDERS),
        account=s.required_string("account", r"[A-Za-z0-9_.\-]+"),
        pbx=s.string("pbx", ""),
        key=s.string("key", ""),
        secret=s.secret("secret"),
        api_base_url=_url(s, "api_base_url", ""),
        timezone=s.string("timezone", "UTC"),
        allow_ips=s.strings("allow_ips", ()),
        max_skew_seconds=s.integer("max_skew_seconds", 300, 1, 86400 * 7),
        route_calls=s.boolean("route_calls", False),
        route_budget_ms=s.integer("route_budget_ms", 500, 10, 10_000),
    )
    if out.route_calls and out.provider != "zadarma":
        raise _fail(s._key("route_calls"), "false unless provider is zadarma", True)
    if not out.provider:
        raise _fail(s._key("provider"), "one of " + ", ".join(PROVIDERS), "")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(out.timezone)
    except Exception:
        raise _fail(
            s._key("timezone"), "an IANA time zone like Europe/Moscow", out.timezone
        ) from None
    if not out.secret:
        raise _fail(s._key("secret"), "set (or secret_env naming a variable)", "")
    s.finish()
    return out


def _hub(s: _Section) -> HubSettings:
    d = HubSettings()
    out = HubSettings(
        path=s.string("path", d.path),
        heartbeat_seconds=s.number("heartbeat_seconds", d.heartbeat_seconds, 0.05, 3600),
        replay_buffer=s.integer("replay_buffer", d.replay_buffer, 1, 1_000_000),
        send_queue=s.integer("send_queue", d.send_queue, 1, 1_000_000),
        max_connections_per_user=s.integer(
            "max_connections_per_user", d.max_connections_per_user, 1, 10_000
        ),
        max_message_bytes=s.integer("max_message_bytes", d.max_message_bytes, 256, 16 << 20),
        lookup_budget_ms=s.integer("lookup_budget_ms", d.lookup_budget_ms, 0, 60_000),
        port=s.integer("port", d.port, 0, 65535),
        public_url=s.string("public_url", d.public_url),
    )
    if out.public_url and not re.match(r"^wss?://[^\s/]+", out.public_url):
        raise _fail(s._key("public_url"), "a ws:// or wss:// URL", out.public_url)
    if not out.path.startswith("/"):
        raise _fail(s._key("path"), "a URL path starting with /", out.path)
    s.finish()
    return out


def _calllog(s: _Section) -> CallLogSettings:
    d = CallLogSettings()
    chain = s.strings("fallback_chain", d.fallback_chain)
    allowed = ("responsible", "last_agent", "team", "default_user")
    for item in chain:
        if item not in allowed:
            raise _fail(s._key("fallback_chain"), "a list of " + ", ".join(allowed), list(chain))
    out = CallLogSettings(
        create_contacts_inbound=s.boolean("create_contacts_inbound", d.create_contacts_inbound),
        create_contacts_outbound=s.boolean("create_contacts_outbound", d.create_contacts_outbound),
        create_contacts_lines=s.strings("create_contacts_lines", ()),
        missed_task_due_minutes=s.integer(
            "missed_task_due_minutes", d.missed_task_due_minutes, 0, 60 * 24 * 30
        ),
        fallback_chain=chain,
        fallback_team=s.string("fallback_team", ""),
        fallback_user=s.string("fallback_user", ""),
    )
    s.finish()
    return out


def _recordings(s: _Section, base: Path, data_dir: Path) -> RecordingSettings:
    d = RecordingSettings()
    out = RecordingSettings(
        directory=s.filepath("directory", data_dir / "recordings", base) or data_dir / "recordings",
        format=s.string("format", d.format, ("mp3", "opus")),
        bitrate=s.string("bitrate", d.bitrate),
        retention_days=s.integer("retention_days", 0, 0, 36500),
        remove_original=s.boolean("remove_original", False),
        download_timeout=s.number("download_timeout", d.download_timeout, 0.1, 3600),
        download_retries=s.integer("download_retries", d.download_retries, 0, 100),
        max_download_bytes=s.integer("max_download_bytes", d.max_download_bytes, 1024, 1 << 40),
    )
    if not re.fullmatch(r"\d+k", out.bitrate):
        raise _fail(s._key("bitrate"), "a bitrate like 32k", out.bitrate)
    s.finish()
    return out


def _outgoing(s: _Section) -> OutgoingWebhookSettings:
    d = OutgoingWebhookSettings()
    out = OutgoingWebhookSettings(
        max_attempts=s.integer("max_attempts", d.max_attempts, 1, 1000),
        backoff_base_seconds=s.number("backoff_base_seconds", d.backoff_base_seconds, 0.001, 3600),
        backoff_max_seconds=s.number("backoff_max_seconds", d.backoff_max_seconds, 0.001, 86400),
        timeout_seconds=s.number("timeout_seconds", d.timeout_seconds, 0.1, 600),
        rate_per_second=s.number("rate_per_second", d.rate_per_second, 0.01, 100_000),
    )
    s.finish()
    return out


def _softphone(s: _Section, base: Path) -> SoftphoneSettings:
    d = SoftphoneSettings()
    out = SoftphoneSettings(
        server=_host(s, "server", d.server),
        port=s.integer("port", d.port, 1, 65535),
        username=s.string("username", ""),
        password=s.secret("password"),
        local_ip=_host(s, "local_ip", d.local_ip),
        local_port=s.integer("local_port", d.local_port, 1, 65535),
        rtp_port_low=s.integer("rtp_port_low", d.rtp_port_low, 1024, 65535),
        rtp_port_high=s.integer("rtp_port_high", d.rtp_port_high, 1024, 65535),
        register_timeout=s.number("register_timeout", d.register_timeout, 0.1, 600),
        auto_answer=s.boolean("auto_answer", False),
        connector_url=_url(s, "connector_url", d.connector_url),
        token=s.secret("token"),
        audio_in=s.filepath("audio_in", None, base),
        audio_out_dir=s.filepath("audio_out_dir", None, base),
        pbx=s.string("pbx", d.pbx),
    )
    if out.rtp_port_low > out.rtp_port_high:
        raise _fail(
            s._key("rtp_port_low"), f"at most rtp_port_high ({out.rtp_port_high})", out.rtp_port_low
        )
    s.finish()
    return out


def _demo(s: _Section) -> DemoSettings:
    out = DemoSettings(
        enabled=s.boolean("enabled", False),
        speed=s.number("speed", 1.0, 0.01, 1000),
        pause_seconds=s.number("pause_seconds", 4.0, 0, 3600),
        port=s.integer("port", 0, 0, 65535),
    )
    s.finish()
    return out


def _cluster(s: _Section) -> ClusterSettings:
    d = ClusterSettings()
    out = ClusterSettings(
        redis_url=s.string("redis_url", d.redis_url),
        node_id=s.string("node_id", d.node_id),
        lease_seconds=s.number("lease_seconds", d.lease_seconds, 0.3, 3600),
        channel=s.string("channel", d.channel),
    )
    if out.redis_url and not re.match(r"^(rediss?|unix)://\S+$", out.redis_url):
        raise _fail(s._key("redis_url"), "a redis://, rediss:// or unix:// URL", out.redis_url)
    if out.node_id and not re.fullmatch(r"[A-Za-z0-9_.:\-]{1,100}", out.node_id):
        raise _fail(s._key("node_id"), "1..100 of A-Z a-z 0-9 _ . : -", out.node_id)
    if not re.fullmatch(r"[A-Za-z0-9_.:\-]{1,200}", out.channel):
        raise _fail(s._key("channel"), "1..200 of A-Z a-z 0-9 _ . : -", out.channel)
    s.finish()
    return out


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Overlay ``CONNECTOR_A__B__C=value`` onto the raw TOML tree (values stay strings)."""
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        node: Any = raw
        for i, part in enumerate(parts[:-1]):
            nxt_is_index = parts[i + 1].isdigit()
            if isinstance(node, list):
                idx = int(part) if part.isdigit() else -1
                if not 0 <= idx < len(node):
                    raise ConfigError(f"{name}: there is no {'.'.join(parts[: i + 1])} to override")
                node = node[idx]
                continue
            if part not in node:
                node[part] = [] if nxt_is_index else {}
            node = node[part]
        last = parts[-1]
        if isinstance(node, list):
            raise ConfigError(f"{name}: cannot replace a whole list entry from the environment")
        node[last] = value


def settings_from_mapping(
    raw: Mapping[str, Any],
    *,
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> Settings:
    """Validate a raw TOML-shaped mapping (plus environment overrides) into :class:`Settings`."""
    import copy

    tree: dict[str, Any] = copy.deepcopy(dict(raw))
    env = os.environ if environ is None else environ
    _apply_env(tree, env)
    base = (base_dir or Path.cwd()).resolve()
    top = _Section("", tree, env)

    def sub(name: str) -> _Section:
        return _Section(name, top._get(name) or {}, env)

    storage = _storage(sub("storage"), base)
    pbxs = tuple(
        _pbx(_Section(f"pbx[{i}]", t, env), base) for i, t in enumerate(top.table_list("pbx"))
    )
    names = [p.name for p in pbxs]
    for n in names:
        if names.count(n) > 1:
            raise ConfigError(f"pbx names must be unique, got {n!r} twice")
    hooks = tuple(
        _webhook(_Section(f"webhook[{i}]", t, env)) for i, t in enumerate(top.table_list("webhook"))
    )
    keys = [(h.provider, h.account) for h in hooks]
    for k in keys:
        if keys.count(k) > 1:
            raise ConfigError(f"webhook accounts must be unique, got {k[0]}/{k[1]} twice")
    settings = Settings(
        server=_server(sub("server")),
        storage=storage,
        logging=_logging(sub("logging")),
        pbx=pbxs,
        webhook=hooks,
        hub=_hub(sub("hub")),
        calllog=_calllog(sub("calllog")),
        recordings=_recordings(sub("recordings"), base, storage.data_dir),
        outgoing_webhooks=_outgoing(sub("outgoing_webhooks")),
        softphone=_softphone(sub("softphone"), base),
        demo=_demo(sub("demo")),
        cluster=_cluster(sub("cluster")),
        config_path=config_path,
    )
    top.finish()
    return settings


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file at ``path`` (or only defaults and environment when None) and validate.

    Relative paths in the file are relative to the file's directory.
    """
    raw: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"configuration file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
        base = path.resolve().parent
    return settings_from_mapping(raw, base_dir=base, environ=environ, config_path=path)


def redacted(obj: object) -> object:
    """A plain, loggable view of settings with every secret replaced by ``***``."""
    if isinstance(obj, Secret):
        return "***" if obj else ""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: redacted(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, tuple | list):
        return [redacted(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
