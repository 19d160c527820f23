"""Settings for every Postroom process, read from POSTROOM_* environment variables."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _check_allocator(value: str) -> str:
    if value not in ("auto", "system") and not Path(value).is_file():
        raise ValueError(f"uno_allocator must be auto, system or the path of a shared library; {value!r} is none")
    return value


def _default_keyring() -> Path:
    # Keys live outside the data directory so a copy of the data (or a backup) never carries its own keys.
    return Path.home() / ".config" / "postroom" / "keyring.json"


_CAP = r"(([A-Za-z0-9_.-]+\s*=\s*)?\d+(/\d+)?\s*)?"
_CAPS = rf"^\s*{_CAP}(;\s*{_CAP})*$"  # marketing_cap: "N/D" ("N": 30 days) and "category=N/D", separated by ";"

class Settings(BaseSettings):
    """All configuration; every field is POSTROOM_<NAME> in the environment."""

    model_config = SettingsConfigDict(env_prefix="POSTROOM_", extra="ignore")

    data_dir: Path = Path("./postroom-data")
    database_url: str | None = None
    blob_store: Literal["file", "s3"] = "file"
    s3_endpoint: str = "127.0.0.1:9000"
    s3_bucket: str = "postroom"
    s3_access_key: str = ""
    s3_secret_key: SecretStr = SecretStr("")
    s3_secure: bool = False
    s3_region: str | None = None
    keyring_path: Path = Field(default_factory=_default_keyring)
    token_secret_path: Path | None = None
    token_lifetime_minutes: int = 60
    lock_lifetime_hours: float = 8.0
    # DOCX -> PDF converters (output/compose/): a pool of unoserver processes, ports from uno_port_base upwards.
    uno_workers: int = Field(default_factory=lambda: os.cpu_count() or 1)
    uno_max_queue: int = 32
    uno_max_conversions: int = 200
    uno_timeout_s: float = 120.0
    uno_port_base: int = 2100
    soffice: str | None = None  # the LibreOffice executable; found on PATH when unset
    uno_python: str | None = None  # a Python that can `import uno`; /usr/bin/python3 when unset
    # malloc for LibreOffice: auto (tcmalloc/jemalloc if installed), system, or a path
    uno_allocator: Annotated[str, AfterValidator(_check_allocator)] = "auto"
    max_upload_bytes: int = 100 * 1024 * 1024
    max_zip_uncompressed_bytes: int = 512 * 1024 * 1024
    max_zip_entries: int = 10_000
    max_zip_ratio: float = 100.0
    max_header_bytes: int = 16 * 1024
    outbox_poll_seconds: float = 1.0
    outbox_max_attempts: int = 10
    run_worker_in_serve: bool = True
    web_workers: int = 1
    # Dispatch channels (output/channels/).
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: SecretStr = SecretStr("")
    smtp_tls: Literal["none", "starttls", "ssl"] = "none"
    smtp_from: str = "postroom@localhost"
    smtp_timeout_seconds: float = 30.0
    smtp_ca_file: Path | None = None  # extra CA bundle to trust (a private relay's certificate)
    sms_url: str | None = None
    sms_api_key: SecretStr = SecretStr("")
    sms_from: str = "Postroom"
    sms_timeout_seconds: float = 10.0
    sms_webhook_secret: SecretStr = SecretStr("")
    email_webhook_secret: SecretStr = SecretStr("")  # bounces posted to /api/v1/webhooks/email/bounces
    ipp_printer_uri: str | None = None
    ipp_timeout_seconds: float = 30.0
    # Print route (output/service/print_house/): `device` prints each letter by IPP; `house` leaves print rows to
    # the print runs (one merged PDF and a CSV manifest for a print house).
    print_route: Literal["device", "house"] = "device"
    print_duplex: bool = True  # the print house prints both sides: a piece has ceil(pages / 2) sheets
    print_run_at: str = Field("", pattern=r"^(|([01]\d|2[0-3]):[0-5]\d)$")  # HH:MM UTC of the daily run; "" none
    print_run_as: str = "admin"  # the staff user a scheduled run is made by
    tracking_secret: SecretStr = SecretStr("")
    # Letters and dispatch (output/service/): channel choice, contact policy, retries and fallback.
    paper_categories: str = "regulatory"  # comma-separated categories that always go to print
    sensitive_categories: str = ""  # email carries a portal link instead of the PDF
    marketing_categories: str = "marketing"
    # At most N letters of a marketing category per customer per D days: "N/D", with "category=N/D" entries
    # separated by ";" for categories with their own cap.
    marketing_cap: str = Field("4/30", pattern=_CAPS)
    sms_quiet_hours: str = "21-08"  # local hours (sms_timezone) when no SMS is sent
    sms_timezone: str = "UTC"
    fallback: str = "email>print"  # "a>b" for every category, or "category=a>b" entries separated by ";"
    dispatch_max_attempts: int = 5
    dispatch_backoff_seconds: float = 30.0  # doubled after each failed attempt
    dispatch_lease_seconds: float = 300.0
    dispatch_poll_seconds: float = 2.0
    dispatch_check_interval_seconds: float = 5.0  # between polls of a print job
    dispatch_check_give_up_hours: float = 24.0
    run_dispatcher_in_serve: bool = True
    # Letter batches (output/service/batches/): letters per conversion, the runner's lease, where batches run.
    batch_chunk_letters: int = Field(250, ge=1, le=2000)  # a few hundred: conversion cost grows faster than size
    batch_lease_seconds: float = 300.0  # a runner that stops renewing (crashed) loses its batch after this
    batch_poll_seconds: float = 2.0
    batch_max_rows: int = 1_000_000
    run_batches_in_serve: bool = True
    public_base_url: str = "http://localhost:8000"  # where tracking links and the portal are reached
    # Customer portal accounts (repository/portal_identity.py): invitations, tokens, lockout after failed logins.
    portal_activation_hours: float = 72.0  # how long an invitation's activation code stays valid
    portal_token_lifetime_minutes: int = 30
    portal_max_failed_logins: int = 5  # failed logins in a row that lock the account ...
    portal_lockout_minutes: float = 15.0  # ... for this long
    # Records management (records/): fiscal-year cutoff, the disposition sweep, transfers, S3 Object Lock.
    fiscal_year_start: str = Field("04-01", pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")  # MM-DD
    records_sweep_cron: str = "15 2 * * *"  # when serve/worker propose disposition batches (crontab, UTC); "" off
    records_sweep_as: str = "system:records-sweep"  # the actor the scheduled sweep is recorded under
    records_batch_max_items: int = Field(10_000, ge=1)  # documents per proposed disposition batch
    transfer_dir: Path | None = None  # where `transfer` packages go; <data_dir>/transfers when unset
    s3_object_lock: Literal["off", "governance", "compliance"] = "off"  # retention mode for declared records
    # Search (search/): the backend ("auto": FTS5 on SQLite, full text on PostgreSQL), Elasticsearch, extraction.
    search_backend: Literal["auto", "sqlite", "postgres", "elasticsearch"] = "auto"
    elasticsearch_url: str = "http://127.0.0.1:9200"
    elasticsearch_index: str = "postroom-documents"  # the alias; indices are <alias>-<timestamp>
    elasticsearch_api_key: SecretStr = SecretStr("")
    elasticsearch_timeout_seconds: float = 10.0
    search_max_text_chars: int = 1_000_000  # extracted text kept per document
    search_max_extract_bytes: int = 50 * 1024 * 1024  # larger content is indexed by its metadata only
    search_extract_timeout_seconds: float = 20.0
    export_retention_days: float = Field(30.0, ge=0)  # a production package is deleted this long after it was
    # built (its key shredded; the manifest's hashes stay in the matter's chain of custody); 0 keeps them

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'postroom.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        """Where the filesystem blob store keeps content."""
        return self.data_dir / "blobs"

    @property
    def tmp_dir(self) -> Path:
        """Scratch space for uploads being received (same filesystem as the blobs)."""
        return self.data_dir / "tmp"

    @property
    def resolved_transfer_dir(self) -> Path:
        """Where disposition transfers write their packages."""
        return self.transfer_dir or self.data_dir / "transfers"

    @property
    def resolved_token_secret_path(self) -> Path:
        """The file holding the token signing secret, kept with the key ring."""
        return self.token_secret_path or self.keyring_path.with_name("token-secret")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests clear the cache)."""
    return Settings()
