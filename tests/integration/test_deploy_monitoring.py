"""The monitoring kit in ``deploy/``: Prometheus alert rules and their unit tests, a
scrape configuration, a Grafana dashboard.

promtool (Debian package ``prometheus``) checks the rules and runs their unit tests,
and each alert is broken on purpose both ways to prove those tests see it. Every
metric the rules and the dashboard name must be one Herald exports, and a real
``/api/metrics`` scrape must carry it. Last, a real Prometheus scrapes an in-process
Herald with the shipped configuration (bearer key from a file) and evaluates every
rule and every dashboard query without an error.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import ADMIN_KEY, free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "herald-alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "herald-alerts.test.yml"
SCRAPE_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "herald-dashboard.json"

#: What Herald exports at /api/metrics, by kind (counters end in ``_total`` when scraped).
COUNTERS = (
    "notifications_created", "notifications_sent", "notifications_failed",
    "notifications_retried", "notifications_deferred", "notifications_delivered",
    "notifications_bounced", "notifications_undelivered", "notifications_complained",
    "notifications_suppressed", "herald_claims", "http_requests", "herald_receipts",
)  # fmt: skip
HISTOGRAMS = ("notification_processing_duration_seconds", "http_request_duration_seconds")
GAUGES = (
    "queue_depth", "herald_queue_waiting", "herald_oldest_waiting_seconds", "herald_dlq_size",
    "herald_breaker_open", "herald_workers", "herald_inflight_sends", "notifications",
)  # fmt: skip
#: Each name a query may use, and the metric it belongs to.
FAMILY = {
    **{f"{c}_total": c for c in COUNTERS},
    **{f"{h}_{part}": h for h in HISTOGRAMS for part in ("bucket", "count", "sum")},
    **{g: g for g in GAUGES},
}
#: Series Prometheus makes itself for every target.
SYNTHETIC = {"up"}

KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, label names and
    keywords left out)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings may hold anything
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", bare)  # matchers, ranges and subqueries
    bare = GROUPING.sub(" ", bare)
    names = set()
    for found in IDENTIFIER.finditer(bare):
        if re.match(r"\s*\(", bare[found.end() :]) or found.group() in KEYWORDS:
            continue  # a function or an aggregation
        if found.start() and (bare[found.start() - 1].isdigit() or bare[found.start() - 1] == "."):
            continue  # the exponent or unit of a number
        names.add(found.group())
    return names


def test_metric_names_reads_promql() -> None:
    expr = (
        'sum by (type) (rate(a_total{job="$job", q!~"x|y"}[5m])) / on (type) group_left '
        "max(b offset 1m) > 1e3 and histogram_quantile(0.9, sum(rate(c_bucket[1m])) by (le))"
    )
    assert metric_names(expr) == {"a_total", "b", "c_bucket"}


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"]
            for rule in group["rules"]]  # fmt: skip


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def recorded() -> set[str]:
    """The series the rules record for other rules to use."""
    return {rule["record"] for rule in rules() if "record" in rule}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def dashboard_queries() -> list[str]:
    """Every panel's PromQL, then the selectors inside the variables' ``label_values``."""
    queries = [target["expr"] for panel in panels() for target in panel["targets"]]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            found = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["definition"])
            assert found, variable["definition"]
            queries.append(found.group(1))
    return queries


def kit_queries() -> list[str]:
    return [rule["expr"] for rule in rules()] + dashboard_queries()


def concrete(expr: str) -> str:
    """A dashboard query with Grafana's variables filled in, as Grafana sends it."""
    values = {"__rate_interval": "1m", "job": "herald", "type": ".*"}
    defined = {v["name"] for v in dashboard()["templating"]["list"]} | {"__rate_interval"}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in defined, f"{name} is not a dashboard variable: {expr}"
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", fill, expr)


def promtool() -> str:
    return debian_command("promtool")


def debian_command(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed (Debian package prometheus; `make test` installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)


# --- The rules --------------------------------------------------------------------------


def test_rules_pass_promtool_check() -> None:
    checked = run(promtool(), "check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_rules_pass_their_unit_tests() -> None:
    tested = run(promtool(), "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_says_how_bad_what_and_what_to_do() -> None:
    assert len(alerts()) >= 8
    for alert in alerts():
        assert alert["labels"]["severity"] in ("critical", "warning"), alert["alert"]
        assert set(alert["annotations"]) == {"summary", "description", "runbook"}, alert["alert"]


@pytest.mark.parametrize("alert", [a["alert"] for a in alerts()])
@pytest.mark.parametrize("broken", ["never fires", "always fires"])
def test_unit_tests_notice_a_broken_alert(alert: str, broken: str, tmp_path: Path) -> None:
    """An alert that never fires fails its firing case; one that always fires (with the
    labels of a real firing) fails its quiet cases: each alert has both."""
    document = yaml.safe_load(RULES.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = "vector(1) < 0" if broken == "never fires" else rule_fires(rule)
    (tmp_path / RULES.name).write_text(yaml.safe_dump(document))
    tests = yaml.safe_load(RULE_TESTS.read_text())  # the alert's own cases, for speed
    tests["tests"] = [case for case in tests["tests"]
                      if any(c["alertname"] == alert for c in case["alert_rule_test"])]  # fmt: skip
    (tmp_path / RULE_TESTS.name).write_text(yaml.safe_dump(tests))
    tested = run(promtool(), "test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert tested.returncode != 0, f"{alert} {broken}, yet its unit tests pass"
    assert alert in tested.stdout + tested.stderr


def rule_fires(rule: dict[str, Any]) -> str:
    """An expression true at every evaluation, with the labels the alert's unit tests
    expect when it fires (so only the cases where it must stay quiet can tell)."""
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case["alert_rule_test"]:
            if check["alertname"] == rule["alert"] and check.get("exp_alerts"):
                expr = "vector(1)"
                for name, value in check["exp_alerts"][0]["exp_labels"].items():
                    if name not in rule["labels"]:
                        expr = f'label_replace({expr}, "{name}", "{value}", "", "")'
                return expr
    raise AssertionError(f"no unit test expects {rule['alert']} to fire")


def test_rules_name_only_metrics_herald_exports() -> None:
    used = set().union(*(metric_names(rule["expr"]) for rule in rules()))
    assert used - recorded() - SYNTHETIC <= FAMILY.keys(), used - recorded() - FAMILY.keys()
    assert {"herald_dlq_size", "notifications_sent_total", "herald_claims_total"} <= used


# --- The scrape configuration ------------------------------------------------------------


def test_scrape_configuration_passes_promtool_check(tmp_path: Path) -> None:
    """As installed: the rules and the key file beside it."""
    shutil.copy(SCRAPE_CONFIG, tmp_path)
    shutil.copy(RULES, tmp_path)
    (tmp_path / "herald.key").write_text("hk_example\n")
    checked = run(promtool(), "check", "config", SCRAPE_CONFIG.name, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    job = herald_job(yaml.safe_load(SCRAPE_CONFIG.read_text()))
    assert job["metrics_path"] == "/api/metrics"
    assert job["authorization"] == {"type": "Bearer", "credentials_file": "herald.key"}


def herald_job(config: dict[str, Any]) -> dict[str, Any]:
    """The job HeraldTargetDown watches."""
    jobs: list[dict[str, Any]] = [j for j in config["scrape_configs"] if j["job_name"] == "herald"]
    assert len(jobs) == 1, config["scrape_configs"]
    return jobs[0]


# --- The dashboard -----------------------------------------------------------------------


def test_dashboard_takes_its_prometheus_from_a_variable() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    source = {"type": "prometheus", "uid": "${datasource}"}
    for panel in panels():
        assert panel["datasource"] == source, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(target["datasource"] == source for target in panel["targets"])
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == source


def test_dashboard_panels_have_ids_and_places_of_their_own() -> None:
    everything = dashboard()["panels"]
    assert len({p["id"] for p in everything}) == len(everything)
    taken: dict[tuple[int, int], str] = {}
    for panel in everything:
        place = panel["gridPos"]
        assert place["x"] >= 0 and place["x"] + place["w"] <= 24, panel["title"]
        for x in range(place["x"], place["x"] + place["w"]):
            for y in range(place["y"], place["y"] + place["h"]):
                assert (x, y) not in taken, f"{panel['title']} covers {taken.get((x, y))}"
                taken[x, y] = panel["title"]


def test_dashboard_shows_every_metric_herald_exports_and_nothing_else() -> None:
    used = set().union(*(metric_names(query) for query in dashboard_queries()))
    assert used <= FAMILY.keys(), used - FAMILY.keys()
    assert {FAMILY[name] for name in used} == set(COUNTERS + HISTOGRAMS + GAUGES)


def test_dashboard_queries_are_promql(tmp_path: Path) -> None:
    """promtool parses each query (Grafana's variables filled in) as a recording rule."""
    recorded = [{"record": f"dashboard:query_{i}", "expr": concrete(query)}
                for i, query in enumerate(dashboard_queries())]  # fmt: skip
    queries = tmp_path / "dashboard-queries.yml"
    queries.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recorded}]}))
    checked = run(promtool(), "check", "rules", str(queries))
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --- A real scrape, a real Prometheus ----------------------------------------------------

NOTIFICATIONS = [
    {"type": "EMAIL", "recipient": "ops@example.com", "subject": "Hi", "message": "Hello"},
    {"type": "SMS", "recipient": "+14155550100", "message": "Hello", "priority": "HIGH"},
]


async def send_and_wait(h: Any) -> None:
    for body in NOTIFICATIONS:
        created = await h.client.post("/api/notifications", json=body)
        assert created.status_code == 201, created.text
        await h.wait_status(created.json()["data"]["_id"], "SENT")


def scraped_names(text: str) -> set[str]:
    """The names a scrape offers to queries: each sample's, and each declared metric's
    (a labelled one may have no sample yet)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            parts = ("_bucket", "_count", "_sum") if kind == "histogram" else ("",)
            names.update(name + part for part in parts)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


async def test_every_metric_the_kit_names_is_in_a_real_scrape(herald: Any) -> None:
    async with herald() as h:
        await send_and_wait(h)
        reply = await h.client.get("/api/metrics")
    assert reply.status_code == 200
    named = set().union(*(metric_names(query) for query in kit_queries()))
    missing = sorted(named - recorded() - SYNTHETIC - scraped_names(reply.text))
    assert not missing, f"named by deploy/ but not in /api/metrics: {missing}"


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def check_running(self) -> None:
        assert self.process.poll() is None, self.log.read_text()


@contextmanager
def prometheus_scraping(herald_url: str, folder: Path) -> Iterator[Prometheus]:
    """A real Prometheus on the shipped configuration, with Herald's address, a 1 s
    interval, no Alertmanager, and the key file beside it (``herald keys create >``
    writes the key and a newline)."""
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config.pop("alerting")
    config["rule_files"] = [str(RULES)]
    herald_job(config)["static_configs"] = [{"targets": [herald_url.removeprefix("http://")]}]
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    (folder / "herald.key").write_text(ADMIN_KEY + "\n")
    port = free_port()
    log = folder / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [debian_command("prometheus"), f"--config.file={folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        yield Prometheus(f"http://127.0.0.1:{port}", process, log)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_prometheus_scrapes_herald_and_evaluates_the_kit(herald: Any, tmp_path: Path) -> None:
    """The scrape authenticates with the key file, every rule evaluates on Herald's
    figures without an error, and every dashboard query runs."""
    async with herald() as h:
        with prometheus_scraping(h.url, tmp_path) as prometheus:
            async with httpx.AsyncClient(base_url=prometheus.url) as client:
                await send_and_wait(h)
                await until_evaluated(client, prometheus)
                for query in dashboard_queries():
                    answer = await client.get("/api/v1/query", params={"query": concrete(query)})
                    assert answer.json()["status"] == "success", (query, answer.text)


async def until_evaluated(client: httpx.AsyncClient, prometheus: Prometheus) -> None:
    """Wait until the Herald target is up and every rule has been evaluated since."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    target: dict[str, Any] = {}
    evaluated: dict[str, Any] = {}
    before: dict[str, Any] | None = None  # each rule's last evaluation once the target was up
    while loop.time() < deadline:
        prometheus.check_running()
        try:
            targets = (await client.get("/api/v1/targets")).json()["data"]["activeTargets"]
            groups = (await client.get("/api/v1/rules")).json()["data"]["groups"]
        except httpx.TransportError:
            await asyncio.sleep(0.1)  # still starting
            continue
        target = next((t for t in targets if t["labels"]["job"] == "herald"), {})
        evaluated = {r["name"]: r for group in groups for r in group["rules"]}
        if before is None and target.get("health") == "up":
            before = {name: rule["lastEvaluation"] for name, rule in evaluated.items()}
        elif before is not None and all(
            rule["lastEvaluation"] != before.get(name) for name, rule in evaluated.items()
        ):
            assert len(evaluated) == len(rules())
            errors = {name: r["lastError"] for name, r in evaluated.items() if r["health"] != "ok"}
            assert not errors, errors
            return
        await asyncio.sleep(0.2)
    health = {name: rule["health"] for name, rule in evaluated.items()}
    raise AssertionError(f"target {target.get('health')} ({target.get('lastError')}), {health}")
