"""Composition: DOCX to PDF through a supervised pool of warm LibreOffice (unoserver) processes, PDF/A-2b with
Postroom's XMP metadata, PDF/A validation with veraPDF, and splitting a batch PDF back into one PDF per letter.

Pure: no database, no web framework. Each module states its decisions: `pool` (queue bound, restarts, retries,
bytes vs paths), `_worker` (one unoserver process), `metadata`, `validate`, `split`.
"""

from output.compose.metadata import POSTROOM_NS, read_metadata, set_metadata
from output.compose.pool import ConverterPool, get_pool, reset_pool
from output.compose.split import LetterMetadata, SplitLetter, split_letters
from output.compose.validate import PdfaReport, find_verapdf, validate_pdfa
from output.errors import (
    ComposeError,
    ConversionError,
    PoolBusyError,
    ServiceUnavailableError,
    UnconvertibleDocumentError,
)

__all__ = [
    "POSTROOM_NS", "ComposeError", "ConversionError", "ConverterPool", "LetterMetadata", "PdfaReport", "PoolBusyError",
    "ServiceUnavailableError", "SplitLetter", "UnconvertibleDocumentError", "find_verapdf", "get_pool",
    "read_metadata", "reset_pool", "set_metadata", "split_letters", "validate_pdfa",
]
