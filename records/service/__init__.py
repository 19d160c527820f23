"""Records management services: keyword-only, session first, never committing."""
