"""The documented JSON Schema of the generic webhook agrees with what the codec accepts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from connector.adapters import generic_webhook
from connector.adapters.errors import WebhookError
from connector.adapters.webhook_request import WebhookRequest
from connector.config import Secret, WebhookAccountSettings

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "docs" / "generic-webhook.schema.json").read_text()
)
ACCOUNT = WebhookAccountSettings(provider="generic", account="a", secret=Secret("s"))
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def ev(**fields: Any) -> dict[str, Any]:
    return {"id": "e1", "call_id": "c1", "at": "2026-11-28T10:00:00Z", **fields}


GOOD = [
    ev(type="call.started", direction="inbound", **{"from": "+79161234567"}, to="74951234567"),
    ev(type="leg.ringing", leg_id="L1", extension="101", queue="sales", seq=2),
    ev(type="leg.ringing", leg_id="L2", external=True, from_extension="101", at=1764331200),
    ev(type="leg.answered", leg_id="L1", extension="101"),
    ev(type="leg.ended", leg_id="L1", status="busy"),
    ev(type="leg.hungup", leg_id="L1"),
    ev(type="leg.transferred", from_extension="101", to_extension="102", kind="attended"),
    ev(type="recording.found", recording_url="https://pbx.example/r.wav"),
    ev(type="call.ended", outcome="no_answer"),
    {"events": [ev(type="call.started"), ev(id="e2", type="call.ended")]},
]
BAD = [
    ev(type="leg.answered"),  # no leg_id
    ev(type="call.exploded"),
    ev(type="call.ended", outcome="meh"),
    ev(type="recording.found", recording_url="ftp://x"),
    ev(type="leg.transferred"),  # no to_extension
    ev(type="leg.ended", leg_id="L1", status="nope"),
    {"id": "e1", "type": "call.started", "at": 1},  # no call_id
    {"events": []},
]


def _codec_accepts(doc: Any) -> bool:
    try:
        generic_webhook.parse(ACCOUNT, WebhookRequest(body=json.dumps(doc).encode()), NOW)
    except WebhookError:
        return False
    return True


@pytest.mark.parametrize("doc", GOOD)
def test_valid_documents_pass_schema_and_codec(doc: Any) -> None:
    jsonschema.validate(doc, SCHEMA)
    assert _codec_accepts(doc)


@pytest.mark.parametrize("doc", BAD)
def test_invalid_documents_fail_schema_and_codec(doc: Any) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, SCHEMA)
    assert not _codec_accepts(doc)


def test_schema_names_every_event_type_the_codec_knows() -> None:
    assert tuple(SCHEMA["$defs"]["event"]["properties"]["type"]["enum"]) == (
        generic_webhook.EVENT_TYPES
    )
