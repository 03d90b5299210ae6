"""Caller lookup: which contacts and companies own a number written any way, ranked, explained.

Ranking (lower ``rank`` is better):

1. ``e164``     - a stored E.164 number equals one of the input's E.164 readings;
2. ``national`` - a stored national significant number equals one of the input's national forms
                  (catches numbers stored without a country, extensions, short numbers);
3. ``suffix``   - a stored number ends in the input's last 7 digits (an indexed range query on
                  ``phones.national_rev``); longer common endings rank first.

At equal rank contacts come before companies, then by name. A contact without a responsible
user inherits its company's. Every query uses an index (``ix_phones_e164``,
``ix_phones_national``, ``ix_phones_national_rev``, primary keys): no scans, so it stays fast on
millions of phones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["Explanation", "LookupResult", "Match", "lookup"]

MatchKind = Literal["contact", "company"]
MatchType = Literal["e164", "national", "suffix"]


@dataclass(frozen=True, slots=True)
class Match:
    """One contact or company that owns the number."""

    kind: MatchKind
    id: int
    name: str
    company_id: int | None  # for a company: its own id
    company_name: str | None
    responsible_user_id: int | None
    responsible_name: str | None
    tags: tuple[str, ...]
    matched_number: str  # the stored number as it was typed
    match_type: MatchType
    rank: int  # 1 e164, 2 national, 3 suffix

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "id": self.id,
            "name": self.name,
            "company_id": self.company_id,
            "company_name": self.company_name,
            "responsible_user_id": self.responsible_user_id,
            "responsible_name": self.responsible_name,
            "tags": list(self.tags),
            "matched_number": self.matched_number,
            "match_type": self.match_type,
            "rank": self.rank,
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    """How a lookup went: the forms tried, what each step found, and why nothing matched."""

    input: str
    variants_tried: list[str]
    steps: list[str]
    reason_if_none: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "input": self.input,
            "variants_tried": list(self.variants_tried),
            "steps": list(self.steps),
            "reason_if_none": self.reason_if_none,
        }


@dataclass(frozen=True, slots=True)
class LookupResult:
    """Matches, best first, and the explanation."""

    matches: list[Match]
    explanation: Explanation
    hidden: bool = False  # the caller id was withheld
    e164: str | None = None  # the input's best E.164 reading, if any
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> Match | None:
        """The top match, or None."""
        return self.matches[0] if self.matches else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "matches": [m.to_dict() for m in self.matches],
            "explanation": self.explanation.to_dict(),
            "hidden": self.hidden,
            "e164": self.e164,
        }


async def lookup(conn: AsyncConnection, number: str, region: str, limit: int = 10) -> LookupResult:
    """Find who owns ``number`` (any format) with ``region`` as the default country.

    Returns at most ``limit`` matches ranked as the module docstring says; a hidden or empty
    number returns no matches and says so in the explanation. Never raises on odd input.
    """
    raise NotImplementedError
