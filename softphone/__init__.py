"""A SIP softphone for agents, on pyVoIP, wired to the connector.

Modules: :mod:`softphone.phone` (the asyncio-facing :class:`~softphone.phone.Softphone`),
:mod:`softphone.patches` (fixes for pyVoIP 1.6.8), :mod:`softphone.sipmsg` (pure SIP helpers),
:mod:`softphone.audio` (format conversion, WAV and sound device), :mod:`softphone.events`,
:mod:`softphone.observations` (phone events -> connector observations), :mod:`softphone.link`
(the connector's HTTP API: observations, lookup, click-to-call commands, recording upload),
:mod:`softphone.control` (``CallControl`` of one phone), :mod:`softphone.tui` (the terminal
screen, pure) and :mod:`softphone.cli` (``connector softphone``). Errors: :mod:`softphone.errors`.
"""

# pyVoIP's modules import each other in a cycle that only resolves when pyVoIP.VoIP is imported
# first; every softphone module may then import pyVoIP.SIP / pyVoIP.RTP in any order.
import pyVoIP.VoIP  # noqa: F401

__all__: list[str] = []
