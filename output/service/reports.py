"""Document production reporting: letters, pages and sheets by template, channel and ledger state over a period,
and the failed or bounced ledger rows with their reasons.

Decisions:
- The period is the letters' `created_at` in [start, end); everything is counted by the database (GROUP BY),
  never by loading rows.
- A group is one (template, channel, ledger state); a letter sent on two channels counts in both groups, so the
  totals (letters, pages) come from the letters alone.
- Sheets are paper: only print rows have them. ceil(pages / 2) per letter when POSTROOM_PRINT_DUPLEX is true
  (the default, as the print house prints), else one sheet per page. A group shows the sheets of its state (so
  queued print rows show the paper still to come); the total counts only paper that was printed, the print rows
  that reached `sent` or `delivered`, never queued, failed or suppressed ones.
- Who may read it: admins, auditors and authors (require_role: others get 403, as for the audit trail).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from output.models import BOUNCED, DELIVERED, FAILED, SENT, Dispatch, Letter
from repository.access import require_role
from repository.config import Settings
from repository.errors import InvalidInputError
from repository.models import User
from repository.types import utcnow

READERS = ("auditor", "author")  # admins always pass require_role
DEFAULT_DAYS = 30
PRINTED = (SENT, DELIVERED)  # print rows whose paper was produced
NO_CHANNEL = ""  # a letter without ledger rows (none is written today; kept visible if it happens)


@dataclass(frozen=True)
class Group:
    """Letters of one template on one channel in one ledger state, with their pages and sheets."""

    template: str
    channel: str
    status: str
    letters: int
    pages: int
    sheets: int


@dataclass(frozen=True)
class Failure:
    """A failed or bounced ledger row and why."""

    letter_id: str
    reference: str
    template: str
    channel: str
    status: str
    reason: str
    attempts: int
    at: dt.datetime


@dataclass(frozen=True)
class ProductionReport:
    """The production of a period: groups, totals, and the newest failures (capped) with their total count."""

    start: dt.datetime
    end: dt.datetime
    duplex: bool
    groups: list[Group]
    letters: int
    pages: int
    sheets: int  # printed: print rows sent or delivered
    failures: list[Failure]
    failures_total: int


def parse_instant(value: str | None, field: str) -> dt.datetime | None:
    """An ISO date or date-time as an aware UTC datetime (a date is its midnight, naive means UTC); None when
    empty; InvalidInputError naming the field otherwise."""
    if value is None or not value.strip():
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInputError(f"{field} must be an ISO date (2026-01-31) or date-time (2026-01-31T12:00:00Z), "
                                f"not {value[:40]!r}", field=field) from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def period(start: dt.datetime | None, end: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
    """The period [start, end): by default the 30 days up to now; InvalidInputError when start is after end."""
    end = end or utcnow()
    try:
        start = start or end - dt.timedelta(days=DEFAULT_DAYS)
    except OverflowError:
        raise InvalidInputError("to is too early for the default period; give from as well", field="to") from None
    if start > end:
        raise InvalidInputError(f"from ({start.isoformat()}) is after to ({end.isoformat()})", field="from")
    return start, end


def check_reader(actor: User) -> None:
    """PermissionDeniedError unless the caller may read production reports."""
    require_role(actor, *READERS)


def production_report(session: Session, *, actor: User, settings: Settings, start: dt.datetime, end: dt.datetime,
                      failures_limit: int = 100) -> ProductionReport:
    """Letters, pages and sheets by template, channel and state for letters created in [start, end), and the
    failures with their reasons (see the module's decisions)."""
    check_reader(actor)
    duplex = settings.print_duplex
    in_period = (Letter.created_at >= start, Letter.created_at < end)
    per_letter = (Letter.pages + 1) // 2 if duplex else Letter.pages
    sheets = func.sum(case((Dispatch.channel == "print", per_letter), else_=0))
    channel = func.coalesce(Dispatch.channel, NO_CHANNEL)
    status = func.coalesce(Dispatch.state, Letter.status)
    rows = session.execute(
        select(Letter.template_name, channel, status, func.count(Letter.id), func.sum(Letter.pages), sheets)
        .select_from(Letter).outerjoin(Dispatch, Dispatch.letter_id == Letter.id).where(*in_period)
        .group_by(Letter.template_name, channel, status).order_by(Letter.template_name, channel, status)).all()
    groups = [Group(template=t, channel=c, status=s, letters=n, pages=int(p or 0), sheets=int(sh or 0))
              for t, c, s, n, p, sh in rows]
    letters, pages = session.execute(select(func.count(Letter.id), func.sum(Letter.pages)).where(*in_period)).one()
    failed = (Dispatch.state.in_((FAILED, BOUNCED)), *in_period)
    failures_total = session.execute(select(func.count(Dispatch.id)).join(Letter, Letter.id == Dispatch.letter_id)
                                     .where(*failed)).scalar_one()
    found = session.execute(
        select(Letter.id, Letter.reference, Letter.template_name, Dispatch.channel, Dispatch.state,
               func.coalesce(Dispatch.last_error, Dispatch.reason, ""), Dispatch.attempts, Dispatch.updated_at)
        .join(Letter, Letter.id == Dispatch.letter_id).where(*failed)
        .order_by(Dispatch.updated_at.desc(), Dispatch.id).limit(failures_limit)).all()
    printed = sum(g.sheets for g in groups if g.channel == "print" and g.status in PRINTED)
    return ProductionReport(start=start, end=end, duplex=duplex, groups=groups, letters=letters, pages=int(pages or 0),
                            sheets=printed, failures=[Failure(*row) for row in found],
                            failures_total=failures_total)
