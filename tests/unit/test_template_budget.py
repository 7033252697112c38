"""The template budget piece by piece: the hardened sandbox, the render processes, the pool."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Iterator

import pytest

from herald.errors import Overloaded
from herald.models import Channel
from herald.render_pool import RenderPool
from herald.sandbox import Budget, HardenedSandbox, Job, Sandbox, run_here, scrub
from herald.templates import (
    RENDERER,
    OverBudget,
    Renderer,
    TemplateDraft,
    UnsafeTemplate,
    builtin_templates,
)

SPIN = "{% for i in range(n) %}{% for j in range(n) %}{% endfor %}{% endfor %}done"


def sms(text: str, name: str = "t") -> TemplateDraft:
    return TemplateDraft(name, Channel.SMS, "en", text)


@pytest.fixture
def small_pool() -> Iterator[Renderer]:
    """A renderer with a pool of its own, so killing its process disturbs no other test."""
    renderer = Renderer(RenderPool(size=1))
    yield renderer
    renderer.pool.close()


@pytest.mark.parametrize(
    "source",
    ["{{ 7**(2*10**7) }}", "{{ 'a' * 10**9 }}", "{{ 'a'|center(1000000000) }}",
     "{% if false %}{{ '%0900000000d' % 1 }}{% endif %}"],
)  # fmt: skip
def test_compiling_never_evaluates_template_code(source: str) -> None:
    env = HardenedSandbox(autoescape=False)
    started = time.process_time()
    code = env.compile(source, raw=True)
    assert time.process_time() - started < 1.0
    assert len(code) < 10_000  # no folded constant in the generated code


@pytest.mark.parametrize(
    ("source", "data", "limit"),
    [
        ("{{ a ** b }}", {"a": 7, "b": 2 * 10**7}, "cpu"),
        ("{{ s * n }}", {"s": "ab", "n": 10**9}, "memory"),
        ("{{ l * n }}", {"l": [1, 2], "n": 10**8}, "memory"),
        ("{% for i in range(n) %}{{ 'x' * 100 }}{% endfor %}", {"n": 10**5}, "output"),
    ],
)
def test_each_limit_is_named(source: str, data: dict[str, object], limit: str) -> None:
    started = time.monotonic()
    with pytest.raises(OverBudget) as caught:
        RENDERER.render(sms(source), data)
    assert caught.value.limit == limit
    assert caught.value.fields[0][0] == "text"
    assert time.monotonic() - started < 5


def test_the_limits_are_the_budgets() -> None:
    loop = "{% for i in range(n) %}{{ 'é' }}{% endfor %}"
    assert RENDERER.render(sms(loop), {"n": 500}, Budget(max_output=1024)).body == "é" * 500
    with pytest.raises(OverBudget, match=r"output size limit \(1024 bytes\)"):
        RENDERER.render(sms(loop), {"n": 600}, Budget(max_output=1024))  # 1200 bytes
    with pytest.raises(OverBudget, match=r"memory limit \(64 MiB\)"):
        RENDERER.render(sms("{{ 'x'.ljust(n) }}"), {"n": 100 * 2**20}, Budget(memory_mb=64))


def test_only_plain_values_print() -> None:
    data = {"user": {"name": "Bo", "tags": ["a", 1, None]}}
    assert RENDERER.render(sms("{{ user }}"), data).body == str(data["user"])
    for source, kind in [("{{ {}.update }}", "a function (builtin_function_or_method)"),
                         ("{{ range(3) }}", "an object (range)"),
                         ("{{ [lipsum] }}", "an object (list)"),
                         ("{{ user.items() }}", "an object (dict_items)")]:  # fmt: skip
        with pytest.raises(UnsafeTemplate, match="prints " + re.escape(kind)):
            RENDERER.render(sms(source), data)


def test_a_repr_with_an_address_is_cut_out_wherever_it_comes_from() -> None:
    for source in ["<{{ {}.update ~ '' }}>", "<{{ cycler(1)|string }}>", "<{{ [joiner()]|join }}>"]:
        assert RENDERER.render(sms(source), {}).body == "<>"
    html = TemplateDraft("t", Channel.EMAIL, "en", "x", "s", "<p>{{ {}.pop|string }}</p>")
    assert RENDERER.render(html, {}).html == "<p></p>"
    assert scrub("an <item at 0x7f3a2b> and &lt;x at 0xabc123&gt;.") == "an  and ."
    assert scrub("meet at 0x10 <b>") == "meet at 0x10 <b>"


def test_saving_tries_the_template_but_only_its_budget_counts() -> None:
    RENDERER.check(
        sms("{{ x.y.z }} {{ x + 1 }} {{ {}.update }} {% for i in range(n) %}{% endfor %}")
    )
    with pytest.raises(OverBudget) as caught:
        RENDERER.check(sms("Hi {{ name }} {% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}"))
    assert caught.value.limit == "output"


def test_the_compiled_template_cache_is_bounded_in_bytes() -> None:
    sandbox = Sandbox(cache_bytes=200_000)
    jobs = [Job("t", (("text", f"{n} {{{{ x }}}}" + " pad" * 200, False),), {"x": 1}, Budget())
            for n in range(60)]  # fmt: skip
    for job in jobs:
        outcome = run_here(sandbox, job)
        assert outcome.kind is None, outcome.message
        assert sandbox.cached_bytes <= 200_000
    assert 0 < len(sandbox._cache) < 60
    assert (jobs[-1].parts[0][1], False) in sandbox._cache
    assert (jobs[0].parts[0][1], False) not in sandbox._cache


def test_a_template_rendered_here_stops_at_its_cpu_limit() -> None:
    """Built-in templates render in the API's thread; their CPU limit is checked there too."""
    job = Job("t", (("text", SPIN.replace("{% endfor %}{% endfor %}", ".{% endfor %}{% endfor %}"),
                     False),), {"n": 100_000}, Budget(cpu_ms=50, max_output=10**8))  # fmt: skip
    started = time.process_time()
    outcome = run_here(Sandbox(), job)
    assert outcome.kind == "cpu"
    assert time.process_time() - started < 2


def test_builtin_templates_render_within_the_budget() -> None:
    [receipt] = [t for t in builtin_templates() if t.name == "purchase-receipt"]
    items = [{"name": "Pen", "quantity": 1, "price": 1.0}] * 10_000
    data = {"orderId": "A1", "total": 1, "currency": "EUR", "items": items}
    with pytest.raises(OverBudget) as caught:
        RENDERER.render(receipt, data, Budget(max_output=50_000))
    assert caught.value.limit == "output"


def test_a_render_stuck_in_c_code_is_killed_and_its_process_replaced(
    small_pool: Renderer,
) -> None:
    # One C call the CPU timer's handler cannot interrupt (sorting a million strings that
    # differ only after 10,000 characters: seconds): the process is ended at twice the
    # limit, and replaced.
    bomb = ("{% set a = 'x' * 10000 ~ 'a' %}{% set b = 'x' * 10000 ~ 'b' %}"
            "{{ ([b, a] * 500000).sort() }}")  # fmt: skip
    started = time.monotonic()
    with pytest.raises(OverBudget) as caught:
        small_pool.render(sms(bomb), {})
    assert caught.value.limit == "cpu"
    assert time.monotonic() - started < 10
    assert small_pool.pool.replaced == 1
    assert small_pool.render(sms("still {{ x }}"), {"x": "here"}).body == "still here"


async def test_tenants_take_turns(small_pool: Renderer) -> None:
    """One process: another tenant's job waits behind one hostile job, not behind all."""
    await small_pool.render_async(sms("warm"), {})
    done: list[str] = []

    async def render(tenant: str, source: str, data: dict[str, int]) -> None:
        with contextlib.suppress(OverBudget):
            await small_pool.render_async(sms(source), data, tenant=tenant)
        done.append(tenant)

    hostile = [asyncio.create_task(render("a", SPIN, {"n": 100_000})) for _ in range(4)]
    await asyncio.sleep(0.05)
    await render("b", "quick", {})
    await asyncio.gather(*hostile)
    assert done.index("b") <= 1, done


async def test_jobs_past_the_queue_limit_are_refused() -> None:
    pool = RenderPool(size=1, max_waiting=2)
    try:
        job = Job("t", (("text", SPIN, False),), {"n": 100_000}, Budget())
        first = asyncio.create_task(pool.run_async("a", job))
        second = asyncio.create_task(pool.run_async("a", job))
        await asyncio.sleep(0)  # both wait: the process is still starting
        with pytest.raises(Overloaded):
            await pool.run_async("a", job)
        other = await pool.run_async("b", Job("t", (("text", "x", False),), {}, Budget()))
        assert other.texts == {"text": "x"}
        assert [o.kind for o in await asyncio.gather(first, second)] == ["cpu", "cpu"]
    finally:
        pool.close()
