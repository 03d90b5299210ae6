"""Configuration errors name the key, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connector.config import ConfigError, load_settings, settings_from_mapping


def _load(raw: dict[str, Any], environ: dict[str, str] | None = None) -> Any:
    return settings_from_mapping(raw, base_dir=Path("/srv/connector"), environ=environ or {})


def _error(raw: dict[str, Any], environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        _load(raw, environ)
    return str(info.value)


def test_wrong_type() -> None:
    assert _error({"server": {"port": "eighty"}}) == (
        "server.port must be an integer 0..65535, got 'eighty'"
    )
    assert _error({"hub": {"heartbeat_seconds": [1]}}) == (
        "hub.heartbeat_seconds must be a number 0.05..3600, got [1]"
    )
    assert _error({"calllog": {"create_contacts_inbound": "maybe"}}) == (
        "calllog.create_contacts_inbound must be true or false, got 'maybe'"
    )
    assert _error({"server": "8080"}) == "server must be a table, got '8080'"


def test_out_of_range() -> None:
    assert _error({"server": {"port": 70000}}) == (
        "server.port must be an integer 0..65535, got 70000"
    )
    assert _error({"pbx": [{"name": "main", "port": 0}]}) == (
        "pbx[0].port must be an integer 1..65535, got 0"
    )
    assert _error({"recordings": {"retention_days": -1}}) == (
        "recordings.retention_days must be an integer 0..36500, got -1"
    )


def test_unknown_key() -> None:
    assert _error({"server": {"prot": 80}}) == "server.prot is not a known setting"
    assert _error({"servre": {}}) == "servre is not a known setting"
    assert _error({"pbx": [{"name": "main", "hots": "x"}]}) == "pbx[0].hots is not a known setting"


def test_bad_enum() -> None:
    assert _error({"logging": {"level": "LOUD"}}) == (
        "logging.level must be one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'"
    )
    assert _error({"recordings": {"format": "wav"}}) == (
        "recordings.format must be one of mp3, opus, got 'wav'"
    )
    message = _error({"webhook": [{"provider": "skype", "account": "a", "secret": "s"}]})
    assert (
        message
        == "webhook[0].provider must be one of zadarma, mango, megafon, generic, got 'skype'"
    )
    assert _error({"storage": {"default_region": "Russia"}}) == (
        "storage.default_region must be a two-letter ISO country code like RU, got 'Russia'"
    )


def test_missing_environment_secret() -> None:
    raw = {"pbx": [{"name": "main", "secret_env": "NO_SUCH_SECRET_VAR"}]}
    assert _error(raw) == (
        "pbx[0].secret_env names environment variable NO_SUCH_SECRET_VAR, which is not set"
    )
    settings = _load(raw, {"NO_SUCH_SECRET_VAR": "s3cr3t"})
    assert settings.pbx[0].secret.get() == "s3cr3t"
    assert "s3cr3t" not in repr(settings)


def test_secret_values_never_appear_in_messages() -> None:
    message = _error({"webhook": [{"provider": "generic", "account": "a", "secret": 12345}]})
    assert message == "webhook[0].secret must be a string, got ***"


def test_environment_overrides_are_checked_too() -> None:
    assert _error({}, {"CONNECTOR_SERVER__PORT": "99999"}) == (
        "server.port must be an integer 0..65535, got 99999"
    )
    assert _load({}, {"CONNECTOR_SERVER__PORT": "9000"}).server.port == 9000


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(bad, environ={})
