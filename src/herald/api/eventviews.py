"""Templates, event types, events and signups as JSON-ready dicts (see the *schemas modules).

Event data reaches here already scrubbed (``fanout.py``): redacted fields read
``"[redacted]"`` and hashed ones are not in it at all.
"""

from __future__ import annotations

from typing import Any

from ..events import EventRecord, EventType
from ..models import Notification, Status
from ..providers.ssrf import mask_credentials
from ..templates import Template
from .present import iso, masked

#: Herald's statuses in the words of seed 001's ``welcomeEmail.status``. The seed's
#: words are pending, queued, sending, delivered and failed, and it said "delivered"
#: when the SMTP server took the message. Receipts now say when it truly arrived, so
#: "delivered" means that and an accepted message is "sent". A seed word is kept
#: where it says the same (a carrier that could not deliver an SMS: "failed"); a
#: word is added only where none does: "cancelled", "sent", "bounced" (the address
#: refuses mail: unlike "failed", retrying will not help), "complained" (it arrived,
#: but the recipient called it spam) and "suppressed" (never sent to this address).
SEED_STATUS = {
    Status.PENDING: "pending",
    Status.QUEUED: "queued",
    Status.SCHEDULED: "queued",
    Status.RETRYING: "queued",
    Status.PROCESSING: "sending",
    Status.SENT: "sent",
    Status.DELIVERED: "delivered",
    Status.BOUNCED: "bounced",
    Status.UNDELIVERED: "failed",
    Status.COMPLAINED: "complained",
    Status.FAILED: "failed",
    Status.CANCELLED: "cancelled",
    Status.SUPPRESSED: "suppressed",
}


def template(t: Template) -> dict[str, Any]:
    return {
        "name": t.name,
        "channel": t.channel.value,
        "locale": t.locale,
        "version": t.version,
        "subject": t.subject,
        "text": t.body,
        "html": t.html,
        "builtin": t.builtin,
        "createdAt": None if t.builtin else iso(t.created_at),
    }


def event_type(t: EventType) -> dict[str, Any]:
    return t.to_dict()


def event(e: EventRecord) -> dict[str, Any]:
    return {
        "_id": e.id,
        "id": e.id,
        "type": e.type,
        "recipient": masked(e.recipient),
        "data": e.data,
        "notificationIds": list(e.notification_ids),
        "verified": (e.verified_at is not None) if e.verifiable else None,
        "verifiedAt": iso(e.verified_at),
        "createdAt": iso(e.created_at),
    }


def brief(n: Notification) -> dict[str, Any]:
    """A notification without its message: what an event's answer needs."""
    template_used = n.metadata.get("template")
    return {
        "_id": n.id,
        "type": n.channel.value,
        "recipient": mask_credentials(n.recipient),
        "status": n.status.value,
        "priority": n.priority.name,
        "template": template_used if isinstance(template_used, dict) else None,
    }


def seed_record(e: EventRecord, notes: list[Notification]) -> dict[str, Any]:
    """A login, reset, purchase or friend request, flat as the seeds' documents were."""
    return {
        **e.data,
        "_id": e.id,
        "id": e.id,
        "type": e.type,
        "notificationIds": list(e.notification_ids),
        "notifications": [brief(n) for n in notes],
        "createdAt": iso(e.created_at),
    }


def welcome_email(n: Notification | None) -> dict[str, Any]:
    """Seed 001's ``welcomeEmail``: the signup's first notification, as it stands now."""
    if n is None:  # cleaned away by retention, or never made
        return {"status": "unknown", "notificationStatus": None, "notificationId": None,
                "attempts": 0, "messageId": None, "error": None, "sentAt": None}  # fmt: skip
    return {
        "status": SEED_STATUS[n.status],
        "notificationStatus": n.status.value,
        "notificationId": n.id,
        "attempts": n.attempts,
        "messageId": n.provider_message_id,
        "error": n.last_error,
        "sentAt": iso(n.sent_at),
    }


def signup(e: EventRecord, notes: list[Notification]) -> dict[str, Any]:
    """Seed 001's Signups document. No password: not even its hash leaves the store."""
    d = e.data
    return {
        "_id": e.id,
        "id": e.id,
        "userId": _scalar(d.get("userId")),
        "username": _text(d.get("username")),
        "email": _text(d.get("email")) or e.recipient,
        "firstName": _text(d.get("firstName")),
        "lastName": _text(d.get("lastName")),
        "emailVerified": e.verified_at is not None,
        "verifiedAt": iso(e.verified_at),
        "welcomeEmail": welcome_email(notes[0] if notes else None),
        "createdAt": iso(e.created_at),
        "updatedAt": iso(e.verified_at or e.created_at),
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _scalar(value: Any) -> int | str | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return str(value)
