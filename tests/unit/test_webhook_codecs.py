"""The pure webhook codecs: signatures, parsing, observations, errors (no loop, no I/O)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from connector.adapters import generic_webhook, mango, megafon, zadarma
from connector.adapters.errors import (
    WebhookError,
    WebhookMalformedError,
    WebhookReplayError,
    WebhookSignatureError,
    WebhookUnknownEvent,
)
from connector.adapters.webhook_request import WebhookRequest, parse_form
from connector.config import Secret, WebhookAccountSettings
from connector.events.model import (
    ConversationEnded,
    ConversationStarted,
    Direction,
    LegAnswered,
    LegEnded,
    LegHungUp,
    LegRinging,
    LegStatus,
    LegTransferred,
    Outcome,
    RecordingFound,
    TransferKind,
)
from connector.outbox import backoff_seconds, delivery_body, delivery_headers

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def account(provider: str, **kw: object) -> WebhookAccountSettings:
    defaults: dict[str, object] = {"key": "k", "secret": Secret("s3cret"), "pbx": "p"}
    defaults.update(kw)
    return WebhookAccountSettings(provider=provider, account="a1", **defaults)  # type: ignore[arg-type]


def form_request(fields: dict[str, str], **headers: str) -> WebhookRequest:
    return WebhookRequest(
        body=urlencode(fields).encode(),
        headers={"content-type": "application/x-www-form-urlencoded", **headers},
    )


# ----------------------------------------------------------------------------------- Zadarma


def zd_sig(secret: str, data: str) -> str:
    hexdigest = hmac.new(secret.encode(), data.encode(), hashlib.sha1).hexdigest()
    return base64.b64encode(hexdigest.encode()).decode()


def test_zadarma_signature_is_base64_of_the_hex_hmac() -> None:
    fields = {
        "event": "NOTIFY_START",
        "call_start": "2024-05-14 10:01:55",
        "pbx_call_id": "in_1",
        "caller_id": "79161234567",
        "called_did": "74951234567",
    }
    expected = zd_sig("s3cret", "79161234567" + "74951234567" + "2024-05-14 10:01:55")
    assert zadarma.signature("s3cret", fields) == expected
    zadarma.verify(account("zadarma"), form_request(fields, signature=expected), NOW)
    with pytest.raises(WebhookSignatureError):
        zadarma.verify(account("zadarma"), form_request(fields, signature=expected[:-2]), NOW)
    with pytest.raises(WebhookSignatureError):
        zadarma.verify(account("zadarma"), form_request(fields), NOW)


@pytest.mark.parametrize(
    ("event", "names"),
    [
        ("NOTIFY_ANSWER", ("caller_id", "destination", "call_start")),
        ("NOTIFY_OUT_START", ("internal", "destination", "call_start")),
        ("NOTIFY_OUT_END", ("internal", "destination", "call_start")),
        ("NOTIFY_RECORD", ("pbx_call_id", "call_id_with_rec")),
        ("NOTIFY_END", ("caller_id", "called_did", "call_start")),
    ],
)
def test_zadarma_signature_string_per_event(event: str, names: tuple[str, ...]) -> None:
    fields = {
        n: f"<{n}>"
        for n in (
            "caller_id",
            "called_did",
            "call_start",
            "destination",
            "internal",
            "pbx_call_id",
            "call_id_with_rec",
        )
    }
    fields["event"] = event
    assert zadarma.signature_string(fields) == "".join(f"<{n}>" for n in names)


def test_zadarma_end_maps_disposition_and_time_zone() -> None:
    acc = account("zadarma", timezone="Europe/Moscow")
    fields = {
        "event": "NOTIFY_END",
        "call_start": "2024-05-14 10:01:55",
        "pbx_call_id": "in_1",
        "caller_id": "79161234567",
        "called_did": "74951234567",
        "internal": "100",
        "duration": "0",
        "disposition": "no answer",
        "is_recorded": "0",
    }
    decoded = zadarma.parse(acc, form_request(fields), NOW)
    started, leg_end, end = decoded.observations
    assert isinstance(started, ConversationStarted) and started.direction is Direction.INBOUND
    assert started.at == datetime(2024, 5, 14, 7, 1, 55, tzinfo=UTC)
    assert isinstance(leg_end, LegEnded) and leg_end.status is LegStatus.NO_ANSWER
    assert leg_end.leg_id == "in_1:100"
    assert isinstance(end, ConversationEnded) and end.outcome is Outcome.NO_ANSWER
    assert decoded.conversation_id == "in_1"
    # the same event in another encoding has the same key
    assert (
        decoded.event_key
        == zadarma.parse(acc, form_request(dict(reversed(fields.items()))), NOW).event_key
    )


@pytest.mark.parametrize(
    ("disposition", "outcome"),
    [
        ("answered", Outcome.ANSWERED),
        ("busy", Outcome.BUSY),
        ("cancel", Outcome.ABANDONED),
        ("no answer", Outcome.NO_ANSWER),
        ("no money, no limit", Outcome.FAILED),
        ("unallocated number", Outcome.FAILED),
    ],
)
def test_zadarma_dispositions(disposition: str, outcome: Outcome) -> None:
    assert zadarma.outcome_of(disposition)[0] is outcome


def test_zadarma_record_and_echo_and_errors() -> None:
    acc = account("zadarma")
    rec = {"event": "NOTIFY_RECORD", "pbx_call_id": "in_1", "call_id_with_rec": "1-2.3-100"}
    (found,) = zadarma.parse(acc, form_request(rec), NOW).observations
    assert isinstance(found, RecordingFound) and found.reference == "zadarma:a1:1-2.3-100"
    assert zadarma.echo_reply(WebhookRequest(b"", query={"zd_echo": "abc"}, method="GET")) == "abc"
    with pytest.raises(WebhookMalformedError):
        zadarma.echo_reply(WebhookRequest(b"", query={"zd_echo": "<script>"}, method="GET"))
    with pytest.raises(WebhookUnknownEvent):
        zadarma.parse(acc, form_request({"event": "NOTIFY_X", "pbx_call_id": "1"}), NOW)
    with pytest.raises(WebhookMalformedError):
        zadarma.parse(acc, form_request({"event": "NOTIFY_START", "call_start": "x"}), NOW)


def test_zadarma_api_signature() -> None:
    params = {"from": "101", "to": "79169998877", "format": "json"}
    query = "format=json&from=101&to=79169998877"
    data = "/v1/request/callback/" + query + hashlib.md5(query.encode()).hexdigest()
    expected = "key1:" + zd_sig("sec", data)
    assert zadarma.sign_api_request("/v1/request/callback/", params, "key1", "sec") == expected


# ------------------------------------------------------------------------------------- forms


def test_multipart_takes_the_boundary_from_the_body() -> None:
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="event"\r\n\r\nNOTIFY_START\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="caller_id"\r\n\r\n7916\r\n--XyZ--\r\n'
    )
    req = WebhookRequest(body=body, headers={"content-type": "multipart/form-data; boundary=other"})
    assert parse_form(req) == {"event": "NOTIFY_START", "caller_id": "7916"}
    with pytest.raises(WebhookMalformedError):
        parse_form(
            WebhookRequest(
                body=b"--XyZ\r\nno blank line", headers={"content-type": "multipart/form-data"}
            )
        )
    with pytest.raises(WebhookMalformedError):
        parse_form(WebhookRequest(body=b"\xff\xfe=1"))
    with pytest.raises(WebhookMalformedError):
        parse_form(WebhookRequest(body=b"a=1&&&b"))


# -------------------------------------------------------------------------------------- Mango


def mango_request(
    path: str, payload: dict[str, object], key: str = "k", salt: str = "s3cret"
) -> WebhookRequest:
    text = json.dumps(payload)
    sign = hashlib.sha256((key + text + salt).encode()).hexdigest()
    body = urlencode({"vpbx_api_key": key, "sign": sign, "json": text}).encode()
    return WebhookRequest(body=body, path=path)


def test_mango_sign_clock_and_replay() -> None:
    acc = account("mango", max_skew_seconds=60)
    ts = int(NOW.timestamp()) + 3 * 3600  # Mango's clock is UTC+3
    assert mango.from_mango_time(str(ts)) == NOW
    assert mango.to_mango_time(NOW) == ts
    payload = {
        "entry_id": "e",
        "call_id": "c",
        "timestamp": ts,
        "seq": "1",
        "call_state": "Appeared",
    }
    mango.verify(acc, mango_request("/events/call", payload), NOW)
    with pytest.raises(WebhookSignatureError):
        mango.verify(acc, mango_request("/events/call", payload, salt="x"), NOW)
    with pytest.raises(WebhookSignatureError):
        mango.verify(acc, mango_request("/events/call", payload, key="other"), NOW)
    old = {**payload, "timestamp": ts - 3600}
    with pytest.raises(WebhookReplayError):
        mango.verify(acc, mango_request("/events/call", old), NOW)


def test_mango_call_states_map_to_legs() -> None:
    acc = account("mango")
    ts = mango.to_mango_time(NOW)
    base = {"entry_id": "e1", "timestamp": str(ts), "location": "abonent"}
    ring = {
        **base,
        "call_id": "L1",
        "seq": "1",
        "call_state": "Appeared",
        "from": {"number": "7495"},
        "to": {"extension": "101", "line_number": "7499"},
    }
    decoded = mango.parse(acc, mango_request("/events/call", ring), NOW)
    assert decoded.seq == 1 and decoded.conversation_id == "e1"
    started, ringing = decoded.observations
    assert isinstance(started, ConversationStarted) and started.did == "7499"
    assert isinstance(ringing, LegRinging) and ringing.extension == "101" and ringing.leg_id == "L1"
    transfer = {
        **base,
        "call_id": "L2",
        "seq": "5",
        "call_state": "Connected",
        "transfer": "consultative",
        "from": {"extension": "101", "taken_from_call_id": "L1"},
        "to": {"extension": "102"},
    }
    answered, moved = mango.parse(acc, mango_request("/events/call", transfer), NOW).observations
    assert isinstance(answered, LegAnswered)
    assert isinstance(moved, LegTransferred) and moved.kind is TransferKind.ATTENDED
    assert (moved.from_extension, moved.to_extension) == ("101", "102")
    gone = {
        **base,
        "call_id": "L2",
        "seq": "6",
        "call_state": "Disconnected",
        "to": {"number": "sip:x@y"},
        "disconnect_reason": "4201",
    }
    ended, hung = mango.parse(acc, mango_request("/events/call", gone), NOW).observations
    assert isinstance(ended, LegEnded) and ended.status is LegStatus.FAILED
    assert isinstance(hung, LegHungUp)
    out = {
        **base,
        "call_id": "L3",
        "seq": "1",
        "call_state": "Appeared",
        "from": {"extension": "101"},
        "to": {"number": "79169998877"},
    }
    started, leg = mango.parse(acc, mango_request("/events/call", out), NOW).observations
    assert started.direction is Direction.OUTBOUND  # type: ignore[union-attr]
    assert isinstance(leg, LegRinging) and leg.external and leg.from_extension == "101"


def test_mango_summary_record_and_result() -> None:
    acc = account("mango")
    ts = mango.to_mango_time(NOW)
    summary = {
        "entry_id": "e1",
        "call_direction": 1,
        "entry_result": 0,
        "create_time": ts - 30,
        "end_time": ts,
        "disconnect_reason": 1110,
        "from": {"number": "7495"},
    }
    _, end = mango.parse(acc, mango_request("/events/summary", summary), NOW).observations
    assert isinstance(end, ConversationEnded) and end.outcome is Outcome.NO_ANSWER and end.at == NOW
    rec = {"entry_id": "e1", "recording_id": "R1", "timestamp": ts}
    (found,) = mango.parse(acc, mango_request("/events/record/added", rec), NOW).observations
    assert isinstance(found, RecordingFound) and found.reference == "mango:a1:R1"
    result = mango.parse(
        acc, mango_request("/result/callback", {"command_id": "c", "result": 1000}), NOW
    )
    assert result.callback is not None and result.callback.result == 1000
    with pytest.raises(WebhookUnknownEvent):
        mango.parse(acc, mango_request("/events/nonsense", {"entry_id": "e"}), NOW)
    with pytest.raises(WebhookMalformedError):
        mango.parse(
            acc,
            mango_request(
                "/events/call",
                {"entry_id": "e", "call_id": "c", "call_state": "Appeared", "timestamp": "x"},
            ),
            NOW,
        )


# ------------------------------------------------------------------------------------ MegaFon


def test_megafon_token_events_and_history() -> None:
    acc = account("megafon")
    fields = {
        "cmd": "event",
        "type": "INCOMING",
        "phone": "7916",
        "diversion": "7495",
        "ext": "101",
        "callid": "42",
        "crm_token": "s3cret",
    }
    megafon.verify(acc, form_request(fields), NOW)
    with pytest.raises(WebhookSignatureError):
        megafon.verify(acc, form_request({**fields, "crm_token": "nope"}), NOW)
    (ringing,) = megafon.parse(acc, form_request(fields), NOW).observations
    assert isinstance(ringing, LegRinging) and ringing.leg_id == "42:101" and ringing.at == NOW
    cancelled = {**fields, "type": "CANCELLED"}
    (leg_end,) = megafon.parse(acc, form_request(cancelled), NOW).observations
    assert isinstance(leg_end, LegEnded) and leg_end.status is LegStatus.CANCEL
    history = {
        "cmd": "history",
        "type": "in",
        "start": "20240101T101500Z",
        "duration": "50",
        "callid": "42",
        "status": "NotAvailable",
        "crm_token": "s3cret",
    }
    _, end = megafon.parse(acc, form_request(history), NOW).observations
    assert isinstance(end, ConversationEnded) and end.outcome is Outcome.FAILED
    assert end.at == datetime(2024, 1, 1, 10, 15, 50, tzinfo=UTC)
    assert megafon.outcome_of("SUCCESS") is Outcome.ANSWERED
    assert megafon.outcome_of("Missed") is Outcome.NO_ANSWER
    contact = form_request(
        {"cmd": "contact", "phone": "7916", "callid": "1", "crm_token": "s3cret"}
    )
    assert megafon.contact_query(contact) == ("7916", "")
    with pytest.raises(WebhookUnknownEvent):
        megafon.verify(acc, form_request({"cmd": "dance", "crm_token": "s3cret"}), NOW)


# ------------------------------------------------------------------------------------ generic


def test_generic_signature_replay_and_batch() -> None:
    acc = account("generic", max_skew_seconds=300)
    doc = {
        "events": [
            {
                "id": "1",
                "type": "call.started",
                "call_id": "c",
                "at": 1764331200,
                "direction": "inbound",
            },
            {
                "id": "2",
                "type": "leg.ringing",
                "call_id": "c",
                "leg_id": "L",
                "extension": "101",
                "at": "2026-11-28T12:00:01Z",
                "seq": 2,
            },
        ]
    }
    body = json.dumps(doc).encode()
    ts = int(NOW.timestamp())
    sig = "v1=" + hmac.new(b"s3cret", f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    assert generic_webhook.sign_body("s3cret", ts, body) == sig
    headers = {"x-connector-timestamp": str(ts), "x-connector-signature": sig}
    req = WebhookRequest(body=body, headers=headers)
    generic_webhook.verify(acc, req, NOW)
    with pytest.raises(WebhookReplayError):
        generic_webhook.verify(acc, req, datetime(2026, 11, 28, 13, 0, tzinfo=UTC))
    with pytest.raises(WebhookSignatureError):
        generic_webhook.verify(acc, WebhookRequest(body=body + b" ", headers=headers), NOW)
    decoded = generic_webhook.parse(acc, req, NOW)
    assert decoded.conversation_id == "c" and decoded.seq == 2
    started, ringing = decoded.observations
    assert isinstance(started, ConversationStarted) and started.at == datetime(
        2025, 11, 28, 12, 0, tzinfo=UTC
    )
    assert isinstance(ringing, LegRinging) and ringing.source_key == "2"
    for bad in ([1], {"events": []}, {"id": "1", "type": "leg.answered", "call_id": "c", "at": 1}):
        with pytest.raises(WebhookError):
            generic_webhook.parse(acc, WebhookRequest(body=json.dumps(bad).encode()), NOW)


# ------------------------------------------------------------------------------------- outbox


def test_outbox_backoff_body_and_signature() -> None:
    assert [backoff_seconds(n, 2.0, 10.0) for n in (1, 2, 3, 4, 5)] == [2.0, 4.0, 8.0, 10.0, 10.0]
    from connector.events.model import CallEnded

    event = CallEnded(key="k1", pbx="p", conversation_id="c", occurred_at=NOW, observed_at=NOW)
    body = delivery_body(event)
    assert body == delivery_body(event)
    assert json.loads(body)["id"] == "k1" and json.loads(body)["type"] == "call.ended"
    headers = delivery_headers("sec", body.encode(), "k1", "call.ended", 7, 2, 1764331200.5)
    mac = hmac.new(b"sec", b"1764331200." + body.encode(), hashlib.sha256).hexdigest()
    assert headers["X-Connector-Signature"] == "v1=" + mac
    assert headers["X-Connector-Event-Id"] == "k1" and headers["X-Connector-Attempt"] == "2"


def test_outbox_pacing_per_endpoint() -> None:
    from connector.outbox import _Bucket

    bucket = _Bucket(rate=2.0)
    assert [bucket.delay(100.0) for _ in range(3)] == [0.0, 0.5, 1.0]
    assert bucket.delay(110.0) == 0.0  # an idle endpoint starts fresh


def test_zadarma_routing_answer_shape() -> None:
    acc = account("zadarma")
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    base = {"pbx_call_id": "in_1", "call_start": "2026-11-28 15:00:00", "called_did": "749"}
    started = zadarma.parse(
        acc, form_request({"event": "NOTIFY_START", "caller_id": "79161234567", **base}), now
    )
    assert zadarma.routing_number(started) == "79161234567"
    for event in ("NOTIFY_INTERNAL", "NOTIFY_IVR", "NOTIFY_END"):
        fields = {"event": event, "caller_id": "79161234567", "internal": "100", **base}
        assert zadarma.routing_number(zadarma.parse(acc, form_request(fields), now)) is None
    assert zadarma.route_answer("100", "Ivan Petrov") == {
        "redirect": "100",
        "caller_name": "Ivan Petrov",
    }
    assert zadarma.route_answer("", "") == {}
    # only what Zadarma takes as an extension is a redirect; the name is one printable line
    assert zadarma.route_answer("SIP/100", "  Bell\x07\n Name ") == {"caller_name": "Bell Name"}
    assert zadarma.route_answer("100", "x" * 200)["caller_name"] == "x" * zadarma.MAX_CALLER_NAME
