"""Ground truth: real Slurm, real getent, real Prometheus/VictoriaMetrics, simulated Lustre.

The simulated Lustre exporter's counters grow at known rates for the ids of real jobs;
every value this exporter reports must equal the known rate (within 2 %), and nothing
else may appear.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pytest

from tests.e2e import components as c
from tests.helpers import Scrape

pytestmark = pytest.mark.e2e

FAMILIES = (
    "cluster_job_read_throughput_bytes",
    "cluster_job_write_throughput_bytes",
    "cluster_job_metadata_operations",
    "cluster_proc_read_throughput_bytes",
    "cluster_proc_write_throughput_bytes",
    "cluster_proc_metadata_operations",
)
Labels = Tuple[Tuple[str, str], ...]


@pytest.fixture(scope="session")
def exporter(
    tmp_path_factory: pytest.TempPathFactory, backend: str
) -> Iterator[Tuple[c.Process, str]]:
    tmp = tmp_path_factory.mktemp("exporter")
    proc, url = c.start_exporter(tmp, backend, "--timerange=5s", "--timeout=10")
    try:
        yield proc, url
    finally:
        proc.stop()


def scrape(url: str) -> Scrape:
    return Scrape(c.http_get(url + "/metrics", timeout=30).decode())


def differences(actual: Scrape, expected: Dict[str, Dict[Labels, float]]) -> list[str]:
    problems = []
    for family in FAMILIES:
        got = actual.series(family)
        want = expected.get(family, {})
        for labels in sorted(set(got) | set(want)):
            if labels not in want:
                problems.append(f"unexpected {family}{dict(labels)} = {got[labels]}")
            elif labels not in got:
                problems.append(f"missing {family}{dict(labels)} (want {want[labels]})")
            elif abs(got[labels] - want[labels]) > 0.02 * want[labels]:
                problems.append(f"{family}{dict(labels)} = {got[labels]}, want {want[labels]}")
    return problems


def matching_scrape(url: str, expected: Dict[str, Dict[Labels, float]]) -> Scrape:
    last: list[Scrape] = []

    def attempt() -> bool:
        s = scrape(url)
        last[:] = [s]
        return s.value("cluster_exporter_scrape_ok") == 1 and not differences(s, expected)

    try:
        c.wait_until(attempt, 30, "the exporter to report the ground truth", interval=1.0)
    except AssertionError:
        problems = differences(last[0], expected) if last else ["no scrape"]
        raise AssertionError(
            "exporter disagrees with ground truth:\n" + "\n".join(problems)
        ) from None
    return last[0]


def test_every_value_matches_ground_truth(
    exporter: Tuple[c.Process, str], simulation: dict
) -> None:
    proc, url = exporter
    s = matching_scrape(url, simulation["expected"])
    # Spot checks that the fixture really covers what it claims to.
    jobs = simulation["jobs"]
    assert s.value("cluster_job_read_throughput_bytes", account="chemistry", user="alice")
    assert s.value("cluster_job_read_throughput_bytes", account="physics", user="alice")
    assert s.value(
        "cluster_job_read_throughput_bytes", account="biology", user="carol"
    ) == pytest.approx(1000, rel=0.02)
    assert s.value(
        "cluster_proc_read_throughput_bytes",
        proc_name="my.app",
        group_name="hpc-chem",
        user_name="bob",
    ) == pytest.approx(123456, rel=0.02)
    assert jobs.names["array-1"] != jobs.names["array-2"]
    assert "OST" not in "".join(str(k) for k in s.series("cluster_job_metadata_operations"))
    assert "WARNING" in proc.log()  # the unattributable ids are summarised


def test_exposition_passes_promtool(exporter: Tuple[c.Process, str], tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        c.unavailable("promtool is not installed (Debian package prometheus)")
    _, url = exporter
    text = c.http_get(url + "/metrics", timeout=30)
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def test_cancelled_job_leaves_the_exporter_healthy(
    exporter: Tuple[c.Process, str], simulation: dict
) -> None:
    """A job starts IO, is cancelled and stops; the exporter stays right throughout."""
    _, url = exporter
    jobs = simulation["jobs"]
    spec_path: Path = simulation["spec_path"]
    original = json.loads(spec_path.read_text())
    victim = jobs.submit("victim", "carol", "geology")
    try:
        with_victim = {**original, "jobs": [*original["jobs"], {"jobid": victim, "read": 5000}]}
        spec_path.write_text(json.dumps(with_victim))
        expected = dict(simulation["expected"])
        expected["cluster_job_read_throughput_bytes"] = {
            **simulation["expected"]["cluster_job_read_throughput_bytes"],
            (("account", "geology"), ("user", "carol")): 5000.0,
        }
        matching_scrape(url, expected)

        c.slurm("scancel", victim)
        # Its IO stops; its counters stay (as Lustre keeps job stats for a while).
        stopped = {**original, "jobs": [*original["jobs"], {"jobid": victim}]}
        spec_path.write_text(json.dumps(stopped))
        c.wait_until(
            lambda: "RUNNING" not in c.slurm("squeue", "-h", "-j", victim, "-o", "%T"),
            30,
            "the job to leave RUNNING",
        )
        s = matching_scrape(url, simulation["expected"])
        assert s.value("cluster_exporter_scrape_ok") == 1
        assert s.value("cluster_job_read_throughput_bytes", account="geology", user="carol") is None
    finally:
        spec_path.write_text(json.dumps(original))
        jobs.owners.pop(victim, None)
