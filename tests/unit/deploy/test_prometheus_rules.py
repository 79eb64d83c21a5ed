"""The Prometheus files in ``deploy/prometheus`` hold together: promtool accepts the config and the
rules and their unit tests pass, every metric the rules read is one citygrid exports, and every
alert carries what the person it wakes up needs."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.metrics import REGISTRY

REPO = Path(__file__).resolve().parents[3]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (Debian: apt-get install prometheus); .ci/run installs it",
)

_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_METRIC = re.compile(r"\bcitygrid_[a-zA-Z0-9_]+")
_RECORDED = re.compile(r"\bcitygrid:[a-zA-Z0-9_]+:[a-zA-Z0-9_]+")
_LEVEL_METRIC_OPERATIONS = re.compile(r"citygrid:[a-z0-9_]+:[a-z0-9_]+")
SEVERITIES = {"critical", "warning"}
ANNOTATIONS = ("summary", "description", "runbook")


def _rules() -> Iterator[dict[str, Any]]:
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            yield from group["rules"]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _exported_names() -> set[str]:
    """The sample names /metrics can show, from each family's type (unprimed families included)."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count")}
        elif family.type == "info":
            names.add(f"{family.name}_info")
        else:
            names.add(family.name)
    return names


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=120
    )


@needs_promtool
def test_promtool_accepts_the_config_and_the_rules() -> None:
    config = _promtool("check", "config", str(CONFIG))
    assert config.returncode == 0, config.stdout + config.stderr
    rules = _promtool("check", "rules", *map(str, RULE_FILES))
    assert rules.returncode == 0, rules.stdout + rules.stderr


@needs_promtool
def test_the_rules_pass_their_promtool_unit_tests() -> None:
    result = _promtool("test", "rules", *map(str, TEST_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_config_scrapes_job_citygrid_and_loads_every_rule_file() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert "citygrid" in {job["job_name"] for job in config["scrape_configs"]}
    loaded = {(CONFIG.parent / name).resolve() for name in config["rule_files"]}
    assert loaded == {path.resolve() for path in RULE_FILES}


def test_every_metric_the_rules_mention_is_exported_by_citygrid() -> None:
    exported = _exported_names()
    mentioned: dict[str, set[str]] = {}
    for rule in _rules():
        name = rule.get("record") or rule["alert"]
        # Label values ("city.events.fire") are not names; the runbooks' prose mentions some.
        texts = [_QUOTED.sub('""', rule["expr"]), *rule.get("annotations", {}).values()]
        for text in texts:
            for metric in _METRIC.findall(text):
                mentioned.setdefault(metric, set()).add(name)
    assert mentioned, "the rules read no citygrid metric at all"
    unknown = {
        metric: sorted(rules) for metric, rules in mentioned.items() if metric not in exported
    }
    assert not unknown, f"not in streams.metrics.REGISTRY: {unknown}"


def test_every_recorded_series_the_rules_mention_is_recorded() -> None:
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    for rule in _rules():
        texts = [rule["expr"], *rule.get("annotations", {}).values()]
        for text in texts:
            for name in _RECORDED.findall(text):
                assert name in recorded, f"{rule.get('record') or rule['alert']} mentions {name}"


def test_recording_rules_are_named_level_metric_operations() -> None:
    for rule in _rules():
        if "record" in rule:
            name = rule["record"]
            assert _LEVEL_METRIC_OPERATIONS.fullmatch(name), name
            # The convention drops a counter's _total once rate() or increase() has been applied.
            assert not name.split(":")[1].endswith("_total"), name


def test_every_alert_has_a_severity_and_says_what_it_means_and_what_to_do() -> None:
    alerts = _alerts()
    assert alerts
    for alert in alerts:
        assert alert["alert"].startswith("Citygrid"), alert["alert"]
        assert alert.get("labels", {}).get("severity") in SEVERITIES, alert["alert"]
        annotations = alert.get("annotations", {})
        for key in ANNOTATIONS:
            assert str(annotations.get(key, "")).strip(), f"{alert['alert']} has no {key}"


def test_every_alert_has_a_promtool_case_that_fires_and_one_that_does_not() -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {alert["alert"] for alert in _alerts()}
    assert names - fires == set(), "no case where it fires"
    assert names - silent == set(), "no case where it stays silent"
