"""``/api/health``'s documented shape agrees with what the loops report."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import httpx

from herald.api.app import create_app
from herald.api.schemas import Health, LoopHealth
from herald.supervise import Liveness, LoopState
from tests.conftest import make_settings


def test_every_loop_state_and_field_is_documented() -> None:
    assert set(get_args(LoopHealth.model_fields["state"].annotation)) == {
        s.value for s in LoopState
    }
    live = Liveness("sweeper", lambda: 1_800_000_000.0)
    for state in LoopState:
        live.state = state
        assert LoopHealth.model_validate(live.as_dict()).model_dump() == live.as_dict()
    body = {"status": "healthy", "timestamp": "2027-01-15T08:00:00.000Z", "services": {},
            "uptime": 1.0, "instance": "h:8000", "loops": {"sweeper": live.as_dict()}}  # fmt: skip
    assert Health.model_validate(body).loops["sweeper"].state == LoopState.DEAD.value


def test_openapi_shows_the_loops_of_health(tmp_path: Path) -> None:
    spec = create_app(make_settings(tmp_path), deliver=False).openapi()
    schemas = spec["components"]["schemas"]
    loops = schemas["Health"]["properties"]["loops"]
    assert loops["additionalProperties"] == {"$ref": "#/components/schemas/LoopHealth"}
    assert "loops" in schemas["Health"]["required"]
    assert set(schemas["LoopHealth"]["properties"]) == {
        "state", "restarts", "lastError", "lastErrorAt", "lastSuccessAt"
    }  # fmt: skip


async def test_a_real_health_answer_fits_the_schema(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://127.0.0.1"
        ) as client,
    ):
        reply = await client.get("/api/health")
    health = Health.model_validate(reply.json())
    assert {"claimer", "flusher", "sweeper"} <= set(health.loops), health.loops
    assert health.loops["sweeper"].state == "running"
