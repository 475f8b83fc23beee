"""sacct output as a real slurmdbd + MariaDB prints it (captured from the accounting
cluster of tests/e2e/slurm-accounting.sh, Slurm 22.05): a het job's components (1+0 and
1+1, raw ids 1 and 2), an array's elements (3_1, 3_2, 3_3 with raw ids 5, 6 and 3: the
highest index keeps the base id), a job under its user's second account, all
``CANCELLED by 0`` (a State column the exporter never asks for); an unknown id prints
nothing. Without ``-X`` the steps (``1.batch``) come too, with an empty user. The fake
sacct replays the captured lines."""

from __future__ import annotations

from typing import Any

from prometheus_cluster_exporter.sources.jobdetails import parse_details
from prometheus_cluster_exporter.sources.slurm import parse_sacct
from tests.helpers import FIXTURES, FakeCluster, FakePrometheus

Start = Any
CAPTURED = FIXTURES / "sacct-accounting.out"
OWNERS = {
    "1": ("biology", "dave"),  # het leader (component 1+0)
    "2": ("biology", "dave"),  # het component 1+1
    "3": ("biology", "carol"),  # array element 3_3
    "4": ("chemistry", "alice"),  # alice's second account
    "5": ("biology", "carol"),  # array element 3_1
    "6": ("biology", "carol"),  # array element 3_2
}


def test_the_captured_lines_parse_to_each_raw_id() -> None:
    parsed = parse_sacct(CAPTURED.read_bytes())
    assert {j.jobid: (j.account, j.user) for j in parsed.items} == OWNERS
    assert parsed.skipped == 0


def test_steps_without_x_are_skipped_and_never_name_a_job() -> None:
    parsed = parse_sacct((FIXTURES / "sacct-accounting-steps.out").read_bytes())
    assert {j.jobid: (j.account, j.user) for j in parsed.items} == OWNERS
    assert parsed.skipped == 5  # 1.batch, 3.batch, ... with an empty user


def vector(rates: dict) -> dict:
    result = [{"metric": {"jobid": k}, "value": [1763945000.1, str(v)]} for k, v in rates.items()]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_ended_jobs_of_every_shape_are_named_from_the_captured_output(
    start_exporter: Start, fake_cluster: FakeCluster, fake_prometheus: FakePrometheus
) -> None:
    fake_cluster.set("sacct", "out", CAPTURED.read_bytes())
    fake_cluster.set("squeue", "out", "")  # every job has ended
    # The het job's IO arrives under its leader's id; each array element under its own.
    reads = {"1": 100.0, "3": 30.0, "5": 10.0, "6": 20.0, "4": 7.0, "999": 1.0}
    fake_prometheus.set("read", vector(reads))
    exporter = start_exporter("--slurm.sacct", "--slurm.job-grace-period=0")
    s = exporter.scrape()
    assert s.value("cluster_exporter_scrape_ok") == 1
    read = "cluster_job_read_throughput_bytes"
    assert s.series(read) == {
        (("account", "biology"), ("user", "dave")): 100.0,
        (("account", "biology"), ("user", "carol")): 60.0,
        (("account", "chemistry"), ("user", "alice")): 7.0,
    }
    assert s.series("cluster_unattributed_read_throughput_bytes") == {
        (("reason", "unknown_job"),): 1.0
    }
    [call] = [c for c in fake_cluster.calls("sacct") if "JobIDRaw,Account,User" in c["argv"]]
    argv = call["argv"]
    assert "-X" in argv and "-a" in argv
    assert set(argv[argv.index("-j") + 1].split(",")) >= {"1", "3", "4", "5", "6", "999"}


def test_the_captured_details_name_each_raw_id_once() -> None:
    captured = (FIXTURES / "sacct-accounting-details.out").read_bytes()
    details = parse_details(captured, {"1", "2", "5", "999"})
    assert details == {"1": ("debug", "wrap"), "2": ("debug", "wrap"), "5": ("debug", "wrap")}
