"""Errors of the softphone package.

::

    SoftphoneError                  anything the softphone refuses or cannot do
     +-- InvalidState               an operation that the current state does not allow (names it)
     +-- RegistrationError          the phone could not register (reason in the message)
     |    +-- AuthenticationFailed  the registrar rejected the username or password
     |    +-- RegistrarUnreachable  no answer from the registrar in time
     +-- PortInUse                  the local SIP port is taken by another program
     +-- CallFailed                 an outgoing call could not be set up (status in the message)
     +-- HoldNotSupported           pyVoIP 1.6 cannot put a call on hold
     +-- AudioError                 a WAV file or sound device problem
     +-- LookupFailed               the connector's lookup API did not answer usefully
     +-- UplinkFailed               the connector refused or did not take observations/commands
     +-- MalformedMessage           a SIP datagram cannot be understood or answered (also a
                                    ValueError; raised by the pure helpers in softphone.sipmsg)
"""

from __future__ import annotations

__all__ = [
    "AudioError",
    "AuthenticationFailed",
    "CallFailed",
    "HoldNotSupported",
    "InvalidState",
    "LookupFailed",
    "MalformedMessage",
    "PortInUse",
    "RegistrarUnreachable",
    "RegistrationError",
    "SoftphoneError",
    "UplinkFailed",
]


class SoftphoneError(Exception):
    """Base of every softphone error."""


class InvalidState(SoftphoneError):
    """The operation is not allowed in the current state (the message names the state)."""


class RegistrationError(SoftphoneError):
    """The phone could not register with the registrar."""


class AuthenticationFailed(RegistrationError):
    """The registrar rejected the credentials (401/403 after the digest answer)."""


class RegistrarUnreachable(RegistrationError):
    """The registrar did not answer in time."""


class PortInUse(SoftphoneError):
    """The local SIP port is already bound by another program."""


class CallFailed(SoftphoneError):
    """An outgoing call could not be set up."""


class HoldNotSupported(SoftphoneError):
    """pyVoIP 1.6 sends no re-INVITE, so a call cannot be put on hold."""


class AudioError(SoftphoneError):
    """A WAV file could not be read or written, or the sound device failed."""


class LookupFailed(SoftphoneError):
    """The connector's caller lookup failed."""


class UplinkFailed(SoftphoneError):
    """The connector refused or did not take the observations (``status`` 0: unreachable)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class MalformedMessage(SoftphoneError, ValueError):
    """A SIP datagram is not a message we can understand or answer (the message says why)."""
