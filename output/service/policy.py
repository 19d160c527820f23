"""Which channels a letter goes to, and the contact policy that may hold a send back or suppress it.

Decisions:
- The order is: an explicit `channel` override; else the customer's preference for the letter's category
  (`none` means "do not send me these"); else paperless customers get the portal plus an email (or, without an
  email address, an SMS) notification; everyone else gets print. A channel the customer's details cannot serve
  (no email address, no mobile, no postal address) is not chosen by default; asked for explicitly it is a 422.
- Categories that require paper (POSTROOM_PAPER_CATEGORIES) always get print as well, whatever was asked for.
- A customer whose address is flagged undeliverable gets no print: the portal instead, with a note in the row.
- Marketing categories (POSTROOM_MARKETING_CATEGORIES) need consent per channel: the newest decision on
  `marketing-<channel>` (`marketing-email`, `marketing-sms`, ...) when the customer gave one, else the newest on
  `marketing`; a channel without a granted consent is `suppressed` with the reason, the others go. Marketing is
  capped per customer and category (POSTROOM_MARKETING_CAP "N/D": N letters of the category in D days, counting
  letters that were not wholly suppressed; "offers=2/30;4/30" gives a category its own cap, like the fallback
  setting); a letter over the cap is recorded with every row `suppressed` and the reason. Transactional and
  regulatory letters are exempt.
- A message that points the customer to the portal inbox instead of carrying the PDF (SMS always, email in the
  sensitive categories, POSTROOM_SENSITIVE_CATEGORIES) brings a `portal` row with it, however its channel was
  chosen (preference, override, default or fallback), so the link leads to the letter.
- SMS is not sent in quiet hours (POSTROOM_SMS_QUIET_HOURS, local to POSTROOM_SMS_TIMEZONE): the row waits with
  next_attempt_at at the end of the quiet period.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from output.channels import channel_names
from output.models import QUEUED, SUPPRESSED, Dispatch, Letter
from output.service._errors import ChannelChoiceError
from repository.config import Settings
from repository.models import Customer
from repository.service import current_consents

MARKETING_CONSENT = "marketing"
PORTAL = "portal"
LINKING_CHANNELS = ("sms", "email")  # channels whose message may link to the portal instead of carrying the PDF


@dataclass(frozen=True)
class Plan:
    """One ledger row to write: a channel, its first state, why, and when it may first be sent."""

    channel: str
    state: str
    reason: str | None
    next_attempt_at: dt.datetime


def categories(value: str) -> set[str]:
    """A comma-separated setting as a set of names."""
    return {part.strip().lower() for part in value.split(",") if part.strip()}


def _for_category(setting: str, category: str) -> str | None:
    """The value a "category=value; value" setting gives a category: its own entry, else the general one."""
    general = None
    for entry in setting.split(";"):
        if not entry.strip():
            continue
        name, _, value = entry.strip().rpartition("=")
        if name.strip().lower() == category:
            return value.strip()
        if not name:
            general = value.strip()
    return general


def fallback_chain(settings: Settings, category: str) -> list[str]:
    """The fallback chain configured for a category (a category entry wins over the general one)."""
    chain = _for_category(settings.fallback, category) or ""
    return [c.strip().lower() for c in chain.split(">") if c.strip()]


def marketing_cap(settings: Settings, category: str) -> tuple[int, int]:
    """(letters, days) the cap allows for a marketing category (a category entry wins over the general one)."""
    count, _, days = (_for_category(settings.marketing_cap, category) or "4/30").partition("/")
    return int(count), int(days or 30)


def sensitive(settings: Settings, category: str) -> bool:
    """True when letters of the category are not attached to emails: the email carries a portal link."""
    return category in categories(settings.sensitive_categories)


def needs_portal(settings: Settings, category: str, channel: str) -> bool:
    """True when the channel's message links to the portal inbox instead of carrying the PDF."""
    return channel == "sms" or (channel == "email" and sensitive(settings, category))


def portal_reason(channel: str) -> str:
    """Why a letter has a portal row it was not otherwise given."""
    return f"the {channel} message links to the portal inbox"


def next_in_chain(settings: Settings, category: str, channel: str) -> str | None:
    """The channel to fall back to when `channel` gave up, or None."""
    chain = fallback_chain(settings, category)
    if channel in chain and chain.index(channel) + 1 < len(chain):
        return chain[chain.index(channel) + 1]
    return None


def reachable(customer: Customer, channel: str) -> str | None:
    """Why the customer cannot be reached on the channel, or None when they can."""
    if channel == "email" and not customer.email:
        return "the customer has no email address"
    if channel == "sms" and not customer.mobile:
        return "the customer has no mobile number"
    if channel == "print" and not (customer.address_lines or customer.postcode):
        return "the customer has no postal address"
    return None


def quiet_until(settings: Settings, now: dt.datetime) -> dt.datetime | None:
    """The end of the SMS quiet period `now` falls in, or None outside it."""
    spec = settings.sms_quiet_hours.strip()
    if not spec:
        return None
    start_text, _, end_text = spec.partition("-")
    start, end = int(start_text) % 24, int(end_text) % 24
    local = now.astimezone(ZoneInfo(settings.sms_timezone))
    hour = local.hour
    quiet = (start <= hour < end) if start < end else (hour >= start or hour < end)
    if not quiet:
        return None
    until = local.replace(hour=end, minute=0, second=0, microsecond=0)
    if until <= local:
        until += dt.timedelta(days=1)
    return until.astimezone(dt.UTC)


def consented(consent: dict[str, bool], channel: str) -> bool:
    """Whether the customer's current consents allow marketing on `channel` (see the module's decisions)."""
    specific = consent.get(f"{MARKETING_CONSENT}-{channel}")
    return specific if specific is not None else bool(consent.get(MARKETING_CONSENT))


def marketing_refused(session: Session, settings: Settings, category: str, customer: Customer, channel: str) -> bool:
    """True when `category` is marketing and the customer has no granted consent for it on `channel`."""
    if category not in categories(settings.marketing_categories):
        return False
    return not consented({c.purpose: c.granted for c in current_consents(session, customer_id=customer.id)}, channel)


def _marketing_blocks(session: Session, settings: Settings, customer: Customer, category: str,
                      channels: list[str], now: dt.datetime, pending: int) -> dict[str, str]:
    """Why each channel may not carry this marketing letter: no consent for it, or the category's cap (every
    channel)."""
    consent = {c.purpose: c.granted for c in current_consents(session, customer_id=customer.id)}
    blocks = {c: f"no granted marketing consent for {c} ({MARKETING_CONSENT}-{c} or {MARKETING_CONSENT})"
              for c in channels if not consented(consent, c)}
    if len(blocks) == len(channels):
        return blocks
    cap, days = marketing_cap(settings, category)
    sent = exists().where(Dispatch.letter_id == Letter.id, Dispatch.state != SUPPRESSED)
    count = session.execute(select(func.count()).select_from(Letter).where(
        Letter.customer_id == customer.id, Letter.category == category,
        Letter.created_at >= now - dt.timedelta(days=days), sent)).scalar_one() + pending
    if count >= cap:
        reason = f"marketing cap reached: {count} {category!r} letters in the last {days} days (limit {cap})"
        return dict.fromkeys(channels, reason)
    return blocks


def _default_channels(customer: Customer, category: str) -> list[str]:
    preferred = (customer.channel_preferences or {}).get(category)
    if preferred and preferred != "none" and reachable(customer, preferred) is None:
        return [preferred]
    if customer.paperless:
        notify = "email" if customer.email else "sms" if customer.mobile else None
        return ["portal"] + ([notify] if notify else [])
    return ["print"]


def check_override(customer: Customer, channel: str) -> None:
    """ChannelChoiceError unless `channel` exists and can reach the customer."""
    if channel not in channel_names():
        raise ChannelChoiceError(f"unknown channel {channel!r}; use one of {', '.join(channel_names())}",
                                 field="channel")
    if (why := reachable(customer, channel)) is not None:
        raise ChannelChoiceError(f"cannot send by {channel}: {why}", field="channel")


def counts_against_cap(settings: Settings, category: str, plans: list[Plan]) -> bool:
    """True when a letter with these rows counts against the marketing cap (marketing, not wholly suppressed)."""
    return category in categories(settings.marketing_categories) and any(p.state != SUPPRESSED for p in plans)


def choose(session: Session, *, settings: Settings, customer: Customer, category: str, override: str | None,
           now: dt.datetime, pending: int = 0) -> list[Plan]:
    """The ledger rows for a new letter of `category` to `customer` (see the module's decisions); `pending`
    letters of the same marketing category to the customer are being archived with this one and count against
    its cap."""
    notes: dict[str, str] = {}
    opted_out = (customer.channel_preferences or {}).get(category) == "none" and override is None
    if override is not None:
        check_override(customer, override)
        channels = [override]
    else:
        channels = _default_channels(customer, category)
    if category in categories(settings.paper_categories) and "print" not in channels:
        channels.append("print")
        notes["print"] = f"category {category!r} requires paper"
        opted_out = False
    if "print" in channels and (customer.address_undeliverable or reachable(customer, "print")):
        why = "postal address flagged undeliverable" if customer.address_undeliverable else reachable(customer,
                                                                                                        "print")
        channels = [c for c in channels if c != "print"]
        if "portal" not in channels:
            channels.append("portal")
        notes["portal"] = f"{why}: portal instead of print"
    linked = next((c for c in channels if needs_portal(settings, category, c)), None)
    if linked is not None and PORTAL not in channels:
        channels.append(PORTAL)
        notes[PORTAL] = portal_reason(linked)
    channels = list(dict.fromkeys(channels))
    blocks: dict[str, str] = {}
    if opted_out:
        blocks = dict.fromkeys(channels, f"the customer asked for no {category!r} letters")
    elif category in categories(settings.marketing_categories):
        blocks = _marketing_blocks(session, settings, customer, category, channels, now, pending)
        if linked is not None and notes.get(PORTAL) == portal_reason(linked):  # the link's row shares its fate
            if linked in blocks:
                blocks[PORTAL] = f"the {linked} message it was added for is suppressed"
            else:
                blocks.pop(PORTAL, None)
    plans = []
    for channel in channels:
        if block := blocks.get(channel):
            plans.append(Plan(channel, SUPPRESSED, block, now))
            continue
        when = (quiet_until(settings, now) if channel == "sms" else None) or now
        reason = notes.get(channel) or (f"SMS quiet hours until {when.isoformat()}" if when > now else None)
        plans.append(Plan(channel, QUEUED, reason, when))
    return plans
