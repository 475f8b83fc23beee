"""Join mode through the real CLI, against the fake Prometheus and fake Slurm/getent:
the exporter exports the owners (jobs, and the users of the uids Prometheus names), no
per-jobid rate is ever asked for, and a failing source costs only its own series."""

from __future__ import annotations

import subprocess
import sys
from typing import Callable, Dict, List

import pytest

from tests.helpers import Exporter, FakeCluster, FakePrometheus, key

Start = Callable[..., Exporter]
JOB_INFO = "cluster_job_info"
USER_INFO = "cluster_user_info"


def vector(label: str, values: List[str]) -> Dict:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {label: v}, "value": [1.0, "1"]} for v in values]}}  # fmt: skip


@pytest.fixture
def join_answers(fake_prometheus: FakePrometheus) -> FakePrometheus:
    # 1001 alice, 1002 bob: enumerated; 1005 dave: gid without a group; 5001 erin: only by a
    # keyed lookup; 424242: nobody. "x" is malformed and skipped.
    fake_prometheus.set("uids", vector("uid", ["1001", "1002", "1005", "5001", "424242", "x"]))
    fake_prometheus.set("unknown_jobs", vector("jobid", ["4242", "4999", "4998", "31337"]))
    return fake_prometheus


def test_join_mode_exports_jobs_and_users(
    start_exporter: Start, join_answers: FakePrometheus, fake_cluster: FakeCluster
) -> None:
    exporter = start_exporter("--mode=join")
    s = exporter.scrape()
    assert s.value("cluster_exporter_scrape_ok") == 1
    status, page = exporter.get("/")
    assert status == 200 and "join: in the TSDB" in page
    jobs = s.series(JOB_INFO)
    assert jobs == {
        key(jobid="4242", account="physics", user="alice"): 1,
        key(jobid="4243", account="physics", user="alice"): 1,
        key(jobid="4250", account="chemistry", user="bob"): 1,
        key(jobid="4251", account="physics", user="bob"): 1,
        key(jobid="4260", account="(null)", user="carol"): 1,
    }
    assert s.series(USER_INFO) == {
        key(uid="1001", user_name="alice", group_name="hpc-physics"): 1,
        key(uid="1002", user_name="bob", group_name="hpc-chem"): 1,
        key(uid="1005", user_name="dave", group_name=""): 1,  # the rules: unknown_gid
        key(uid="5001", user_name="erin", group_name="hpc-ldap"): 1,  # keyed passwd + group
    }
    # Never a per-jobid rate, never the unknown-jobs question without sacct.
    assert not [q for q in join_answers.queries if "irate(" in q and "unless" not in q]
    assert not [q for q in join_answers.queries if q.startswith("group by (jobid)")]
    assert not s.has("cluster_job_read_throughput_bytes")
    stages = {dict(k)["name"] for k in s.series("cluster_exporter_stage_execution_seconds")}
    assert {"retrieve_running_jobs", "retrieve_process_uids", "retrieve_missing_user_info",
            "retrieve_missing_group_info", "build_info_metrics"} <= stages  # fmt: skip
    assert not fake_cluster.calls("sacct")


def test_join_mode_asks_sacct_for_unknown_jobs_and_keeps_them(
    start_exporter: Start, join_answers: FakePrometheus, fake_cluster: FakeCluster
) -> None:
    exporter = start_exporter("--mode=join", "--slurm.sacct")
    s = exporter.scrape()
    jobs = s.series(JOB_INFO)
    assert jobs[key(jobid="4999", account="geology", user="frank")] == 1
    assert jobs[key(jobid="4998", account="(null)", user="grace")] == 1
    asked = fake_cluster.calls("sacct")[0]["argv"]
    ids = asked[asked.index("-j") + 1].split(",")
    assert sorted(ids) == ["31337", "4998", "4999"], "4242 is squeue's: not asked"
    # Once exported, the TSDB knows them: the next answers leave them out, and the
    # exporter keeps exporting the jobs sacct found, without asking sacct again.
    join_answers.set("unknown_jobs", vector("jobid", ["4999"]))
    s = exporter.scrape()
    assert s.series(JOB_INFO)[key(jobid="4999", account="geology", user="frank")] == 1
    assert s.series(JOB_INFO)[key(jobid="4998", account="(null)", user="grace")] == 1
    assert s.value("cluster_exporter_scrape_ok") == 1
    assert len(fake_cluster.calls("sacct")) == 1


def test_a_failing_source_costs_only_its_own_series(
    start_exporter: Start, join_answers: FakePrometheus, fake_cluster: FakeCluster
) -> None:
    exporter = start_exporter("--mode=join", "--slurm.sacct")
    first = exporter.scrape()
    dave = key(uid="1005", user_name="dave", group_name="")
    assert first.value("cluster_exporter_scrape_ok") == 1 and dave in first.series(USER_INFO)
    # squeue down: the jobs of the grace period and those sacct found are still owners.
    fake_cluster.set("squeue", "rc", "1")
    s = exporter.scrape()
    assert s.value("cluster_exporter_scrape_ok") == 0
    assert s.series(JOB_INFO) == first.series(JOB_INFO)
    assert s.series(USER_INFO) == first.series(USER_INFO), "users do not need squeue"
    # The keyed group lookup fails: dave's gid is not "without a name", just unknown.
    fake_cluster.set("squeue", "rc", None)
    fake_cluster.set("getent-group", "rc", "1")
    s = exporter.scrape()
    assert s.value("cluster_exporter_scrape_ok") == 0
    assert dave not in s.series(USER_INFO)
    assert key(uid="1001", user_name="alice", group_name="hpc-physics") in s.series(USER_INFO)
    # The uids query fails: no user info this time, the jobs as ever.
    fake_cluster.set("getent-group", "rc", None)
    join_answers.set("uids", b"not json")
    s = exporter.scrape()
    assert s.value("cluster_exporter_scrape_ok") == 0
    assert s.series(JOB_INFO) == first.series(JOB_INFO) and not s.has(USER_INFO)


def test_ids_no_system_has_are_skipped_quietly(
    start_exporter: Start, join_answers: FakePrometheus
) -> None:
    """A job-form id of 21-30 digits has IO but no job: the answer naming only it is
    not a failing source."""
    join_answers.set("unknown_jobs", vector("jobid", ["1" * 25]))
    s = start_exporter("--mode=join", "--slurm.sacct").scrape()
    assert s.value("cluster_exporter_scrape_ok") == 1


def test_join_mode_refuses_the_demo() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "prometheus_cluster_exporter", "--demo", "--mode=join"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--demo and --mode=join exclude each other" in result.stderr


@pytest.mark.parametrize(
    ("flag", "message"),
    [("--mode=joined", "invalid choice"), ("--join.info-lookback=5 m", "--join.info-lookback")],
)
def test_bad_join_flags_exit_2(flag: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "prometheus_cluster_exporter", "--promserver=http://p:9090", flag],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
