"""Herald's routes for templates, events, event types and the seeds' routes, as ``Call``s."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .calls import (
    Call,
    Pager,
    bare,
    delete,
    enveloped,
    get,
    given,
    inner,
    paged,
    path,
    post,
    post_safe,
    put,
)
from .catalog import (
    Event,
    EventAccepted,
    EventDetail,
    EventType,
    EventTypeDeleted,
    Queued,
    Rendered,
    SeedRecord,
    Signup,
    SignupStatistics,
    SignupStatus,
    Target,
    Template,
    TemplateDeleted,
)
from .models import Channel, Page

# -- templates ---------------------------------------------------------------------


def list_templates() -> Call[list[Template]]:
    """Every variant (channel and locale), latest versions, built-ins included."""
    return get("/api/templates", inner(list[Template], "templates"))


def create_template(
    name: str,
    text: str,
    *,
    channel: Channel | None = None,
    locale: str | None = None,
    subject: str | None = None,
    html: str | None = None,
    idempotency_key: str | None = None,
) -> Call[Template]:
    """A new variant (``Conflict`` if that name, channel and locale exist); EMAIL, ``en`` unless
    given."""
    body = given(name=name, channel=channel, locale=locale, subject=subject, text=text, html=html)
    return post("/api/templates", body, enveloped(Template), idempotency_key)


def get_template(name: str, *, version: int | None = None) -> Call[list[Template]]:
    """The name's variants, latest or at ``version`` (0: the built-in)."""
    where = path("/api/templates/{}", name)
    return get(where, inner(list[Template], "templates"), {"version": version})


def replace_template(
    name: str,
    text: str,
    *,
    channel: Channel | None = None,
    locale: str | None = None,
    subject: str | None = None,
    html: str | None = None,
) -> Call[Template]:
    """Store the variant's next version. Not sent again when its answer is lost: that would
    store one more version."""
    body = given(channel=channel, locale=locale, subject=subject, text=text, html=html)
    return put(path("/api/templates/{}", name), body, enveloped(Template), resend_lost=False)


def delete_template(
    name: str, *, channel: Channel | None = None, locale: str | None = None
) -> Call[TemplateDeleted]:
    """Every stored version of the name, or of one channel or locale."""
    where = path("/api/templates/{}", name)
    return delete(where, enveloped(TemplateDeleted), {"channel": channel, "locale": locale})


def render_template(
    name: str,
    data: Mapping[str, Any] | None = None,
    *,
    channel: Channel | None = None,
    locale: str | None = None,
    version: int | None = None,
) -> Call[Rendered]:
    """A preview with ``data``: nothing is stored or sent."""
    body = given(data=data, channel=channel, locale=locale, version=version)
    return post_safe(path("/api/templates/{}/render", name), body, enveloped(Rendered))


# -- events and event types ----------------------------------------------------------


def create_event(
    type: str,
    data: Mapping[str, Any] | None = None,
    *,
    recipient: str | None = None,
    locale: str | None = None,
    idempotency_key: str | None = None,
) -> Call[EventAccepted]:
    """Trigger an event type: its notifications are rendered and stored with the event."""
    body = given(type=type, recipient=recipient, locale=locale, data=data)
    return post("/api/events", body, enveloped(EventAccepted), idempotency_key)


def get_event(event_id: str) -> Call[EventDetail]:
    """An event with the notifications it produced."""
    return get(path("/api/events/{}", event_id), enveloped(EventDetail))


def list_events(*, type: str | None = None, page: int = 1, limit: int = 20) -> Call[Page[Event]]:
    return get("/api/events", _event_page, {"type": type, "page": page, "limit": limit})


def iter_events(*, type: str | None = None, page_size: int = 100) -> Pager[Event]:
    return Pager(lambda number: list_events(type=type, page=number, limit=page_size))


def list_event_types() -> Call[list[EventType]]:
    """Every type in force; ``source`` says whether built in, from a file or stored."""
    return get("/api/event-types", inner(list[EventType], "eventTypes"))


def get_event_type(name: str) -> Call[EventType]:
    return get(path("/api/event-types/{}", name), enveloped(EventType))


def create_event_type(
    name: str,
    targets: Sequence[Target],
    *,
    description: str | None = None,
    redact: Sequence[str] | None = None,
    hash: Sequence[str] | None = None,
    verify: bool | None = None,
    idempotency_key: str | None = None,
) -> Call[EventType]:
    """Define a type (``Conflict`` if the name is taken, even by a built-in)."""
    body = {"name": name, **_event_type(targets, description, redact, hash, verify)}
    return post("/api/event-types", body, enveloped(EventType), idempotency_key)


def replace_event_type(
    name: str,
    targets: Sequence[Target],
    *,
    description: str | None = None,
    redact: Sequence[str] | None = None,
    hash: Sequence[str] | None = None,
    verify: bool | None = None,
) -> Call[EventType]:
    """Replace a type (a built-in or file one is outranked, not changed)."""
    body = _event_type(targets, description, redact, hash, verify)
    return put(path("/api/event-types/{}", name), body, enveloped(EventType))


def delete_event_type(name: str) -> Call[EventTypeDeleted]:
    return delete(path("/api/event-types/{}", name), enveloped(EventTypeDeleted))


def _event_type(
    targets: Sequence[Target],
    description: str | None,
    redact: Sequence[str] | None,
    hash: Sequence[str] | None,
    verify: bool | None,
) -> dict[str, Any]:
    return given(
        description=description,
        targets=list(targets),
        redact=None if redact is None else list(redact),
        hash=None if hash is None else list(hash),
        verify=verify,
    )


_event_page = paged(Event, "events")

# -- the seeds' routes: thin aliases over events -------------------------------------


def notify(
    type: str,
    to: str,
    message: str,
    *,
    subject: str | None = None,
    idempotency_key: str | None = None,
) -> Call[Queued]:
    """Seed 003's send: ``type`` is ``email``, ``sms`` or ``push``."""
    body = given(type=type, to=to, subject=subject, message=message)
    return post("/api/notify", body, bare(Queued), idempotency_key)


def create_signup(
    username: str,
    email: str,
    user_id: int | str,
    *,
    first_name: str | None = None,
    last_name: str | None = None,
    password: str | None = None,
    locale: str | None = None,
    idempotency_key: str | None = None,
) -> Call[Signup]:
    """A signup: a welcome email with a one-time verification link goes out."""
    body = given(username=username, email=email, userId=user_id, firstName=first_name,
                 lastName=last_name, password=password, locale=locale)  # fmt: skip
    return post("/api/signups", body, enveloped(Signup), idempotency_key)


def list_signups(*, page: int = 1, limit: int = 20) -> Call[Page[Signup]]:
    return get("/api/signups", _signup_page, {"page": page, "limit": limit})


def iter_signups(*, page_size: int = 100) -> Pager[Signup]:
    return Pager(lambda number: list_signups(page=number, limit=page_size))


def signup_statistics() -> Call[SignupStatistics]:
    return get("/api/signups/statistics", enveloped(SignupStatistics))


def failed_welcome_emails(*, page: int = 1, limit: int = 20) -> Call[Page[Signup]]:
    """Signups whose welcome email is in the DLQ."""
    params = {"page": page, "limit": limit}
    return get("/api/signups/welcome-emails/failed", _signup_page, params)


def welcome_email_status(signup_id: str) -> Call[SignupStatus]:
    """The welcome email's status and delivery history (``signup_id`` may be the userId)."""
    where = path("/api/signups/{}/welcome-email-status", signup_id)
    return get(where, enveloped(SignupStatus))


def verify_signup(token: str, *, idempotency_key: str | None = None) -> Call[Signup]:
    """Verify with the welcome email's token: once (``Conflict`` again, ``Gone`` after 7 days)."""
    return post(path("/api/signups/verify/{}", token), None, enveloped(Signup), idempotency_key)


def record_login(
    username: str,
    email: str,
    user_id: int | str,
    ip_address: str,
    user_agent: str,
    *,
    locale: str | None = None,
    idempotency_key: str | None = None,
) -> Call[SeedRecord]:
    """A login: a security alert goes to the user (event type ``login``)."""
    body = given(username=username, email=email, userId=user_id, ipAddress=ip_address,
                 userAgent=user_agent, locale=locale)  # fmt: skip
    return post("/api/logins", body, enveloped(SeedRecord), idempotency_key)


def reset_password(
    username: str,
    email: str,
    user_id: int | str,
    reset_token: str,
    *,
    reset_url: str | None = None,
    locale: str | None = None,
    idempotency_key: str | None = None,
) -> Call[SeedRecord]:
    """Send a password reset code or link (event type ``reset-password``)."""
    body = given(username=username, email=email, userId=user_id, resetToken=reset_token,
                 resetUrl=reset_url, locale=locale)  # fmt: skip
    return post("/api/reset-passwords", body, enveloped(SeedRecord), idempotency_key)


def record_purchase(
    user_id: int | str,
    email: str,
    order_id: int | str,
    items: Sequence[Mapping[str, Any]],
    total: float,
    *,
    currency: str | None = None,
    username: str | None = None,
    locale: str | None = None,
    idempotency_key: str | None = None,
) -> Call[SeedRecord]:
    """A purchase: the receipt goes to the buyer. ``items``: ``{name, quantity, price}``."""
    body = given(userId=user_id, email=email, orderId=order_id, items=list(items), total=total,
                 currency=currency, username=username, locale=locale)  # fmt: skip
    return post("/api/purchases", body, enveloped(SeedRecord), idempotency_key)


def send_friend_request(
    from_user_id: int | str,
    from_username: str,
    to_user_id: int | str,
    to_email: str,
    *,
    locale: str | None = None,
    idempotency_key: str | None = None,
) -> Call[SeedRecord]:
    """A friend request: the person asked is told (event type ``friend-request``)."""
    body = given(fromUserId=from_user_id, fromUsername=from_username, toUserId=to_user_id,
                 toEmail=to_email, locale=locale)  # fmt: skip
    return post("/api/friend-requests", body, enveloped(SeedRecord), idempotency_key)


_signup_page = paged(Signup, "signups")
