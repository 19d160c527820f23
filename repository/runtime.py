"""Process-wide handles built from settings: the blob store and the key ring."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from repository.config import Settings, get_settings
from repository.content import ArchiveLimits
from repository.crypto import KeyRing
from repository.storage import BlobStore, make_blob_store


@dataclass
class Runtime:
    """The configured blob store and key ring, with the settings they came from."""

    settings: Settings
    store: BlobStore
    keyring: KeyRing

    @property
    def archive_limits(self) -> ArchiveLimits:
        """Bounds for ZIP-based uploads."""
        s = self.settings
        return ArchiveLimits(s.max_zip_uncompressed_bytes, s.max_zip_entries, s.max_zip_ratio)


@lru_cache
def get_runtime() -> Runtime:
    """The runtime for the current settings (cached; `reset()` after changing settings)."""
    settings = get_settings()
    return Runtime(settings, make_blob_store(settings), KeyRing(settings.keyring_path))


def reset() -> None:
    """Forget cached settings, engines and runtime (tests and CLI commands that change configuration)."""
    from repository.db import clear_caches

    get_settings.cache_clear()
    get_runtime.cache_clear()
    clear_caches()
