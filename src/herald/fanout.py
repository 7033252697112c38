"""Fan-out: one event becomes its rendered notifications, with its secrets scrubbed.

Everything that can be wrong with an event is found here, before anything is
stored, so the client hears it as a 4xx: an unknown template, a variable the
data lacks, a recipient that is not an address, a template over its budget.
What comes out is stored in one transaction (``Store.create_event``); the
worker never renders.

Two steps: ``plan_event`` (hashing, recipients, templates: CPU-bound, so the
API runs it in a thread, and renders the built-in templates there too, with
``Plan.render_builtins``) and rendering the others in the render processes
(``render_pool.py``): ``render_plan`` waits for them without holding a thread.
``fan_out`` does it all in the caller's thread.

Secrets (declared in ``events.py``) leave here in three forms only: a salted
scrypt hash, the SHA-256 of a verification token, and the rendered message,
where they must be for delivery. A notification whose message holds one is
marked ``metadata.sensitive``; the API shows its message as redacted
(``api/present.py``) while the worker still sends it whole.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from markupsafe import escape

from .api.validation import RECIPIENT
from .events import (
    ALWAYS_HASH,
    ALWAYS_REDACT,
    MAX_HASHED_FIELDS,
    MAX_SECRET_LENGTH,
    EventType,
    NewEvent,
    RecipientInvalid,
    SecretsInvalid,
    Target,
)
from .models import NewNotification, new_id
from .sandbox import Budget
from .templates import RENDERER, Rendered, RenderFailed, Template, TemplateNotFound, choose

REDACTED = "[redacted]"
VERIFY_PATH = "/api/signups/verify/"
_SCRYPT = (2**14, 8, 1)  # n, r, p: about 16 MiB and 50 ms per hash


@dataclass(frozen=True, slots=True)
class Prepared:
    event: NewEvent
    items: list[NewNotification]


@dataclass(slots=True)
class Scrubbed:
    """``stored``: safe to keep. ``context``: what templates may see (no hashed fields)."""

    stored: dict[str, Any]
    context: dict[str, Any]
    hashed: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Render:
    """One target's message, to be rendered: its template, recipient and data."""

    target: Target
    template: Template
    recipient: str
    context: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Plan:
    """An event with every target resolved, waiting only for its messages to render.

    ``rendered`` holds each target's message once it is rendered, in order.
    """

    event: NewEvent
    renders: list[Render]
    secrets: list[str]
    rendered: list[Rendered | None] = field(default_factory=list)
    #: The HTTP request that sent the event, which its notifications keep.
    request_id: str | None = None

    def render_builtins(self, budget: Budget | None = None) -> Plan:
        """Render the targets whose template is built in, in this thread (``Renderer``)."""
        for position, render in enumerate(self.renders):
            if render.template.builtin and self.rendered[position] is None:
                self.rendered[position] = RENDERER.render(
                    render.template, render.context, budget, self.event.tenant_id
                )
        return self

    def finish(self) -> Prepared:
        """The notifications, once every target's message is rendered."""
        items: list[NewNotification] = []
        for render, message in zip(self.renders, self.rendered, strict=True):
            if message is None:
                raise RuntimeError("finish() before every message was rendered")
            template = render.template
            if message.subject and _holds_secret(message.subject, self.secrets):
                raise RenderFailed(
                    f"template {template.name!r} puts a secret in the subject, which is shown "
                    "in inbox lists; move it to the body",
                    [("subject", "must not hold a secret")],
                )
            metadata: dict[str, Any] = {
                "event": {"id": self.event.id, "type": self.event.type},
                "template": {"name": template.name, "version": template.version,
                             "locale": template.locale},
            }  # fmt: skip
            if _holds_secret(message.body, self.secrets) or (
                message.html and _holds_secret(message.html, self.secrets)
            ):
                metadata["sensitive"] = True
            items.append(
                NewNotification(
                    channel=render.target.channel, recipient=render.recipient, body=message.body,
                    subject=message.subject, html=message.html, priority=render.target.priority,
                    metadata=metadata, tenant_id=self.event.tenant_id,
                    request_id=self.request_id,
                )
            )  # fmt: skip
        return Prepared(self.event, items)


def fan_out(
    event_type: EventType,
    *,
    tenant_id: str,
    data: Mapping[str, Any],
    recipient: str | None,
    locale: str,
    templates: Mapping[str, Sequence[Template]],
    links_base: str,
    now: float | None = None,
    budget: Budget | None = None,
) -> Prepared:
    """Render every target of ``event_type`` for this event, or raise the first problem.

    Both steps in the caller's thread; see ``plan_event`` for the arguments.
    """
    plan = plan_event(
        event_type, tenant_id=tenant_id, data=data, recipient=recipient, locale=locale,
        templates=templates, links_base=links_base, now=now,
    )  # fmt: skip
    tenant = plan.event.tenant_id
    for position, render in enumerate(plan.renders):
        plan.rendered[position] = RENDERER.render(render.template, render.context, budget, tenant)
    return plan.finish()


async def render_plan(plan: Plan, budget: Budget | None = None) -> Prepared:
    """Render what ``plan`` still lacks side by side; the first target's problem is raised."""
    tenant = plan.event.tenant_id
    waiting = [(n, r) for n, r in enumerate(plan.renders) if plan.rendered[n] is None]
    if not waiting:  # every template was built in
        return plan.finish()
    results = await asyncio.gather(
        *(RENDERER.render_async(r.template, r.context, budget, tenant) for _, r in waiting),
        return_exceptions=True,
    )
    for (position, _), result in zip(waiting, results, strict=True):
        if isinstance(result, BaseException):
            raise result
        plan.rendered[position] = result
    return plan.finish()


def plan_event(
    event_type: EventType,
    *,
    tenant_id: str,
    data: Mapping[str, Any],
    recipient: str | None,
    locale: str,
    templates: Mapping[str, Sequence[Template]],
    links_base: str,
    now: float | None = None,
    request_id: str | None = None,
) -> Plan:
    """Scrub and hash the event's data and resolve every target, or raise the first problem.

    ``templates`` holds the variants of each target's template name;
    ``links_base`` is the URL that verification links start with; ``request_id``
    is the HTTP request's, kept on the notifications. CPU-bound (scrypt): the
    API runs it in a thread.
    """
    now = time.time() if now is None else now
    event_id = new_id(now)
    scrubbed = scrub(
        data,
        hash_fields={*ALWAYS_HASH, *event_type.hash},
        redact_fields={*ALWAYS_REDACT, *event_type.redact},
    )
    context = scrubbed.context
    verify_hash = None
    if event_type.verify:
        token = secrets.token_urlsafe(32)
        verify_hash = token_hash(token)
        context["verificationToken"] = token
        context["verifyUrl"] = f"{links_base.rstrip('/')}{VERIFY_PATH}{token}"
        scrubbed.secrets.append(token)
    context.update(
        eventId=event_id,
        eventType=event_type.name,
        occurredAt=datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    )
    renders: list[Render] = []
    for position, target in enumerate(event_type.targets):
        to = _recipient(target, position, recipient, data)
        template = choose(templates.get(target.template, ()), target.channel, locale)
        if template is None:
            raise TemplateNotFound(
                f"event type {event_type.name!r} needs template {target.template!r} "
                f"for {target.channel.value}, and there is none",
                [(f"targets.{position}.template", "no such template for this channel")],
            )
        renders.append(Render(target, template, to, {**context, "recipient": to}))
    event = NewEvent(
        id=event_id,
        tenant_id=tenant_id,
        type=event_type.name,
        recipient=renders[0].recipient if renders else recipient,
        data=scrubbed.stored,
        hashed=scrubbed.hashed,
        verify_hash=verify_hash,
        created_at=now,
    )
    return Plan(event, renders, scrubbed.secrets, [None] * len(renders), request_id)


def scrub(data: Mapping[str, Any], *, hash_fields: set[str], redact_fields: set[str]) -> Scrubbed:
    """Split ``data`` into what may be stored and what templates may see.

    Fields are matched by name at any depth. A hashed field is in neither; a
    redacted one is in the context only. Both values are listed as secrets.
    """
    out = Scrubbed({}, {})

    def walk(value: Any, path: str) -> tuple[Any, Any]:
        if isinstance(value, Mapping):
            stored: dict[str, Any] = {}
            context: dict[str, Any] = {}
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                if key in hash_fields:
                    if item is not None:
                        secret = str(item)
                        _hashable(where, secret, len(out.hashed))
                        out.hashed[where] = hash_secret(secret)
                        out.secrets.append(secret)
                elif key in redact_fields:
                    if isinstance(item, str | int | float) and str(item):
                        out.secrets.append(str(item))
                    stored[key] = None if item is None else REDACTED
                    context[key] = item
                else:
                    stored[key], context[key] = walk(item, where)
            return stored, context
        if isinstance(value, list):
            pairs = [walk(item, f"{path}.{i}") for i, item in enumerate(value)]
            return [p[0] for p in pairs], [p[1] for p in pairs]
        return value, value

    out.stored, out.context = walk(data, "")
    return out


def _hashable(where: str, secret: str, already: int) -> None:
    """Refuse a secret before paying for its hash (``events.MAX_HASHED_FIELDS``)."""
    field = f"data.{where}"
    if already >= MAX_HASHED_FIELDS:
        raise SecretsInvalid(
            f"An event may carry at most {MAX_HASHED_FIELDS} fields that are hashed "
            "(password and the event type's hash fields)",
            [(field, f"is one hashed field too many (at most {MAX_HASHED_FIELDS})")],
        )
    if len(secret) > MAX_SECRET_LENGTH:
        raise SecretsInvalid(
            f"A hashed field may hold at most {MAX_SECRET_LENGTH} characters",
            [(field, f"is longer than {MAX_SECRET_LENGTH} characters")],
        )


def hash_secret(value: str) -> str:
    """``scrypt$n$r$p$salt$hash`` (base64): salted, slow, checkable by ``secret_matches``."""
    salt = os.urandom(16)
    n, r, p = _SCRYPT
    digest = hashlib.scrypt(value.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def secret_matches(value: str, stored: str) -> bool:
    scheme, n, r, p, salt, digest = stored.split("$")
    if scheme != "scrypt":
        return False
    again = hashlib.scrypt(
        value.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
    )
    return hmac.compare_digest(again, base64.b64decode(digest))


def token_hash(token: str) -> str:
    """How a one-time token is kept: a random 256-bit token needs no salt or stretching."""
    return hashlib.sha256(token.encode()).hexdigest()


def _holds_secret(text: str, values: Sequence[str]) -> bool:
    return any(v and (v in text or str(escape(v)) in text) for v in values)


def _recipient(
    target: Target, position: int, recipient: str | None, data: Mapping[str, Any]
) -> str:
    if target.recipient_field is None:
        value: Any = recipient if recipient is not None else data.get("email")
        where = "recipient"
    else:
        value = _lookup(data, target.recipient_field)
        where = f"data.{target.recipient_field}"
    if not isinstance(value, str) or not value.strip():
        hint = " (or data.email)" if where == "recipient" else ""
        raise RecipientInvalid(
            f"{where}{hint} is required: target {position} sends {target.channel.value} to it",
            [(where, "is required")],
        )
    if any(ch in value for ch in "\r\n\0"):
        raise RecipientInvalid(f"{where} must not contain line breaks or NUL",
                               [(where, "must not contain line breaks or NUL")])  # fmt: skip
    try:
        return RECIPIENT[target.channel](value.strip())
    except ValueError as exc:
        raise RecipientInvalid(f"{where} {exc}", [(where, str(exc))]) from None


def _lookup(data: Mapping[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value
