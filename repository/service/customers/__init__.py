"""The customer registry: profiles, consents, the undeliverable flag and bulk import."""

from repository.service.customers._contact import (
    clear_undeliverable,
    consent_history,
    current_consents,
    current_consents_of,
    mark_undeliverable,
    record_consent,
)
from repository.service.customers._import import (
    KEEP_REJECTIONS,
    ImportReport,
    MalformedRow,
    import_customers,
    record_import,
)
from repository.service.customers._profile import (
    CREATE_ROLES,
    WRITE_ROLES,
    CustomerPage,
    create_customer,
    get_customer,
    search_customers,
    search_customers_page,
    update_customer,
)

__all__ = [
    "CREATE_ROLES",
    "KEEP_REJECTIONS",
    "WRITE_ROLES",
    "CustomerPage",
    "ImportReport",
    "MalformedRow",
    "clear_undeliverable",
    "consent_history",
    "create_customer",
    "current_consents",
    "current_consents_of",
    "get_customer",
    "import_customers",
    "mark_undeliverable",
    "record_consent",
    "record_import",
    "search_customers",
    "search_customers_page",
    "update_customer",
]
