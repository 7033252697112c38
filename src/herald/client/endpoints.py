"""Every route as a method of both clients, written once.

A route is a function building a ``Call`` (``routes.py``). ``route(build)`` in
the ``Routes`` class body makes it a method: on ``Herald`` it sends the call and
returns the value, on ``AsyncHerald`` it returns an awaitable of it, with the
builder's own signature in both (``ParamSpec``, checked by mypy). ``pages``
does the same for a ``Pager``: an iterator on one, an async iterator on the
other. The two clients differ only in how they send (``SyncSender``,
``AsyncSender``).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Generic, ParamSpec, Self, TypeVar, overload

from . import catalog_routes as c
from . import routes as r
from .calls import Call, Pager

P = ParamSpec("P")
T = TypeVar("T")


class SyncSender:
    """Sends a call and waits for its value; ``Herald`` implements ``_send``."""

    def _send(self, call: Call[T]) -> T:
        raise NotImplementedError

    def _walk(self, pager: Pager[T]) -> Iterator[T]:
        call: Call[Any] | None = pager.first()
        while call is not None:
            found = self._send(call)
            yield from found.items
            call = pager.after(found)


class AsyncSender:
    """Sends a call without blocking; ``AsyncHerald`` implements ``_send``."""

    async def _send(self, call: Call[T]) -> T:
        raise NotImplementedError

    async def _walk(self, pager: Pager[T]) -> AsyncIterator[T]:
        call: Call[Any] | None = pager.first()
        while call is not None:
            found = await self._send(call)
            for item in found.items:
                yield item
            call = pager.after(found)


class route(Generic[P, T]):
    """A method that builds a call with the builder's arguments and sends it."""

    def __init__(self, build: Callable[P, Call[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, client: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, client: SyncSender, owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, client: AsyncSender, owner: type[Any]) -> Callable[P, Awaitable[T]]: ...

    def __get__(self, client: SyncSender | AsyncSender | None, owner: type[Any]) -> Any:
        if client is None:
            return self
        build, send = self.build, client._send

        def method(*args: P.args, **kwargs: P.kwargs) -> Any:
            return send(build(*args, **kwargs))

        return functools.update_wrapper(method, build)


class pages(Generic[P, T]):
    """A method that walks every page of a list, lazily: the next page is fetched when needed."""

    def __init__(self, build: Callable[P, Pager[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, client: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, client: SyncSender, owner: type[Any]) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(self, client: AsyncSender, owner: type[Any]) -> Callable[P, AsyncIterator[T]]: ...

    def __get__(self, client: SyncSender | AsyncSender | None, owner: type[Any]) -> Any:
        if client is None:
            return self
        build, walk = self.build, client._walk

        def method(*args: P.args, **kwargs: P.kwargs) -> Any:
            return walk(build(*args, **kwargs))

        return functools.update_wrapper(method, build)


class Routes:
    """Herald's public API, one attribute per route (receipts are for providers: not here)."""

    # notifications
    create_notification = route(r.create_notification)
    create_bulk = route(r.create_bulk)
    get_notification = route(r.get_notification)
    list_notifications = route(r.list_notifications)
    iter_notifications = pages(r.iter_notifications)
    cancel_notification = route(r.cancel_notification)
    delete_notification = route(r.delete_notification)
    # dead letters
    list_dead_letters = route(r.list_dead_letters)
    iter_dead_letters = pages(r.iter_dead_letters)
    replay_dead_letters = route(r.replay_dead_letters)
    delete_dead_letter = route(r.delete_dead_letter)
    # lanes, figures, the process
    stats = route(r.stats)
    health = route(r.health)
    queue_health = route(r.queue_health)
    pause_queue = route(r.pause_queue)
    resume_queue = route(r.resume_queue)
    clean_queue = route(r.clean_queue)
    providers = route(r.providers)
    mailbox = route(r.mailbox)
    metrics = route(r.metrics)
    # keys
    create_key = route(r.create_key)
    list_keys = route(r.list_keys)
    revoke_key = route(r.revoke_key)
    # suppressions and categories
    list_suppressions = route(r.list_suppressions)
    iter_suppressions = pages(r.iter_suppressions)
    add_suppression = route(r.add_suppression)
    add_suppressions = route(r.add_suppressions)
    remove_suppression = route(r.remove_suppression)
    list_categories = route(r.list_categories)
    put_category = route(r.put_category)
    delete_category = route(r.delete_category)
    # templates
    list_templates = route(c.list_templates)
    create_template = route(c.create_template)
    get_template = route(c.get_template)
    replace_template = route(c.replace_template)
    delete_template = route(c.delete_template)
    render_template = route(c.render_template)
    # events and event types
    create_event = route(c.create_event)
    get_event = route(c.get_event)
    list_events = route(c.list_events)
    iter_events = pages(c.iter_events)
    list_event_types = route(c.list_event_types)
    get_event_type = route(c.get_event_type)
    create_event_type = route(c.create_event_type)
    replace_event_type = route(c.replace_event_type)
    delete_event_type = route(c.delete_event_type)
    # the seeds' routes
    notify = route(c.notify)
    create_signup = route(c.create_signup)
    list_signups = route(c.list_signups)
    iter_signups = pages(c.iter_signups)
    signup_statistics = route(c.signup_statistics)
    failed_welcome_emails = route(c.failed_welcome_emails)
    welcome_email_status = route(c.welcome_email_status)
    verify_signup = route(c.verify_signup)
    record_login = route(c.record_login)
    reset_password = route(c.reset_password)
    record_purchase = route(c.record_purchase)
    send_friend_request = route(c.send_friend_request)
