"""Reading a Prometheus scrape in tests: every sample by name and labels, each once."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

#: A sample's name and its labels, as a key.
Key = tuple[str, frozenset[tuple[str, str]]]
#: Family types whose samples only ever grow (a histogram's buckets, sum and count too).
GROWING = ("counter", "histogram")


class Scrape:
    """A parsed scrape. Parsing fails on a sample that appears twice: Prometheus refuses
    such a scrape whole."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[Key, float] = {}
        self.types: dict[Key, str] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                assert key not in self.samples, f"{sample.name}{sample.labels} appears twice"
                self.samples[key] = sample.value
                self.types[key] = family.type

    def value(self, name: str, **labels: str) -> float | None:
        """One sample's value; None when the scrape does not have it."""
        return self.samples.get((name, frozenset(labels.items())))

    def count(self, name: str, **labels: str) -> float:
        """A counter's value, 0 when it has not been counted yet."""
        return self.value(name, **labels) or 0.0

    def growing(self) -> dict[Key, float]:
        """The samples of counters and histograms, bar their creation times."""
        return {
            key: value
            for key, value in self.samples.items()
            if self.types[key] in GROWING and not key[0].endswith("_created")
        }


def promtool_check(text: str) -> None:
    """Prometheus's own reading of a scrape (``promtool check metrics``): it must take it."""
    promtool = shutil.which("promtool")
    if promtool is None:
        message = "promtool is not installed (Debian package prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
