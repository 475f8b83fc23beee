"""--metrics.top-jobs against real Slurm and real Prometheus/VictoriaMetrics: the top N
are exactly the N biggest known jobs, by job id, with the name and partition squeue
gives, and every value is the simulators' known rate within 2 %."""

from __future__ import annotations

from typing import Dict, List, Tuple

import pytest

from tests.e2e import components as c
from tests.e2e.conftest import StartExporter
from tests.helpers import Scrape

pytestmark = pytest.mark.e2e

FAMILIES = (
    "cluster_top_job_read_throughput_bytes",
    "cluster_top_job_write_throughput_bytes",
    "cluster_top_job_metadata_operations",
)
#: jobid -> (read, write, metadata) per second.
Rates = Dict[str, Tuple[float, float, float]]


def known_rates(simulation: dict) -> Rates:
    """The known jobs' rates as the spec gives them (metadata as the metadata query
    takes it: per MDT, operations under 1/s left out, rounded; then summed)."""
    spec, owners = simulation["spec"], simulation["jobs"].owners
    mdts_of = {fs: layout["mdts"] for fs, layout in spec["filesystems"].items()}
    rates: Rates = {}
    for job in spec["jobs"]:
        if job["jobid"] not in owners or not (job.get("read") or job.get("write")):
            continue
        mdts = mdts_of[job.get("fs", "scratch")]
        per_mdt = sum(r / mdts for r in job.get("mdt_ops", {}).values() if r / mdts >= 1)
        rates[job["jobid"]] = (job.get("read", 0), job.get("write", 0), mdts * round(per_mdt))
    return rates


def biggest(rates: Rates, count: int) -> List[str]:
    ranked = sorted(rates, key=lambda j: rates[j][0] + rates[j][1], reverse=True)
    # The test asks only for a count that no tie crosses.
    if count < len(ranked):
        at, after = ranked[count - 1], ranked[count]
        assert sum(rates[at][:2]) != sum(rates[after][:2])
    return ranked[:count]


def squeue_details(jobids: List[str]) -> Dict[str, Tuple[str, str]]:
    """jobid -> (partition, name), as squeue itself says."""
    out = c.slurm("squeue", "-h", "-j", ",".join(jobids), "-o", "%A|%P|%j")
    found = {}
    for line in out.splitlines():
        jobid, partition, name = line.split("|", 2)
        found[jobid] = (partition, name)
    return found


def problems(
    s: Scrape, want: Rates, details: Dict[str, Tuple[str, str]], owners: dict
) -> List[str]:
    found = []
    for index, family in enumerate(FAMILIES):
        series = {dict(k)["jobid"]: (dict(k), v) for k, v in s.series(family).items()}
        if set(series) != set(want):
            found.append(f"{family}: jobs {sorted(series)}, want {sorted(want)}")
            continue
        for jobid, (labels, value) in series.items():
            expected = want[jobid][index]
            if abs(value - expected) > 0.02 * expected:
                found.append(f"{family}{{jobid={jobid}}} = {value}, want {expected}")
            account, user = owners[jobid]
            partition, name = details[jobid]
            who = (labels["account"], labels["user"], labels["partition"], labels["job_name"])
            if who != (account, user, partition, name):
                found.append(f"{family}{{jobid={jobid}}} labels {who}")
    return found


def check_top(url: str, simulation: dict, count: int) -> None:
    rates = known_rates(simulation)
    want = {jobid: rates[jobid] for jobid in biggest(rates, count)}
    owners = simulation["jobs"].owners
    details = squeue_details(list(want))
    last: List[List[str]] = [["no scrape"]]

    def attempt() -> bool:
        s = Scrape(c.http_get(url + "/metrics", timeout=30).decode())
        last[0] = problems(s, want, details, owners)
        return s.value("cluster_exporter_scrape_ok") == 1 and not last[0]

    try:
        c.wait_until(attempt, 30, "the top jobs to be the biggest known jobs", interval=1.0)
    except AssertionError:
        raise AssertionError("top jobs disagree:\n" + "\n".join(last[0])) from None


def test_top_jobs_are_every_known_job_with_io(exporter: str, simulation: dict) -> None:
    # Fewer jobs did IO than the default 10: all of them, and no job without IO.
    rates = known_rates(simulation)
    assert 3 < len(rates) < 10
    check_top(exporter, simulation, len(rates))


def test_top_n_are_exactly_the_n_biggest(start_exporter: StartExporter, simulation: dict) -> None:
    check_top(start_exporter("--metrics.top-jobs=3"), simulation, 3)
