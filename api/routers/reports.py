"""Reports: document production (letters, pages, sheets by template, channel and state; failures with reasons).

Who may: admins, auditors and authors; any other role gets 403, as for the audit trail.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from api.deps import CurrentUser
from output.service import reports
from repository.config import get_settings
from repository.db import transaction

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

CSV_COLUMNS = ("template", "channel", "status", "letters", "pages", "sheets")


def _cell(value: object) -> object:
    # A cell a spreadsheet would run as a formula is quoted (CSV injection).
    return f"'{value}" if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _csv(report: reports.ProductionReport) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for group in report.groups:
        writer.writerow([_cell(getattr(group, column)) for column in CSV_COLUMNS])
    name = f"production-{report.start:%Y%m%dT%H%M%SZ}-{report.end:%Y%m%dT%H%M%SZ}.csv"
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/production", response_model=None)
def production(
    user: CurrentUser,
    start: Annotated[str | None, Query(alias="from", max_length=40, description="ISO date or date-time, inclusive; "
                                                                                "default: 30 days before `to`")] = None,
    end: Annotated[str | None, Query(alias="to", max_length=40, description="ISO date or date-time, exclusive; "
                                                                            "default: now")] = None,
    format: Annotated[Literal["json", "csv"], Query(description="json, or csv (the groups only)")] = "json",
    failures_limit: Annotated[int, Query(ge=0, le=1000, description="how many failures to list")] = 100,
) -> dict | Response:
    """Letters created in [from, to) by template, channel and ledger state, with pages, sheets and failures."""
    reports.check_reader(user)  # before looking at the parameters: a caller without access learns nothing
    begin, finish = reports.period(reports.parse_instant(start, "from"), reports.parse_instant(end, "to"))
    with transaction(readonly=True) as session:
        report = reports.production_report(session, actor=user, settings=get_settings(), start=begin, end=finish,
                                           failures_limit=failures_limit)
    if format == "csv":
        return _csv(report)
    return {"from": report.start.isoformat(), "to": report.end.isoformat(), "duplex": report.duplex,
            "totals": {"letters": report.letters, "pages": report.pages, "sheets": report.sheets},
            "groups": [asdict(g) for g in report.groups],
            "failures": {"total": report.failures_total,
                         "items": [{**asdict(f), "at": f.at.isoformat()} for f in report.failures]}}
