"""The table of customer portal accounts: one login per customer, separate from staff users."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from repository.db import Base
from repository.types import UTCDateTime, new_id, utcnow

# Account states: invited (an activation code is out), active (has a password), disabled (no sign-in at all).
INVITED, ACTIVE, DISABLED = "invited", "active", "disabled"


class PortalAccount(Base):
    """A customer's portal login: email (stored lower-case, so unique regardless of case), argon2 password hash,
    the hash of a pending activation code, and the failed-login counter that locks it."""

    __tablename__ = "portal_accounts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", name="fk_portal_accounts_customer"),
                                             unique=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default=INVITED)
    # SHA-256 of the one-time activation code (the code itself is shown once, never stored).
    activation_code_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    activation_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Tokens carry this number; raising it (on disable and on activation) makes every earlier token invalid.
    token_generation: Mapped[int] = mapped_column(Integer, default=0)
    invited_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", name="fk_portal_accounts_invited_by"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    activated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
