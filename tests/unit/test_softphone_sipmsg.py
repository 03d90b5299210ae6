"""Pure SIP helpers of the patch layer, and the stock pyVoIP parser defect they fix."""

from __future__ import annotations

import struct

import pytest
from pyVoIP.VoIP.VoIP import SIP  # pyVoIP resolves its import cycle from pyVoIP.VoIP

from connector.events.model import Party
from softphone.sipmsg import (
    MalformedMessage,
    build_cancel,
    build_response,
    digest_authorization,
    dtmf_packets,
    granted_expires,
    header_values,
    parse_challenge,
    parse_party,
    request_method,
    response_status,
)

OPTIONS = (
    b"OPTIONS sip:alice@127.0.0.1:5080 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK2\r\n"
    b"From: <sip:asterisk@10.0.0.1>;tag=as1\r\n"
    b"t: <sip:alice@127.0.0.1:5080>\r\n"
    b"i: qualify-1\r\n"
    b"CSeq: 102 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)

INVITE = (
    b"INVITE sip:100@pbx.local SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKabc\r\n"
    b"Via: SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKold\r\n"
    b"From: <sip:alice@127.0.0.1>;tag=t1\r\n"
    b"To: <sip:100@pbx.local>\r\n"
    b"Call-ID: c-1\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_request_method_and_status() -> None:
    assert request_method(OPTIONS) == "OPTIONS"
    assert request_method(b"SIP/2.0 200 OK\r\n\r\n") is None
    assert request_method(b"\xff\xfe garbage") is None
    assert request_method(b"INVITE sip:x SIP/3.0\r\n\r\n") is None
    assert request_method(b"X" * 70000) is None
    assert response_status(b"SIP/2.0 486 Busy Here\r\n\r\n") == 486
    assert response_status(b"SIP/2.0 abc\r\n\r\n") is None
    assert response_status(OPTIONS) is None


def test_headers_with_compact_forms() -> None:
    assert header_values(OPTIONS, "Call-ID") == ["qualify-1"]
    assert header_values(OPTIONS, "to") == ["<sip:alice@127.0.0.1:5080>"]
    assert len(header_values(OPTIONS, "Via")) == 2


def test_response_copies_transaction_headers_and_adds_to_tag() -> None:
    text = build_response(OPTIONS, 200, "OK", to_tag="me", extra=("Allow: INVITE",)).decode()
    lines = text.split("\r\n")
    assert lines[0] == "SIP/2.0 200 OK"
    assert lines[1] == "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport"
    assert lines[2] == "Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK2"
    assert "To: <sip:alice@127.0.0.1:5080>;tag=me" in lines
    assert "Call-ID: qualify-1" in lines and "CSeq: 102 OPTIONS" in lines
    assert "Allow: INVITE" in lines and text.endswith("Content-Length: 0\r\n\r\n")
    with pytest.raises(MalformedMessage, match="no Via"):
        build_response(b"OPTIONS sip:x SIP/2.0\r\nCall-ID: 1\r\n\r\n", 200, "OK")


def test_cancel_matches_the_invite() -> None:
    lines = build_cancel(INVITE).decode().split("\r\n")
    assert lines[0] == "CANCEL sip:100@pbx.local SIP/2.0"
    assert lines[1] == "Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKabc"
    assert "CSeq: 7 CANCEL" in lines and "Call-ID: c-1" in lines
    assert "To: <sip:100@pbx.local>" in lines
    with pytest.raises(MalformedMessage):
        build_cancel(OPTIONS)


def test_stock_parser_leaves_a_stray_quote_parse_party_does_not() -> None:
    raw = INVITE.replace(b"From: <sip:alice", b'From: "Caller Sipp" <sip:79161234567')
    stock = SIP.SIPMessage(raw.replace(b"Content-Length: 0", b"Content-Length: 0"))
    assert stock.headers["From"]["caller"] == 'Caller Sipp" '  # the defect
    assert parse_party(stock.headers["From"]["raw"]) == Party("79161234567", "Caller Sipp")


@pytest.mark.parametrize(
    ("header", "party"),
    [
        (
            '"Ivanov, Ivan" <sip:+79161234567@pbx;user=phone>;tag=x',
            Party("+79161234567", "Ivanov, Ivan"),
        ),
        ("Bob <sip:200@pbx>", Party("200", "Bob")),
        ("<sip:200@pbx:5060>", Party("200", "")),
        ("sip:300@pbx;tag=1", Party("300", "")),
        ('"Say \\"hi\\"" <tel:+4930123>', Party("+4930123", 'Say "hi"')),
        ('"" <sip:anonymous@anonymous.invalid>', Party("anonymous", "")),
    ],
)
def test_parse_party(header: str, party: Party) -> None:
    assert parse_party(header) == party


def test_dtmf_packets_follow_rfc4733() -> None:
    packets = dtmf_packets("#", payload_type=101, sequence=65534, timestamp=1000, ssrc=42)
    assert len(packets) == 8  # 5 x 20 ms updates, then the end packet 3 times
    first = struct.unpack("!BBHIIBBH", packets[0])
    assert first[1] == 0x80 | 101  # marker on the first packet only
    assert first[2] == 65534 and first[3] == 1000 and first[4] == 42
    assert first[5] == 11 and not first[6] & 0x80  # event '#', not ended
    last = struct.unpack("!BBHIIBBH", packets[-1])
    assert last[1] == 101 and last[2] == 5  # sequence wrapped
    assert last[6] & 0x80 and last[7] == 800  # end bit, duration 100 ms
    assert all(struct.unpack("!I", p[4:8])[0] == 1000 for p in packets)
    with pytest.raises(ValueError, match="not a DTMF digit"):
        dtmf_packets("x", payload_type=101, sequence=0, timestamp=0, ssrc=0)


def test_digest_with_qop_matches_rfc2617_example() -> None:
    challenge = parse_challenge(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    value = digest_authorization(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle Of Life",
        cnonce="0a4f113b",
    )
    assert 'response="6629fae49393a05397450978507c4ef1"' in value
    assert "qop=auth," in value and "nc=00000001" in value and 'cnonce="0a4f113b"' in value
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in value


def test_stock_digest_ignores_qop() -> None:
    # pyVoIP's answer to the same challenge has no qop/nc/cnonce, so a registrar that asked for
    # qop=auth (Asterisk PJSIP) cannot accept it.
    from pyVoIP.VoIP.VoIP import VoIPPhone

    phone = VoIPPhone("pbx", 5060, "alice", "secret", myIP="127.0.0.1", sipPort=0)
    challenge = (
        b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKx\r\n"
        b"From: <sip:alice@pbx>;tag=1\r\nTo: <sip:alice@pbx>;tag=2\r\nCall-ID: r-1\r\n"
        b"CSeq: 1 REGISTER\r\n"
        b'WWW-Authenticate: Digest realm="asterisk", nonce="n1", qop="auth"\r\n'
        b"Content-Length: 0\r\n\r\n"
    )
    stock = phone.sip.gen_register(SIP.SIPMessage(challenge))
    authorization = next(line for line in stock.split("\r\n") if line.startswith("Authorization"))
    assert "qop" not in authorization and "cnonce" not in authorization  # the defect
    ours = digest_authorization(
        parse_challenge('Digest realm="asterisk", nonce="n1", qop="auth"'),
        method="REGISTER",
        uri="sip:pbx",
        username="alice",
        password="secret",
    )
    assert "qop=auth" in ours and "cnonce=" in ours  # the fix


def test_digest_without_qop_and_bad_challenges() -> None:
    value = digest_authorization(
        {"realm": "r", "nonce": "n"}, method="REGISTER", uri="sip:pbx", username="u", password="p"
    )
    assert "qop" not in value and value.startswith('Digest username="u"')
    with pytest.raises(MalformedMessage, match="no realm or nonce"):
        digest_authorization({"realm": "r"}, method="R", uri="u", username="u", password="p")
    with pytest.raises(MalformedMessage, match="SHA-256"):
        digest_authorization(
            {"realm": "r", "nonce": "n", "algorithm": "SHA-256"},
            method="R",
            uri="u",
            username="u",
            password="p",
        )


def test_granted_expires() -> None:
    ok = b"SIP/2.0 200 OK\r\nExpires: 60\r\nContact: <sip:a@b>;expires=30\r\n\r\n"
    assert granted_expires(ok, 120) == 60
    assert granted_expires(b"SIP/2.0 200 OK\r\nContact: <sip:a@b>;Expires=30\r\n\r\n", 120) == 30
    assert granted_expires(b"SIP/2.0 200 OK\r\n\r\n", 120) == 120
