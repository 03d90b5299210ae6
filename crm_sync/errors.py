"""Errors of the CRM core. Web handlers translate them to HTTP; nothing here knows status codes.

::

    CrmError                      base of everything the store raises on purpose
     ├── NotFound                 the entity does not exist (``entity``, ``entity_id``)
     ├── Conflict                 the change clashes with existing data (duplicate login,
     │                            extension taken, ...); ``field`` names the clashing value
     └── ValidationError          a value is missing, has the wrong type or is out of range;
                                  ``field`` names it (``"phones[1]"``, ``"due_at"``)

:class:`ValidationError` is also a :class:`ValueError`, so code that treats bad input generically
keeps working.
"""

from __future__ import annotations

__all__ = ["Conflict", "CrmError", "NotFound", "ValidationError"]


class CrmError(Exception):
    """Base class of the CRM core's errors; ``message`` is meant for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(CrmError):
    """The entity ``entity`` with id ``entity_id`` does not exist."""

    def __init__(self, entity: str, entity_id: object, message: str | None = None) -> None:
        super().__init__(message or f"{entity} {entity_id} does not exist")
        self.entity = entity
        self.entity_id = entity_id


class Conflict(CrmError):
    """The change clashes with existing data (a unique value already taken)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ValidationError(CrmError, ValueError):
    """A value is missing or wrong; ``field`` names it."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
