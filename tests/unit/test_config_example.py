"""config/connector.example.toml loads cleanly and documents every setting."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from connector import config as cfg
from connector.config import load_settings, settings_from_mapping

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "connector.example.toml"
SECTIONS: dict[str, Any] = {
    "server": cfg.ServerSettings,
    "storage": cfg.StorageSettings,
    "logging": cfg.LoggingSettings,
    "pbx": cfg.AmiPbxSettings,
    "webhook": cfg.WebhookAccountSettings,
    "hub": cfg.HubSettings,
    "calllog": cfg.CallLogSettings,
    "recordings": cfg.RecordingSettings,
    "outgoing_webhooks": cfg.OutgoingWebhookSettings,
    "softphone": cfg.SoftphoneSettings,
    "demo": cfg.DemoSettings,
}
ENV = {
    "CONNECTOR_AMI_SECRET": "ami-secret",
    "CONNECTOR_ZADARMA_SECRET": "hook-secret",
    "CONNECTOR_SIP_PASSWORD": "sip-password",
    "CONNECTOR_SOFTPHONE_TOKEN": "vc_token",
}


def _uncommented() -> str:
    """The example with every commented-out setting switched on (`#key = ...` -> `key = ...`)."""
    return re.sub(r"(?m)^#(?=[\[a-z])", "", EXAMPLE.read_text(encoding="utf-8"))


def test_example_loads_as_shipped() -> None:
    settings = load_settings(EXAMPLE, environ={})
    assert settings == dataclasses.replace(
        load_settings(None, environ={}),
        storage=settings.storage,
        recordings=settings.recordings,
        config_path=EXAMPLE,
    )
    assert settings.storage.data_dir == EXAMPLE.parent / "data"
    assert settings.pbx == () and settings.webhook == ()


def test_every_commented_setting_is_valid_and_shows_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in ENV.items():  # *_env secrets are read from the process environment
        monkeypatch.setenv(name, value)
    raw = tomllib.loads(_uncommented())
    settings = settings_from_mapping(raw, base_dir=EXAMPLE.parent, environ=ENV)
    shipped = load_settings(EXAMPLE, environ={})
    # the defaults shown are the real defaults
    for name in ("server", "logging", "hub", "calllog", "recordings", "outgoing_webhooks", "demo"):
        assert getattr(settings, name) == getattr(shipped, name), name
    assert settings.storage == shipped.storage
    assert len(settings.pbx) == 1 and settings.pbx[0].secret.get() == "ami-secret"
    defaults = cfg.AmiPbxSettings(name="main")
    assert dataclasses.replace(
        settings.pbx[0], secret=defaults.secret, dial_rules=(), recordings_dir=None
    ) == dataclasses.replace(defaults)
    assert settings.pbx[0].dial_rules == (cfg.DialRule(match=r"^\+7\d{10}$", strip=2, prepend="8"),)
    assert len(settings.webhook) == 1 and settings.webhook[0].secret.get() == "hook-secret"
    assert settings.softphone.password.get() == "sip-password"


def test_every_setting_is_documented() -> None:
    raw = tomllib.loads(_uncommented())
    missing: list[str] = []
    for section, cls in SECTIONS.items():
        table = raw.get(section)
        if isinstance(table, list):
            table = table[0]
        assert isinstance(table, dict), section
        keys = {k.removesuffix("_env") for k in table}
        for f in dataclasses.fields(cls):
            if f.name not in keys:
                missing.append(f"{section}.{f.name}")
    rule_keys = set(raw["pbx"][0]["dial_rules"][0])
    missing += [
        f"pbx.dial_rules.{f.name}"
        for f in dataclasses.fields(cfg.DialRule)
        if f.name not in rule_keys
    ]
    top = {f.name for f in dataclasses.fields(cfg.Settings)} - {"config_path"}
    missing += sorted(top - set(raw))
    assert missing == []
