"""``/api/keys``: a tenant's API keys. Created keys are shown once and never again.

``manage`` works within the caller's own tenant; ``admin`` may name any
tenant. Nobody grants a scope they lack (``access.grantable``). Rotation is
create-new-then-revoke: a tenant may hold any number of keys, and a revoked
key stops working in every process within ``HERALD_KEY_CACHE_SECONDS``.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException

from ..access import ApiKey, Scope, check_tenant, grantable, parse_rate
from . import present
from .authz import actor_of, principal, record, requires
from .json import JSONBody
from .schemas import Envelope, ErrorBody

router = APIRouter(prefix="/api/keys", tags=["keys"])
ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody, "description": "The credential cannot grant or see this."},
    422: {"model": ErrorBody},
    503: {"model": ErrorBody},
}
MAX_DAYS = 3650


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    scopes: list[Scope] = Field(min_length=1, max_length=4)
    expiresInDays: float | None = Field(None, gt=0, le=MAX_DAYS, allow_inf_nan=False)
    rateLimit: str | None = Field(None, max_length=32, description="e.g. 100/s, 6000/min")
    tenant: str | None = Field(None, description="Another tenant's key (admin only).")

    @field_validator("rateLimit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        return None if value is None else str(parse_rate(value))

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, value: str | None) -> str | None:
        return None if value is None else check_tenant(value)


class KeyOut(BaseModel):
    id: str
    prefix: str
    name: str
    tenant: str
    scopes: list[Scope]
    rateLimit: str | None
    createdAt: str
    expiresAt: str | None
    lastUsedAt: str | None
    revokedAt: str | None


class NewKeyOut(KeyOut):
    key: str = Field(description="The secret: shown in this answer only, never again.")


class KeyList(BaseModel):
    keys: list[KeyOut]


def shown(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id, "prefix": key.prefix, "name": key.name, "tenant": key.tenant_id,
        "scopes": [s.value for s in Scope if s in key.scopes], "rateLimit": key.rate_limit,
        "createdAt": present.iso(key.created_at), "expiresAt": present.iso(key.expires_at),
        "lastUsedAt": present.iso(key.last_used_at), "revokedAt": present.iso(key.revoked_at),
    }  # fmt: skip


def _tenant(request: Request, asked: str | None) -> str | None:
    """The tenant a call concerns: the caller's own, or (admin only) one it names."""
    caller = principal(request)
    if asked is None or asked == caller.tenant_id:
        return caller.tenant_id
    if not caller.allows(Scope.ADMIN):
        raise HTTPException(403, "Only a credential with the 'admin' scope can name a tenant.")
    return asked


@router.post(
    "",
    dependencies=[requires(Scope.MANAGE)],
    status_code=201,
    response_model=Envelope[NewKeyOut],
    responses=ERRORS,
    summary="Create a key; its secret is in this answer and nowhere else",
)
async def create_key(body: KeyIn, request: Request) -> JSONBody:
    caller = principal(request)
    wanted = frozenset(body.scopes)
    refusal = grantable(caller.scopes, wanted)
    if refusal is not None:
        raise HTTPException(403, refusal[0].upper() + refusal[1:] + ".")
    tenant = _tenant(request, body.tenant)
    assert tenant is not None
    expires = time.time() + body.expiresInDays * 86_400 if body.expiresInDays else None
    secret, key = await request.app.state.engine.store.access.create_key(
        tenant, wanted, name=body.name, expires_at=expires, rate_limit=body.rateLimit
    )
    request.app.state.keys.forget()
    record(request, "key_created", key_id=key.id, prefix=key.prefix, key_tenant=tenant)
    present_key = {**shown(key), "key": secret}
    message = (
        f"Key {key.prefix}… created by {actor_of(request)}; store it now, it is not shown again"
    )
    return JSONBody({"success": True, "data": present_key, "message": message}, status_code=201)


@router.get(
    "",
    dependencies=[requires(Scope.MANAGE)],
    response_model=Envelope[KeyList],
    responses=ERRORS,
    summary="The tenant's keys (never their secrets)",
)
async def list_keys(
    request: Request,
    tenant: Annotated[str | None, Query(max_length=64, description="admin only")] = None,
    revoked: Annotated[bool, Query(description="Include revoked keys.")] = False,
) -> JSONBody:
    keys = await request.app.state.engine.store.access.keys(_tenant(request, tenant), revoked)
    return JSONBody({"success": True, "data": {"keys": [shown(k) for k in keys]}})


@router.delete(
    "/{key_id}",
    dependencies=[requires(Scope.MANAGE)],
    response_model=Envelope[None],
    responses={404: {"model": ErrorBody}, **ERRORS},
    summary="Revoke a key (by id or prefix); every process refuses it within seconds",
)
async def revoke_key(key_id: str, request: Request) -> JSONBody:
    caller = principal(request)
    within = None if caller.allows(Scope.ADMIN) else caller.tenant_id
    done = await request.app.state.engine.store.access.revoke_key(key_id, within)
    if not done:
        raise HTTPException(404, f"No key {key_id!r}.")
    request.app.state.keys.forget()
    record(request, "key_revoked", key_ids=done)
    return JSONBody({"success": True, "data": None, "message": f"Key {key_id} revoked"})
