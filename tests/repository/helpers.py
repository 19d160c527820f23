"""Small helpers for repository tests."""

from __future__ import annotations

from repository.config import get_settings
from repository.content import StagedContent, stage_stream


def staged(data: bytes, filename: str = "file.txt") -> StagedContent:
    """Stage bytes as an upload would be."""
    settings = get_settings()
    return stage_stream(iter([data]), max_bytes=settings.max_upload_bytes, tmp_dir=settings.tmp_dir,
                        filename=filename)
