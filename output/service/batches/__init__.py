"""Letter batches: a template and a file of rows in, one archived letter per row out, resumable after a crash.

`intake` stores a batch and its rows; `runner` makes the letters chunk by chunk under a lease.
"""

from output.service.batches.intake import (
    BatchFile,
    create_batch,
    default_schema,
    failed_rows,
    get_batch,
    row_from_json,
)
from output.service.batches.runner import (
    BatchRunner,
    Progress,
    cancel_batch,
    claim_next,
    new_owner,
    run_batches,
)

__all__ = [
    "BatchFile", "BatchRunner", "Progress", "cancel_batch", "claim_next", "create_batch", "default_schema",
    "failed_rows", "get_batch", "new_owner", "row_from_json", "run_batches",
]
