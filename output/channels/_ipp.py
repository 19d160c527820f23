"""Print device over IPP/1.1 (RFC 8011): Print-Job of the PDF, then Get-Job-Attributes until the job ends."""

from __future__ import annotations

import hashlib
import http.client
import itertools
import re
import ssl
from urllib.parse import urlsplit

from output.channels import _ipp_codec as ipp
from output.channels.base import DELIVERED, SENT, ChannelNotConfiguredError, Outgoing, SendResult, failed

_REQUEST_IDS = itertools.count(1)
_RETRYABLE_IPP = {0x0406}  # client-error-not-found: a wrong or vanished printer path may be fixed by config
_JOB_ATTRIBUTES = ["job-id", "job-uri", "job-name", "job-state", "job-state-reasons", "job-state-message"]
_MAX_RESPONSE = 1024 * 1024


class IppTransportError(Exception):
    """The printer could not be reached or answered something that is not IPP."""

    def __init__(self, detail: str, *, retryable: bool = True) -> None:
        super().__init__(detail)
        self.retryable = retryable


def job_name(idempotency_key: str) -> str:
    """The job-name that marks a letter's print job, so a resubmission after a crash can find it."""
    if len(idempotency_key) <= 200 and idempotency_key.isprintable():
        return f"postroom:{idempotency_key}"
    return "postroom:" + hashlib.sha256(idempotency_key.encode()).hexdigest()


class IppChannel:
    """Prints letters on an IPP printer; `send` submits the job, `check` follows it to completed or aborted."""

    name = "print"

    def __init__(self, *, printer_uri: str, timeout: float = 30.0, user: str = "postroom",
                 ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(printer_uri)
        if parts.scheme not in ("ipp", "ipps") or not parts.hostname:
            raise ValueError(f"printer URI must be ipp:// or ipps://, not {printer_uri!r}")
        self.printer_uri, self.timeout, self.user = printer_uri, timeout, user
        self._host, self._port = parts.hostname, parts.port or 631
        self._path = parts.path or "/"
        self._tls = parts.scheme == "ipps"
        self._ssl_context = ssl_context or ssl.create_default_context()

    @classmethod
    def from_settings(cls, settings) -> IppChannel:  # noqa: ANN001
        """The channel as configured by POSTROOM_IPP_*."""
        if not settings.ipp_printer_uri:
            raise ChannelNotConfiguredError("print", "ipp_printer_uri")
        return cls(printer_uri=settings.ipp_printer_uri, timeout=settings.ipp_timeout_seconds)

    def send(self, message: Outgoing) -> SendResult:
        """Submit the PDF with Print-Job (or find the job an earlier attempt submitted); `sent` with the job URI."""
        if not message.pdf:
            return failed("no PDF to print", retryable=False)
        name = job_name(message.idempotency_key)
        try:
            earlier = self._find_job(name)
            if earlier is not None:
                return SendResult(status=SENT, provider_ref=earlier, retryable=False,
                                  detail="already submitted by an earlier attempt")
            response = self._call(ipp.PRINT_JOB, [
                (ipp.NAME, "job-name", name),
                (ipp.NAME, "document-name", f"letter-{message.letter_id}.pdf"),
                (ipp.MIME, "document-format", "application/pdf"),
                (ipp.BOOLEAN, "ipp-attribute-fidelity", False),
            ], data=message.pdf)
        except IppTransportError as exc:
            return failed(str(exc), retryable=exc.retryable)
        if not response.ok:
            return _ipp_failure("Print-Job", response)
        job_uri = response.first(ipp.JOB, "job-uri")
        job_id = response.first(ipp.JOB, "job-id")
        if not isinstance(job_uri, str) and not isinstance(job_id, int):
            return failed("printer accepted the job but named no job-id or job-uri", retryable=False)
        ref = job_uri if isinstance(job_uri, str) else f"{self.printer_uri}/{job_id}"
        state = response.first(ipp.JOB, "job-state")
        return SendResult(status=SENT, provider_ref=ref, retryable=False,
                          detail=f"submitted as job {job_id} (job-state {state})")

    def check(self, provider_ref: str) -> SendResult | None:
        """The job's outcome: delivered when completed, failed (retryable) when aborted or canceled, else None."""
        match = re.search(r"/(\d+)$", provider_ref)
        target = [(ipp.INTEGER, "job-id", int(match.group(1)))] if match else [(ipp.URI, "job-uri", provider_ref)]
        try:
            response = self._call(ipp.GET_JOB_ATTRIBUTES, [
                *target, (ipp.KEYWORD, "requested-attributes", _JOB_ATTRIBUTES)], job_target=not match)
        except IppTransportError:
            return None  # the printer may still finish the job; the dispatcher bounds how long it polls
        if not response.ok:
            if response.status == 0x0406:
                return failed("the printer no longer knows this job", retryable=True, provider_ref=provider_ref)
            return _ipp_failure("Get-Job-Attributes", response, provider_ref)
        state = response.first(ipp.JOB, "job-state")
        reasons = ", ".join(str(r) for r in response.group(ipp.JOB).get("job-state-reasons", []) if r)
        if state == ipp.COMPLETED:
            return SendResult(status=DELIVERED, provider_ref=provider_ref, retryable=False,
                              detail=f"job completed ({reasons or 'no reasons'})")
        if state in (ipp.ABORTED, ipp.CANCELED):
            word = "aborted" if state == ipp.ABORTED else "canceled"
            return failed(f"job {word} ({reasons or 'no reasons'})", retryable=True, provider_ref=provider_ref)
        return None

    def _find_job(self, name: str) -> str | None:
        response = self._call(ipp.GET_JOBS, [
            (ipp.KEYWORD, "which-jobs", "all"),
            (ipp.KEYWORD, "requested-attributes", ["job-id", "job-uri", "job-name", "job-state"])])
        if not response.ok:
            if response.status in _RETRYABLE_IPP:
                raise IppTransportError(f"printer answered Get-Jobs with status 0x{response.status:04x}")
            return None  # a printer that cannot list jobs cannot tell us; submit as usual
        for job in response.all_groups(ipp.JOB):
            state = (job.get("job-state") or [None])[0]
            if (job.get("job-name") or [None])[0] == name and state not in (ipp.ABORTED, ipp.CANCELED):
                uri, job_id = (job.get("job-uri") or [None])[0], (job.get("job-id") or [None])[0]
                return uri if isinstance(uri, str) else f"{self.printer_uri}/{job_id}"
        return None

    def _call(self, operation: int, attributes: list, *, data: bytes = b"", job_target: bool = False) -> ipp.Response:
        head = [(ipp.CHARSET, "attributes-charset", "utf-8"), (ipp.LANGUAGE, "attributes-natural-language", "en")]
        if not job_target:
            head.append((ipp.URI, "printer-uri", self.printer_uri))
        head.append((ipp.NAME, "requesting-user-name", self.user))
        body = ipp.encode_request(operation, next(_REQUEST_IDS), [(ipp.OPERATION, head + attributes)], data)
        if self._tls:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=self._ssl_context)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        try:
            conn.request("POST", self._path, body=body, headers={"Content-Type": "application/ipp"})
            reply = conn.getresponse()
            raw = reply.read(_MAX_RESPONSE)
        except ssl.SSLCertVerificationError as exc:
            raise IppTransportError(f"printer certificate not trusted: {exc.verify_message}", retryable=False) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise IppTransportError(f"printer unreachable at {self.printer_uri}: {exc.__class__.__name__}: {exc}") \
                from exc
        finally:
            conn.close()
        if reply.status != 200:
            # 404 is a wrong printer path: retryable, as configuration may be fixed before the next attempt.
            retryable = reply.status == 404 or reply.status >= 500
            raise IppTransportError(f"printer answered HTTP {reply.status} at {self.printer_uri}", retryable=retryable)
        try:
            return ipp.decode_response(raw)
        except ipp.IppFormatError as exc:
            raise IppTransportError(f"printer answered no valid IPP: {exc}") from exc


def _ipp_failure(operation: str, response: ipp.Response, provider_ref: str | None = None) -> SendResult:
    message = response.first(ipp.OPERATION, "status-message")
    retryable = response.status >= 0x0500 or response.status in _RETRYABLE_IPP
    detail = f"{operation} refused with IPP status 0x{response.status:04x}" + (f": {message}" if message else "")
    return failed(detail, retryable=retryable, provider_ref=provider_ref)
