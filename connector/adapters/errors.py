"""Errors of the PBX adapters.

The tree::

    AdapterError
     └── AmiProtocolError            something on the AMI wire is not valid AMI
          ├── AmiMessageTooLarge      a message (or a single line) exceeds max_message_bytes
          ├── AmiDecodeError          bytes that are not UTF-8
          ├── AmiMalformedLine        a line that is not ``Key: Value`` inside a message
          ├── AmiTruncatedMessage     a message cut off (EOF, or a new message began without the
          │                           blank line that ends the previous one)
          └── AmiEncodeError          an action we were asked to send cannot be framed safely
                                      (CR/LF inside a header); also a ValueError
     └── WebhookError                 a cloud PBX webhook request we cannot accept
          ├── WebhookSignatureError   the signature (or token) is missing or wrong
          ├── WebhookReplayError      a signed timestamp outside the allowed clock skew
          ├── WebhookMalformedError   the body cannot be parsed or misses a required field
          └── WebhookUnknownEvent     a well-formed event of a type we do not handle
     └── ProviderApiError             a cloud PBX API call (click-to-call, recording link) failed

The framer (:class:`connector.adapters.ami_codec.AmiFramer`) never raises these out of ``feed``:
it records them (``drain_errors()``), counts them (``error_count``) and resynchronises. The I/O
adapter logs and counts what it drains.
"""

from __future__ import annotations

__all__ = [
    "AdapterError",
    "AmiDecodeError",
    "AmiEncodeError",
    "AmiMalformedLine",
    "AmiMessageTooLarge",
    "AmiProtocolError",
    "AmiTruncatedMessage",
    "ProviderApiError",
    "WebhookError",
    "WebhookMalformedError",
    "WebhookReplayError",
    "WebhookSignatureError",
    "WebhookUnknownEvent",
]


class AdapterError(Exception):
    """Base of every error raised by a PBX adapter."""


class AmiProtocolError(AdapterError):
    """Input on the AMI socket that is not valid AMI."""


class AmiMessageTooLarge(AmiProtocolError):
    """A message grew beyond the configured limit; it was skipped up to its blank line."""


class AmiDecodeError(AmiProtocolError):
    """A message held bytes that are not valid UTF-8; it was skipped up to its blank line."""


class AmiMalformedLine(AmiProtocolError):
    """A line inside a message is not ``Key: Value``; the line was skipped."""


class AmiTruncatedMessage(AmiProtocolError):
    """A message was cut off before its terminating blank line."""


class AmiEncodeError(AmiProtocolError, ValueError):
    """An action cannot be encoded (a header name or value contains CR or LF, or is empty)."""


class WebhookError(AdapterError):
    """A webhook request from a cloud PBX that cannot be accepted (the message says why)."""


class WebhookSignatureError(WebhookError):
    """The request's signature or token is missing or does not match the account's secret."""


class WebhookReplayError(WebhookError):
    """The signed timestamp is too far from our clock: an old request replayed, or a bad clock."""


class WebhookMalformedError(WebhookError, ValueError):
    """The body is not the provider's format (bad encoding, missing or invalid field)."""


class WebhookUnknownEvent(WebhookError):
    """A well-formed, authentic event of a type this connector does not handle."""


class ProviderApiError(AdapterError):
    """A call to a provider's API failed (network, HTTP status or an error in the reply)."""
