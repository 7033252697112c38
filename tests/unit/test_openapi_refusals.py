"""The OpenAPI document lists the refusals of the layer in front of every route (the
guard, the body limit, validation) on each operation they can answer for."""

from __future__ import annotations

from pathlib import Path

from herald.api import authz
from herald.api.app import create_app
from tests.conftest import make_settings


def test_every_operation_lists_the_refusals_it_can_meet(tmp_path: Path) -> None:
    document = create_app(make_settings(tmp_path), deliver=False).openapi()
    assert "ErrorBody" in document["components"]["schemas"]
    checked = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            where = f"{method.upper()} {path}"
            assert {"400", "503"} <= codes, where
            public = authz.is_public(method.upper(), path)
            assert public or {"401", "403", "429"} <= codes, where
            assert (operation.get("security") == []) == public, where
            if method in ("post", "put", "patch"):
                assert "413" in codes, where
                assert "415" in codes or path.startswith(authz.PROVIDER_BODIES), where
            if operation.get("parameters") or "requestBody" in operation:
                assert "422" in codes, where
            assert list(operation["responses"]) == sorted(operation["responses"]), where
            checked += 1
    assert checked > 50
    own = document["paths"]["/api/signups/verify/{token}"]["post"]["responses"]
    assert own["404"]["description"] == "Not found.", "a route's own words are kept"
    assert document["paths"]["/api/health"]["get"]["responses"]["503"]["content"][
        "application/json"
    ]["schema"] == {"$ref": "#/components/schemas/Health"}, "health's 503 is its own"
