"""``GET /api/providers``: each provider's channels, pace and circuit breakers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from ..access import Scope
from . import present
from .authz import requires
from .json import JSONBody
from .schemas import Envelope, ErrorBody

router = APIRouter(prefix="/api", tags=["providers"])


class BreakerOut(BaseModel):
    instance: str
    destination: str | None  # for per-destination breakers (webhook hosts, chat services)
    state: str
    failures: int
    changedAt: str


class ProviderOut(BaseModel):
    name: str
    channels: list[str]
    ratePerSecond: float | None
    breakers: list[BreakerOut]


@router.get(
    "/providers",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[list[ProviderOut]],
    responses={503: {"model": ErrorBody}},
    summary="Configured providers, their rate limits and every worker's breaker state",
)
async def providers(request: Request) -> JSONBody:
    engine = request.app.state.engine
    recorded = await engine.breakers()
    data = []
    for name, provider in sorted(engine.providers.built.items()):
        breakers = [
            {"instance": b.instance, "destination": b.provider.partition(":")[2] or None,
             "state": b.state, "failures": b.failures, "changedAt": present.iso(b.changed_at)}
            for b in recorded if b.provider.partition(":")[0] == name
        ]  # fmt: skip
        data.append({
            "name": name,
            "channels": sorted(c.value for c in provider.channels),
            "ratePerSecond": engine.settings.rate_for(name),
            "breakers": breakers,
        })  # fmt: skip
    return JSONBody({"success": True, "data": data})
