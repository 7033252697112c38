"""Big claims and completions, run against every store: the batched statements
(chunks of many outcomes, a stale outcome among them, several kinds at once)
record exactly the outcomes whose claim still holds, each with one attempt row."""

from __future__ import annotations

import asyncio
import time

import pytest

from herald.models import Channel, Dead, NewNotification, Retry, Sent, Status
from herald.store.base import Store


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def email(n: int) -> NewNotification:
    return NewNotification(Channel.EMAIL, f"user{n}@example.com", f"body {n}", subject="s")


async def test_a_big_batch_with_stale_outcomes_records_the_rest(store: Store) -> None:
    created = await store.create([email(i) for i in range(300)])
    stale_claims = await store.claim(3, 0.05)
    await asyncio.sleep(0.1)
    assert (await store.sweep(max_attempts=6)).expired == 3
    claims = await store.claim(500, 30)
    assert len(claims) == 300
    now = time.time()
    outcomes = [
        Sent(c, "smtp", f"m-{c.id}", 1.0, now)
        if i % 10
        else Retry(c, "smtp", "451 later", now + 60, 0, "email", now)
        for i, c in enumerate(claims)
    ]
    late = [Sent(c, "smtp", "late", 1.0, now) for c in stale_claims]
    dead = Dead(stale_claims[0], "smtp", "550 gone", True, now)
    # The stale ones sit inside the batch, across the stores' statement chunks.
    mixed = outcomes[:100] + late[:2] + outcomes[100:250] + [late[2], dead] + outcomes[250:]
    assert await store.complete(mixed) == 300
    assert await store.complete(outcomes[:5]) == 0  # recorded already: their tokens are gone
    for c, o in zip(claims, outcomes, strict=True):
        got = await store.get("default", c.id)
        assert got is not None
        if isinstance(o, Sent):
            assert got.status is Status.SENT and got.provider_message_id == f"m-{c.id}"
        else:
            assert got.status is Status.RETRYING and got.last_error == "451 later"
        log = await store.audit("default", c.id)
        ended = [e for e in log if e.status in (Status.SENT, Status.RETRYING)]
        assert len(ended) == 1 and ended[0].metadata["attempt"] == c.attempts
    stale_ids = {c.id for c in stale_claims}
    assert {c.id for c in claims} >= stale_ids
    assert len(created) == 300
