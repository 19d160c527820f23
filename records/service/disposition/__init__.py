"""Disposition: the sweep proposes batches of documents whose retention ended, records managers approve them
(excluding some, with reasons) or reject them, and an executor destroys, transfers or reviews each document,
then files a certificate of destruction."""

from records.service.disposition.approval import (
    ItemRow,
    ItemsPage,
    approve,
    exclude_items,
    get_batch,
    list_batches,
    list_items,
    reject,
)
from records.service.disposition.execute import claim, execute_approved, run_batch
from records.service.disposition.sweep import SweepReport, propose

__all__ = ["ItemRow", "ItemsPage", "SweepReport", "approve", "claim", "exclude_items", "execute_approved", "get_batch",
           "list_batches", "list_items", "propose", "reject", "run_batch"]
