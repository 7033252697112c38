"""The running parts of one Herald process, started and stopped together.

An API-only process (``herald api``) has a store and providers (the capture
mailbox needs the store) but no worker; ``herald worker`` has no HTTP server;
``herald up`` has both, sharing one store and so one group-commit writer.
Its background loops run under one ``Supervisor``, whose liveness
``/api/health`` reports.

Breaker states are kept in the store per process (``process``: the instance
name and a boot id), for every API process to show. A delivering process
beats its heartbeat every ``HEARTBEAT_EVERY`` seconds; its breakers are shown
while that heartbeat is younger than ``LIVE_FOR``, and go when it stops (or,
if it died, when the next worker prunes them), so a process restarted under
the same name never shows its predecessor's open breakers.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time

import structlog

from . import retention, seed_env
from .admission import Admission
from .config import Settings
from .delivery.breaker import Breaker, Breakers
from .delivery.breaker import State as BreakerStateName
from .delivery.chain import Chain, Route
from .delivery.ratelimit import Pacer
from .delivery.worker import Worker
from .errors import StoreUnavailable
from .models import Channel
from .providers import Provider, ProviderSet
from .store import Store, open_store
from .store.base import BreakerState
from .supervise import Liveness, Supervisor
from .unsubscribe import Links

log = structlog.get_logger("herald.engine")

#: Seconds between a delivering process's heartbeats.
HEARTBEAT_EVERY = 5.0
#: A process whose heartbeat is older than this is gone: its breakers are not shown.
LIVE_FOR = 20.0


class Engine:
    def __init__(self, settings: Settings, *, deliver: bool, store: Store | None = None) -> None:
        self.settings = settings
        self.deliver = deliver
        self.store = store or open_store(settings)
        # Each channel's retry ladder; ``policy.retries_for(channel, maxRetries)`` is what
        # a notification's retries come to.
        self.policy = settings.policy()
        self.max_attempts = self.policy.default.max_attempts
        self.started_at = time.time()
        #: This process, as its breaker rows and heartbeat name it.
        self.process = f"{settings.instance}#{secrets.token_hex(4)}"
        self.providers: ProviderSet | None = None
        self.worker: Worker | None = None
        self.links: Links | None = None  # set by ``start``
        self._worker_task: asyncio.Task[None] | None = None
        self._retention_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.loops = Supervisor()
        # Started by an API process's lifespan: only the API admits new work.
        self.admission = Admission(self.store, settings.shed_backlog)
        self._probe: tuple[float, str | None] = (-1e9, None)
        self._probe_lock = asyncio.Lock()

    async def start(self) -> None:
        await self.store.open()
        # Read once, here: the unsubscribe page reads tokens, the worker signs links.
        self.links = await Links.load(self.store, self.settings)
        self.providers = ProviderSet(self.settings, self.store)
        if self.deliver:
            routes = {name: self._route(p) for name, p in self.providers.built.items()}
            chains = {
                c.value: Chain([routes[p.name] for p in self.providers.chain(c)]) for c in Channel
            }
            self.worker = Worker(
                self.store, chains, self.settings, self.policy, loops=self.loops, links=self.links
            )
            self._worker_task = asyncio.create_task(self.worker.run(), name="herald-worker")
            self._retention_task = self.loops.spawn(
                "retention", lambda live: retention.run_forever(self.store, self.settings, live)
            )
            self._heartbeat_task = self.loops.spawn("heartbeat", self._beat)
        seed_env.announce(self.settings)  # the seed variables ignored, channels captured
        log.info("engine_started", deliver=self.deliver, instance=self.settings.instance)

    def _route(self, provider: Provider) -> Route:
        s = self.settings
        breakers = Breakers(provider.name, s.breaker_threshold, s.breaker_reset_seconds,
                            on_change=self._breaker_changed)  # fmt: skip
        return Route(
            provider, breakers, Pacer(self.store, provider.name, s.rate_for(provider.name))
        )

    def _breaker_changed(self, breaker: Breaker, now: BreakerStateName) -> None:
        state = BreakerState(self.settings.instance, breaker.name, now.value,
                             breaker.failures, time.time(), self.process)  # fmt: skip
        log.warning("breaker_changed", provider=breaker.name, state=state.state,
                    failures=breaker.failures)  # fmt: skip
        task = asyncio.get_running_loop().create_task(self._record(state))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _record(self, state: BreakerState) -> None:
        try:
            await self.store.record_breaker(state)
        except StoreUnavailable:
            log.warning("breaker_unrecorded", provider=state.provider, state=state.state)

    async def _beat(self, live: Liveness) -> None:
        """Keep this process's breakers shown; drop those of processes gone silent."""
        while True:
            try:
                await self.store.heartbeat(self.process)
                await self.store.prune_processes(time.time() - LIVE_FOR)
            except StoreUnavailable as exc:
                log.warning("heartbeat_unrecorded", error=str(exc))
            else:
                live.ok()
            await asyncio.sleep(HEARTBEAT_EVERY)

    async def breakers(self) -> list[BreakerState]:
        """Every live process's breakers (what health, providers and the dashboard show)."""
        found: list[BreakerState] = await self.store.breakers(time.time() - LIVE_FOR)
        return found

    async def commit_problem(self) -> str | None:
        """Why the store cannot commit now (disk full, read-only, unreachable), or None.

        Health checks arrive every second or two from every balancer: the
        probe write runs at most once a second and concurrent checks share it.
        """
        async with self._probe_lock:
            checked, problem = self._probe
            if time.monotonic() - checked < 1.0:
                return problem
            try:
                await self.store.heartbeat(self.process)
                problem = None
            except Exception as exc:  # any failure to commit is the answer, not a crash
                problem = _commit_problem(exc)
                log.warning("store_cannot_commit", error=str(exc)[:300])
            self._probe = (time.monotonic(), problem)
            return problem

    def liveness(self) -> list[Liveness]:
        """Every background loop of this process, with its state (for health)."""
        return [*self.loops.loops.values(), *self.store.liveness()]

    @property
    def worker_running(self) -> bool:
        return self._worker_task is not None and not self._worker_task.done()

    async def wait(self) -> None:
        """Return when the worker has stopped (after ``stop_delivery``)."""
        if self._worker_task is not None:
            await self._worker_task

    def stop_delivery(self) -> None:
        if self.worker is not None:
            self.worker.stop()

    async def stop(self) -> None:
        self.stop_delivery()
        if self._retention_task is not None:
            self._retention_task.cancel()
            await asyncio.gather(self._retention_task, return_exceptions=True)
        if self._worker_task is not None:
            await self._worker_task
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            await asyncio.gather(self._heartbeat_task, return_exceptions=True)
            with contextlib.suppress(StoreUnavailable):  # then they expire with the heartbeat
                await self.store.end_process(self.process)
        if self.providers is not None:
            await self.providers.close()
        await self.store.close()
        log.info("engine_stopped")


def _commit_problem(exc: Exception) -> str:
    text = str(exc).lower()
    if "full" in text or "no space" in text:
        return "cannot commit: the disk is full"
    if "readonly" in text or "read-only" in text or "read only" in text:
        return "cannot commit: the database is read-only"
    if isinstance(exc, StoreUnavailable):
        return "disconnected"
    return f"cannot commit: {type(exc).__name__}"
