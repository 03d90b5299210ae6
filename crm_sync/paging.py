"""A page of a listing: the items, the total count and where the page starts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from crm_sync.errors import ValidationError

__all__ = ["MAX_LIMIT", "Page", "check_page"]

T = TypeVar("T")

#: The largest page any listing returns.
MAX_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """``items`` are rows ``offset .. offset+len(items)`` of ``total`` matching rows."""

    items: list[T]
    total: int
    limit: int
    offset: int

    def to_dict(self, item: Callable[[T], Any] | None = None) -> dict[str, Any]:
        """JSON-ready form; items are converted with ``item`` or their own ``to_dict()``."""
        conv = item or (lambda x: x.to_dict())  # type: ignore[attr-defined]
        return {
            "items": [conv(x) for x in self.items],
            "total": self.total,
            "limit": self.limit,
            "offset": self.offset,
        }


def check_page(limit: int, offset: int) -> tuple[int, int]:
    """Validate paging arguments: ``limit`` 1..MAX_LIMIT, ``offset`` >= 0."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationError("limit", f"limit must be an integer 1..{MAX_LIMIT}, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValidationError("offset", f"offset must be an integer >= 0, got {offset!r}")
    return limit, offset
