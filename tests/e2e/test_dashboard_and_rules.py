"""The shipped Grafana dashboard and Prometheus rules, against the real thing.

A second, real Prometheus scrapes the exporter (which itself queries the backend that
scrapes the simulated Lustre exporters) with the shipped rules loaded. Every PromQL
expression of the dashboard and every recording rule must return data there. The rules
also pass promtool's checker and their unit tests.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
import yaml

from tests.e2e import components as c

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "cluster-exporter.json"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "rules.test.yml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        c.unavailable("promtool is not installed (Debian package prometheus)")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip


def test_rules_pass_promtool_check_and_unit_tests() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"]
              for r in g["rules"] if "alert" in r}  # fmt: skip
    tested_alerts = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert alerts == tested_alerts, "every alert needs a unit test"


def dashboard_queries() -> List[Tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    assert board["schemaVersion"] >= 36  # Grafana 9+
    assert any(v["type"] == "datasource" for v in board["templating"]["list"])
    queries = []
    # A collapsed row holds its panels (those of an opt-in flag).
    panels = [p for row in board["panels"] for p in (row, *row.get("panels", []))]
    for panel in panels:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            queries.append((panel["title"], target["expr"]))
    return queries


def substitute(expr: str) -> str:
    return expr.replace("$topk", "10").replace("$__range", "1h")


@pytest.fixture(scope="module")
def prometheus_of_exporter(
    backend: str, exporter_with_operations: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    # Runs once per query backend: the exporter behind it queries Prometheus or VictoriaMetrics.
    target = exporter_with_operations.replace("http://", "")
    proc, url = c.start_prometheus(
        tmp_path_factory.mktemp("prometheus-of-exporter"), [target], job="cluster-exporter",
        interval="2s", rule_files=[str(RULES)],
    )  # fmt: skip
    try:
        c.wait_until(
            lambda: (
                c.instant_query(url, "cluster:io_throughput_bytes:sum")
                and c.instant_query(url, "cluster_proc_metadata_operations")
                and c.instant_query(url, "increase(cluster_job_read_bytes_total[1h])")
            ),
            90,
            "Prometheus to scrape the exporter and evaluate the rules",
        )
        yield url
    finally:
        proc.stop()


def test_every_dashboard_query_returns_data(prometheus_of_exporter: str) -> None:
    empty = []
    for title, expr in dashboard_queries():
        if not c.instant_query(prometheus_of_exporter, substitute(expr)):
            empty.append(f"{title}: {expr}")
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)


def test_every_recording_rule_returns_data(prometheus_of_exporter: str) -> None:
    records = [r["record"] for g in yaml.safe_load(RULES.read_text())["groups"]
               for r in g["rules"] if "record" in r]  # fmt: skip
    empty = [r for r in records if not c.instant_query(prometheus_of_exporter, r)]
    assert not empty, f"recording rules without data: {empty}"
    up = c.instant_query(prometheus_of_exporter, 'up{job="cluster-exporter"}')
    assert up and up[0]["value"][1] == "1"
