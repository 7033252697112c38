"""Seed 003's ``POST /api/notify``: ``{type, to, subject, message}`` → ``{status, messageId}``."""

from __future__ import annotations

import re
from typing import Literal

import phonenumbers
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .. import metrics
from ..access import Scope
from ..models import Channel, NewNotification
from . import accesslog, validation
from .authz import requires, tenant_of
from .json import JSONBody
from .schemas import ErrorBody

router = APIRouter(prefix="/api", tags=["notify"])
_E164 = re.compile(r"^\+[1-9]\d{7,14}$")


class NotifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["email", "sms", "push", "EMAIL", "SMS", "PUSH"]
    to: str = Field(min_length=1, max_length=4096)
    subject: str | None = Field(None, max_length=998)
    message: str = Field(min_length=1, max_length=5000)

    @field_validator("subject", "to")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and any(ch in value for ch in "\r\n\0"):
            raise ValueError("must not contain line breaks (CR/LF) or NUL")
        return value

    @model_validator(mode="after")
    def _recipient(self) -> NotifyIn:
        channel = Channel(self.type.upper())
        if channel is Channel.SMS:
            self.to = _phone(self.to)
        else:
            self.to = validation.RECIPIENT[channel](self.to.strip())
        if channel is Channel.EMAIL and not (self.subject and self.subject.strip()):
            self.subject = self.message.split("\n", 1)[0][:78]
        return self


def _phone(value: str) -> str:
    """Seed 003 takes any E.164-shaped number (its example is +1234567890)."""
    compact = re.sub(r"[\s().-]", "", value)
    try:
        return validation.phone(value)
    except ValueError:
        if _E164.match(compact) and phonenumbers.parse(compact, None).country_code:
            return compact
        raise


class NotifyOut(BaseModel):
    status: Literal["queued", "scheduled"]
    messageId: str


@router.post(
    "/notify",
    dependencies=[requires(Scope.SEND)],
    status_code=202,
    response_model=NotifyOut,
    responses={422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    summary="Seed 003's send: queue one email, SMS or push",
)
async def notify(body: NotifyIn, request: Request) -> JSONBody:
    item = NewNotification(
        channel=Channel(body.type.upper()),
        recipient=body.to,
        body=body.message,
        subject=body.subject,
        tenant_id=tenant_of(request),
        request_id=accesslog.of(request),
    )
    request.app.state.engine.admission.check((item.priority,))
    [stored] = await request.app.state.engine.store.create([item])
    metrics.created(item.channel)
    return JSONBody({"status": "queued", "messageId": stored.id}, status_code=202)
