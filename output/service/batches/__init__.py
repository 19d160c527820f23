"""Letter batches: a template and a file of rows in, one archived letter per row out, resumable after a crash.

`intake` stores a batch and its rows; `runner` makes the letters chunk by chunk under a lease.
"""

from output.service._errors import BatchNotFoundError, BatchStateError
from output.service.batches.intake import (
    BatchFile,
    create_batch,
    failed_rows,
    get_batch,
    list_batches,
    row_from_json,
)
from output.service.batches.lease import Progress, cancel_batch, claim_next, new_owner, progress_of
from output.service.batches.runner import BatchRunner, run_batches

__all__ = [
    "BatchFile", "BatchNotFoundError", "BatchRunner", "BatchStateError", "Progress", "cancel_batch", "claim_next",
    "create_batch", "failed_rows", "get_batch", "list_batches", "new_owner", "progress_of",
    "row_from_json", "run_batches",
]
