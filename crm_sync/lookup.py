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

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_sync.phones import SUFFIX_DIGITS, digits_of, is_hidden, suffix_range, variants
from crm_sync.schema import companies, contacts, phones, users

logger = logging.getLogger(__name__)

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
    raw = number.strip()[:200] if isinstance(number, str) else ""
    if limit < 1:
        limit = 1
    if is_hidden(raw):
        why = "the caller id is hidden or empty" if raw else "the number is empty"
        return LookupResult(
            matches=[],
            explanation=Explanation(
                input=raw,
                variants_tried=[],
                steps=[f"{raw!r}: {why}; nothing to look up"],
                reason_if_none=why,
            ),
            hidden=True,
        )
    v = variants(raw, region)
    steps: list[str] = []
    if v.e164:
        steps.append(
            f"read {raw!r} with default region {region} as {', '.join(v.e164)} "
            f"(national {', '.join(v.national)})"
        )
    else:
        steps.append(
            f"{raw!r} is not a valid phone number for region {region}; "
            f"trying its digits {', '.join(v.national) or '(none)'} as stored"
        )
    fetch = max(limit * 5, 50)
    # phone id -> (rank, -common ending length, match type, row)
    hits: dict[int, tuple[int, int, MatchType, Any]] = {}
    cols = (
        phones.c.id,
        phones.c.contact_id,
        phones.c.company_id,
        phones.c.raw,
        phones.c.national,
    )
    base = v.national[0] if v.national else digits_of(raw)

    def keep(row: Any, rank: int, mtype: MatchType) -> None:
        common = _common_ending(row.national, base)
        old = hits.get(row.id)
        if old is None or (rank, -common) < old[:2]:
            hits[row.id] = (rank, -common, mtype, row)

    exact: tuple[tuple[int, MatchType, Any, tuple[str, ...], str], ...] = (
        (1, "e164", phones.c.e164, v.e164, "exact E.164"),
        (2, "national", phones.c.national, v.national, "national number"),
    )
    for rank, mtype, column, values, label in exact:
        if not values:
            continue
        rows = (await conn.execute(select(*cols).where(column.in_(values)).limit(fetch))).all()
        for row in rows:
            keep(row, rank, mtype)
        steps.append(f"{label} {', '.join(values)}: {_phones(len(rows))}")
    if v.suffix:
        low, high = suffix_range(v.suffix)
        cond = [phones.c.national_rev >= low]
        if high is not None:
            cond.append(phones.c.national_rev < high)
        rows = (await conn.execute(select(*cols).where(*cond).limit(fetch))).all()
        for row in rows:
            keep(row, 3, "suffix")
        steps.append(
            f"numbers ending in {v.suffix} (last {SUFFIX_DIGITS} digits, "
            f"range on national_rev): {_phones(len(rows))}"
        )
    else:
        steps.append(
            f"no suffix match: {len(base)} digit(s) is fewer than the {SUFFIX_DIGITS} needed"
        )

    matches = await _owners(conn, list(hits.values()))
    # rank, then the longer common ending, then contacts before companies, then by name
    matches.sort(
        key=lambda x: (x[1].rank, x[0], 0 if x[1].kind == "contact" else 1, x[1].name, x[1].id)
    )
    ranked = [m for _, m in matches][:limit]
    reason = None
    if not ranked:
        forms = [*v.e164, *v.national]
        reason = "no contact or company has the number " + (" or ".join(forms) or repr(raw))
        if v.suffix:
            reason += f", and no stored number ends in {v.suffix}"
        elif base:
            reason += f" ({len(base)} digits: too short for a suffix match)"
    steps.append(
        f"{len(ranked)} match(es)" + (f" of {len(matches)}" if len(matches) > limit else "")
    )
    return LookupResult(
        matches=ranked,
        explanation=Explanation(
            input=raw, variants_tried=v.flat(), steps=steps, reason_if_none=reason
        ),
        e164=v.e164[0] if v.e164 else None,
    )


def _phones(n: int) -> str:
    return "1 phone" if n == 1 else f"{n} phones"


def _common_ending(a: str, b: str) -> int:
    n = 0
    for x, y in zip(reversed(a), reversed(b), strict=False):
        if x != y:
            break
        n += 1
    return n


async def _owners(
    conn: AsyncConnection, hits: list[tuple[int, int, MatchType, Any]]
) -> list[tuple[int, Match]]:
    """Turn phone hits into one Match per owner (its best hit), each with minus the length of
    the ending its number shares with the input (for sorting)."""
    best_contact: dict[int, tuple[int, int, MatchType, Any]] = {}
    best_company: dict[int, tuple[int, int, MatchType, Any]] = {}
    for hit in hits:
        row = hit[3]
        if row.contact_id is not None:
            target, key = best_contact, int(row.contact_id)
        elif row.company_id is not None:
            target, key = best_company, int(row.company_id)
        else:
            continue
        if key not in target or hit[:2] < target[key][:2]:
            target[key] = hit
    out: list[tuple[int, Match]] = []
    company_ids: set[int] = set(best_company)
    contact_rows: list[Any] = []
    if best_contact:
        contact_rows = list(
            (
                await conn.execute(
                    select(
                        contacts.c.id,
                        contacts.c.name,
                        contacts.c.company_id,
                        contacts.c.responsible_user_id,
                        contacts.c.tags,
                    ).where(contacts.c.id.in_(list(best_contact)))
                )
            ).all()
        )
        company_ids.update(int(r.company_id) for r in contact_rows if r.company_id is not None)
    company_rows: dict[int, Any] = {}
    if company_ids:
        for r in await conn.execute(
            select(
                companies.c.id,
                companies.c.name,
                companies.c.responsible_user_id,
                companies.c.tags,
            ).where(companies.c.id.in_(sorted(company_ids)))
        ):
            company_rows[int(r.id)] = r
    user_ids: set[int] = set()
    for r in contact_rows:
        if r.responsible_user_id is not None:
            user_ids.add(int(r.responsible_user_id))
    for r in company_rows.values():
        if r.responsible_user_id is not None:
            user_ids.add(int(r.responsible_user_id))
    names: dict[int, str] = {}
    if user_ids:
        for u in await conn.execute(
            select(users.c.id, users.c.name).where(users.c.id.in_(sorted(user_ids)))
        ):
            names[int(u.id)] = u.name
    for r in contact_rows:
        rank, neg_common, mtype, phone = best_contact[int(r.id)]
        comp = company_rows.get(int(r.company_id)) if r.company_id is not None else None
        responsible = r.responsible_user_id
        if responsible is None and comp is not None:
            responsible = comp.responsible_user_id
        out.append(
            (
                neg_common,
                Match(
                    kind="contact",
                    id=int(r.id),
                    name=r.name,
                    company_id=r.company_id,
                    company_name=comp.name if comp is not None else None,
                    responsible_user_id=responsible,
                    responsible_name=names.get(responsible) if responsible is not None else None,
                    tags=tuple(r.tags or ()),
                    matched_number=phone.raw,
                    match_type=mtype,
                    rank=rank,
                ),
            )
        )
    for cid, hit in best_company.items():
        comp = company_rows.get(cid)
        if comp is None:
            continue
        rank, neg_common, mtype, phone = hit
        responsible = comp.responsible_user_id
        out.append(
            (
                neg_common,
                Match(
                    kind="company",
                    id=cid,
                    name=comp.name,
                    company_id=cid,
                    company_name=comp.name,
                    responsible_user_id=responsible,
                    responsible_name=names.get(responsible) if responsible is not None else None,
                    tags=tuple(comp.tags or ()),
                    matched_number=phone.raw,
                    match_type=mtype,
                    rank=rank,
                ),
            )
        )
    return out
