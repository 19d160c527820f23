"""PDF/A validation with veraPDF (installed from Maven Central by ops/verapdf.sh as `verapdf` on PATH).

The flavour is read from the file's own XMP (pdfaid part and conformance), so a file claiming PDF/A-2b is held
to PDF/A-2b; a file that claims no PDF/A flavour fails.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from output.errors import ServiceUnavailableError

VALIDATE_TIMEOUT_S = 300


@dataclass(frozen=True)
class PdfaReport:
    """veraPDF's verdict: `ok` when compliant; `errors` names each failed rule (clause, test, description)."""

    ok: bool
    profile: str
    errors: list[str] = field(default_factory=list)


def find_verapdf() -> str | None:
    """The veraPDF launcher, if installed."""
    return shutil.which("verapdf")


def validate_pdfa(pdf: Path) -> PdfaReport:
    """Validate a PDF against the PDF/A flavour it claims; raises ServiceUnavailableError without veraPDF."""
    exe = find_verapdf()
    if exe is None:
        raise ServiceUnavailableError("veraPDF is not installed; run ops/verapdf.sh", retry_after=60)
    run = subprocess.run([exe, "--nonpdfext", "--format", "json", str(Path(pdf).resolve())],  # noqa: S603
                         capture_output=True, text=True, timeout=VALIDATE_TIMEOUT_S, check=False)
    try:
        report = json.loads(run.stdout)
        job = report["report"]["jobs"][0]
    except (ValueError, KeyError, IndexError) as exc:
        raise ServiceUnavailableError(f"veraPDF gave no report (exit {run.returncode}): "
                                      f"{(run.stderr or run.stdout)[-400:]}", retry_after=60) from exc
    result = job.get("validationResult")
    if isinstance(result, list):  # newer veraPDF versions report one result per profile
        result = result[0] if result else None
    if not result:
        problem = job.get("taskException") or job.get("taskResult") or "no validation result"
        return PdfaReport(ok=False, profile="", errors=[f"not validated: {str(problem)[:400]}"])
    errors = [f"{r.get('specification', '')} {r.get('clause', '')}-{r.get('testNumber', '')}: "
              f"{r.get('description', '')}".strip()
              for r in result.get("details", {}).get("ruleSummaries", []) if r.get("status") != "passed"]
    return PdfaReport(ok=bool(result.get("compliant")), profile=result.get("profileName", ""), errors=errors)
