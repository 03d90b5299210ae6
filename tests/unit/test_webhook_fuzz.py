"""Whatever a client sends, the codecs raise only their named WebhookError (never a bare
KeyError/TypeError that would become a 500)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.adapters import generic_webhook, mango, megafon, zadarma
from connector.adapters.errors import WebhookError
from connector.adapters.webhook_request import WebhookRequest
from connector.config import Secret, WebhookAccountSettings

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CODECS: dict[str, ModuleType] = {
    "zadarma": zadarma,
    "mango": mango,
    "megafon": megafon,
    "generic": generic_webhook,
}
ACCOUNTS = {
    name: WebhookAccountSettings(provider=name, account="a", key="k", secret=Secret("s"))
    for name in CODECS
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)
field_names = st.sampled_from(
    [
        "event", "pbx_call_id", "call_start", "caller_id", "called_did", "internal",
        "destination", "duration", "disposition", "is_recorded", "call_id_with_rec",
        "cmd", "type", "callid", "ext", "phone", "start", "status", "link", "crm_token",
        "direction", "diversion",
    ]
)  # fmt: skip
field_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["NOTIFY_START", "NOTIFY_END", "NOTIFY_RECORD", "NOTIFY_ANSWER", "NOTIFY_OUT_END",
         "event", "history", "contact", "INCOMING", "ACCEPTED", "2026-11-28 10:00:00",
         "20261128T100000Z", "answered", "-1", "99999999999", "s"]
    ),
)  # fmt: skip
mango_paths = st.sampled_from(
    ["/events/call", "/events/summary", "/events/record/added", "/result/callback", "/x"]
)
mango_keys = st.sampled_from(
    ["entry_id", "call_id", "call_state", "timestamp", "seq", "from", "to", "location",
     "disconnect_reason", "entry_result", "call_direction", "end_time", "create_time",
     "recording_id", "command_id", "result", "transfer"]
)  # fmt: skip
mango_values = st.one_of(
    json_values,
    st.sampled_from(["Appeared", "Connected", "Disconnected", "OnHold", "abonent", "ivr"]),
    st.integers(min_value=1_700_000_000, max_value=1_800_000_000),
)


def _run(provider: str, request: WebhookRequest) -> None:
    codec = CODECS[provider]
    account = ACCOUNTS[provider]
    for step in (codec.verify, codec.parse):
        try:
            step(account, request, NOW)
        except WebhookError:
            pass


@settings(max_examples=100, deadline=None)
@given(
    provider=st.sampled_from(sorted(CODECS)),
    body=st.binary(max_size=300),
    ctype=st.sampled_from(
        ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "text/plain"]
    ),
)
def test_random_bytes(provider: str, body: bytes, ctype: str) -> None:
    _run(provider, WebhookRequest(body=body, headers={"content-type": ctype}, path="/events/call"))


@settings(max_examples=100, deadline=None)
@given(
    provider=st.sampled_from(["zadarma", "megafon"]),
    fields=st.dictionaries(field_names, field_values, max_size=12),
)
def test_random_forms(provider: str, fields: dict[str, str]) -> None:
    if provider == "megafon":
        fields["crm_token"] = "s"
    body = urlencode(fields).encode()
    request = WebhookRequest(
        body=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    if provider == "zadarma":
        try:
            request = WebhookRequest(
                body=body, headers={"signature": zadarma.signature("s", fields)}
            )
        except WebhookError:
            pass
    _run(provider, request)


@settings(max_examples=100, deadline=None)
@given(path=mango_paths, payload=st.dictionaries(mango_keys, mango_values, max_size=10))
def test_random_signed_mango_json(path: str, payload: dict[str, Any]) -> None:
    try:
        text = json.dumps(payload)
    except ValueError:
        return
    sign = hashlib.sha256(("k" + text + "s").encode()).hexdigest()
    body = urlencode({"vpbx_api_key": "k", "sign": sign, "json": text}).encode()
    _run("mango", WebhookRequest(body=body, path=path))


@settings(max_examples=100, deadline=None)
@given(
    doc=json_values
    | st.dictionaries(
        st.sampled_from(
            [
                "id",
                "type",
                "call_id",
                "leg_id",
                "at",
                "seq",
                "extension",
                "external",
                "status",
                "outcome",
                "events",
                "direction",
                "recording_url",
                "to_extension",
            ]
        ),
        json_values,
        max_size=8,
    )
)
def test_random_generic_json(doc: Any) -> None:  # fmt: skip
    try:
        body = json.dumps(doc).encode()
    except ValueError:
        return
    try:
        generic_webhook.parse(ACCOUNTS["generic"], WebhookRequest(body=body), NOW)
    except WebhookError:
        pass


def test_deeply_nested_json_is_a_named_error() -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    try:
        generic_webhook.parse(ACCOUNTS["generic"], WebhookRequest(body=body), NOW)
    except WebhookError:
        return
    raise AssertionError("expected a WebhookError")
