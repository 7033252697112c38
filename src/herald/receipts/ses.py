"""Amazon SES notifications (delivery, bounce, complaint), delivered through SNS.

SES publishes to an SNS topic; SNS posts to Herald. The envelope is checked
by ``sns.open_envelope`` (signature, certificate host, topic, age, first
sight); its ``Message`` is SES's JSON record. Both of SES's shapes are read:
identity notifications (``notificationType``) and configuration-set event
publishing (``eventType``). A bounce or complaint names several recipients and
yields one event for each; ``Permanent`` bounces are ``BOUNCED``,
``Transient`` and ``Undetermined`` ones ``SOFT_BOUNCE`` (never suppress on a
guess).

``message_id`` is the Message-ID header the message was sent with
(``mail.commonHeaders.messageId``), angle-bracketed as Herald's SMTP provider
keeps it: SES replaces the header on the wire with one of its own, but reports
the original here. A record without it falls back to SES's own
``mail.messageId``, as SES's API and SMTP replies name it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from .base import (
    Inbound,
    ReceiptEvent,
    ReceiptKind,
    ReceiptRefused,
    Seen,
    bracketed,
    detail,
    iso_epoch,
    load_json,
    message_id,
    obj,
    optional_text,
    recipient,
    text,
)
from .sns import (
    AMAZON_HOSTS,
    WINDOW,
    CertificateCache,
    Fetch,
    SubscriptionConfirmation,
    confirmation,
    open_envelope,
)

PROVIDER = "ses"
#: SES takes at most 50 recipients per message.
MAX_RECIPIENTS = 100

#: record type → (kind, the section holding details, its list of recipients)
_SECTIONS: dict[str, tuple[ReceiptKind, str, str]] = {
    "Delivery": (ReceiptKind.DELIVERED, "delivery", "recipients"),
    "Bounce": (ReceiptKind.BOUNCED, "bounce", "bouncedRecipients"),
    "Complaint": (ReceiptKind.COMPLAINED, "complaint", "complainedRecipients"),
    "DeliveryDelay": (ReceiptKind.DEFERRED, "deliveryDelay", "delayedRecipients"),
}


async def verify(
    request: Inbound,
    *,
    topics: Collection[str],
    fetch: Fetch,
    certificates: CertificateCache,
    now: float,
    seen: Seen,
    hosts: Collection[str] = AMAZON_HOSTS,
    window: float = WINDOW,
) -> list[ReceiptEvent] | SubscriptionConfirmation:
    """SES's events, a subscription to confirm, or ``ReceiptRefused`` saying why not."""
    envelope = await open_envelope(
        request,
        topics=topics,
        fetch=fetch,
        certificates=certificates,
        now=now,
        seen=seen,
        hosts=hosts,
        window=window,
    )
    if envelope.type != "Notification":
        return confirmation(envelope) or []
    record = obj(load_json(envelope.message.encode("utf-8")), "the SES record")
    raw_type = optional_text(record, "eventType", "the SES record", limit=64) or text(
        record, "notificationType", "the SES record", limit=64
    )
    mail = obj(record.get("mail"), "the SES record's mail")
    stored_id = _message_id(mail)
    section = _SECTIONS.get(raw_type)
    if section is None:  # Send, Reject, Open, Click, Rendering Failure, Subscription
        at = iso_epoch(mail.get("timestamp"), "the SES record: mail.timestamp")
        return [
            ReceiptEvent(
                PROVIDER, stored_id, ReceiptKind.OTHER, raw_type, at, event_id=envelope.message_id
            )
        ]
    kind, name, list_name = section
    facts = obj(record.get(name), f"the SES record's {name}")
    at = iso_epoch(facts.get("timestamp"), f"the SES record: {name}.timestamp")
    listed = facts.get(list_name)
    if not isinstance(listed, list) or len(listed) > MAX_RECIPIENTS:
        raise ReceiptRefused(f"the SES record: {name}.{list_name} is not a list of at most 100")
    event_id = optional_text(facts, "feedbackId", name, limit=256) or envelope.message_id
    if raw_type == "Bounce":
        bounce_type = text(facts, "bounceType", name, limit=64)
        if bounce_type != "Permanent":
            kind = ReceiptKind.SOFT_BOUNCE
        summary: str | None = f"{bounce_type}/{optional_text(facts, 'bounceSubType', name)}"
    elif raw_type == "Complaint":
        summary = optional_text(facts, "complaintFeedbackType", name, limit=64)
    elif raw_type == "DeliveryDelay":
        summary = optional_text(facts, "delayType", name, limit=64)
    else:
        summary = optional_text(facts, "smtpResponse", name)
    events = []
    for index, entry in enumerate(listed):
        where = f"{name}.{list_name}[{index}]"
        if isinstance(entry, str):  # Delivery lists bare addresses
            address: str | None = entry
            said: str | None = None
        else:
            item = obj(entry, where)
            address = optional_text(item, "emailAddress", where)
            said = detail(optional_text(item, "status", where), _diagnostic(item, where))
        events.append(
            ReceiptEvent(
                provider=PROVIDER,
                message_id=stored_id,
                kind=kind,
                raw_type=raw_type,
                at=at,
                recipient=recipient(address, where),
                detail=detail(summary, said),
                event_id=event_id,
            )
        )
    return events


def _message_id(mail: Mapping[str, object]) -> str:
    headers = mail.get("commonHeaders")
    if isinstance(headers, dict):
        header = optional_text(headers, "messageId", "mail.commonHeaders")
        if header and header.strip():
            return bracketed(header, "mail.commonHeaders")
    return message_id(text(mail, "messageId", "the SES record's mail"), "mail")


def _diagnostic(item: Mapping[str, object], where: str) -> str | None:
    return optional_text(item, "diagnosticCode", where) or optional_text(item, "action", where)
