"""Letters and dispatch: the functions other code calls (keyword-only, session first, never committing)."""

from output.service._errors import ChannelChoiceError, LetterArchivedError, LetterNotFoundError
from output.service.archived import archived_version, letter_pdf
from output.service.dispatch import dispatch_due, fall_back, record_bounce, record_dsn, run_dispatcher
from output.service.letters import (
    ComposedLetter,
    PreparedLetter,
    archive_letter,
    compose_letter,
    create_letter,
    get_letter,
    ledger,
    prepare_letter,
)
from output.service.tracking import (
    click_url,
    open_pixel_url,
    portal_url,
    record_tracking,
    verify_click,
    verify_open,
)

__all__ = [
    "ChannelChoiceError", "ComposedLetter", "LetterArchivedError", "LetterNotFoundError", "PreparedLetter",
    "archive_letter", "archived_version", "click_url", "compose_letter", "create_letter", "dispatch_due", "fall_back",
    "get_letter", "ledger", "letter_pdf", "open_pixel_url", "portal_url", "prepare_letter", "record_bounce",
    "record_dsn", "record_tracking", "run_dispatcher", "verify_click", "verify_open",
]
