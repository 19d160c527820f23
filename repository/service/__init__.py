"""The repository's service functions: keyword-only, session first, never committing."""

from repository.service.checkout import cancel_checkout, checkin, checkout, prepare_upload
from repository.service.customers import create_customer, get_customer, search_customers
from repository.service.document_types import create_type, get_type, list_types
from repository.service.documents import (
    Page,
    create_document,
    get_document,
    get_version,
    list_documents,
    list_versions,
    read_version,
    restore_document,
    trash_document,
    update_document,
)

__all__ = [
    "Page",
    "cancel_checkout",
    "checkin",
    "checkout",
    "create_customer",
    "create_document",
    "create_type",
    "get_customer",
    "get_document",
    "get_type",
    "get_version",
    "list_documents",
    "list_types",
    "list_versions",
    "prepare_upload",
    "read_version",
    "restore_document",
    "search_customers",
    "trash_document",
    "update_document",
]
