"""Attribution features through the real CLI: conservation, recently ended jobs, sacct,
keyed getent lookups, caches, squeue --json, the fs label, jobid formats."""

from __future__ import annotations

import json
import math
from typing import Callable

from tests.helpers import (
    FIXTURES,
    FOLDED,
    JOB_META,
    JOB_READ,
    JOB_WRITE,
    LOST_META,
    LOST_READ,
    OK,
    PROC_META,
    PROC_READ,
    PROC_WRITE,
    Exporter,
    FakeCluster,
    FakePrometheus,
    Scrape,
    key,
)

Start = Callable[..., Exporter]


def upstream_total(kind: str) -> float:
    """Sum of the well-formed samples of a fixture answer, as the query returns them."""
    total = 0.0
    for sample in json.loads((FIXTURES / f"prometheus-{kind}.json").read_text())["data"]["result"]:
        value = float(sample["value"][1])
        well_formed = "jobid" in sample["metric"] and math.isfinite(value)
        mdt = kind != "metadata" or "MDT" in sample["metric"].get("target", "")
        if well_formed and mdt:
            total += value
    return total


def total(s: Scrape, *families: str) -> float:
    return math.fsum(v for f in families for v in s.series(f).values())


def test_every_byte_is_accounted_for(start_exporter: Start) -> None:
    s = start_exporter().scrape()
    for kind in ("read", "write"):
        got = total(s, f"cluster_job_{kind}_throughput_bytes",
                    f"cluster_proc_{kind}_throughput_bytes",
                    f"cluster_unattributed_{kind}_throughput_bytes")  # fmt: skip
        assert math.isclose(got, upstream_total(kind)), kind
    got = total(s, JOB_META, PROC_META, LOST_META)
    assert math.isclose(got, upstream_total("metadata"))


def test_max_series_folds_the_smallest_owners_into_other(start_exporter: Start) -> None:
    """--metrics.max-series=1: one owner per job and process family, the others summed
    under __other__ (per MDT for metadata); every sum still adds up to the query's."""
    exporter = start_exporter("--metrics.max-series=1")
    s = exporter.scrape()
    assert s.value(OK) == 1
    other = {"account": "__other__", "user": "__other__"}
    assert s.series(JOB_READ) == {
        key(account="chemistry", user="bob"): 2097152,
        key(**other): 1048576 + 524288 + 1000 + 4096,
    }
    assert s.series(JOB_WRITE) == {
        key(account="physics", user="alice"): 2000000,
        key(**other): 250000.5,
    }
    assert s.series(PROC_READ) == {
        key(proc_name="rsync", group_name="hpc-chem", user_name="bob"): 8192,
        key(proc_name="__other__", group_name="__other__", user_name="__other__"): (
            3000 + 500 + 12 + 13 + 6000
        ),
    }
    assert s.series(PROC_WRITE) == {
        key(proc_name="rsync", group_name="hpc-chem", user_name="bob"): 65536
    }
    # alice leads over both MDTs and keeps both rows; bob's is __other__'s on MDT0000.
    assert s.series(JOB_META) == {
        key(account="physics", user="alice", target="scratch-MDT0000"): 150,
        key(account="physics", user="alice", target="scratch-MDT0001"): 5,
        key(**other, target="scratch-MDT0000"): 7,
    }
    assert s.series(LOST_READ)[key(reason="unknown_job")] == 77777  # reasons stay apart
    assert s.series(FOLDED) == {
        key(family=JOB_META): 1,
        key(family=PROC_META): 0,
        key(family=JOB_READ): 3,
        key(family=PROC_READ): 5,
        key(family=JOB_WRITE): 1,
        key(family=PROC_WRITE): 0,
    }
    for kind in ("read", "write"):
        got = total(s, f"cluster_job_{kind}_throughput_bytes",
                    f"cluster_proc_{kind}_throughput_bytes",
                    f"cluster_unattributed_{kind}_throughput_bytes")  # fmt: skip
        assert math.isclose(got, upstream_total(kind)), kind
    assert math.isclose(total(s, JOB_META, PROC_META, LOST_META), upstream_total("metadata"))
    # The status page ranks the consumers before folding.
    _, page = exporter.get("/")
    assert "(null) / carol" in page and "__other__" not in page.split("Top 10")[1]
    assert "<tr><th>Owners per family (--metrics.max-series)</th><td>1</td></tr>" in page


def test_failed_squeue_keeps_the_sum_under_jobs_unavailable(
    start_exporter: Start, fake_cluster: FakeCluster
) -> None:
    fake_cluster.set("squeue", "rc", "1")
    s = start_exporter().scrape()
    assert s.value(OK) == 0
    assert not s.has(JOB_READ)
    assert (
        s.value(LOST_READ, reason="jobs_unavailable")
        == 1048576 + 524288 + 2097152 + 1000 + 4096 + 77777
    )
    assert math.isclose(total(s, PROC_READ, LOST_READ), upstream_total("read"))


def test_job_that_left_squeue_stays_attributed_for_the_grace_period(
    start_exporter: Start, fake_cluster: FakeCluster
) -> None:
    exporter = start_exporter("--slurm.job-grace-period=10m")
    assert exporter.scrape().value(JOB_READ, account="chemistry", user="bob") == 2097152
    # Job 4250 ends: squeue no longer lists it, but its IO is still in the rate window.
    listing = (FIXTURES / "squeue.out").read_text().replace("4250 chemistry bob\n", "")
    fake_cluster.set("squeue", "out", listing)
    s = exporter.scrape()
    assert s.value(JOB_READ, account="chemistry", user="bob") == 2097152
    assert s.value(LOST_READ, reason="unknown_job") == 77777


def test_without_grace_a_job_that_left_squeue_is_unknown(
    start_exporter: Start, fake_cluster: FakeCluster
) -> None:
    exporter = start_exporter("--slurm.job-grace-period=0")
    exporter.scrape()
    listing = (FIXTURES / "squeue.out").read_text().replace("4250 chemistry bob\n", "")
    fake_cluster.set("squeue", "out", listing)
    s = exporter.scrape()
    assert s.value(JOB_READ, account="chemistry", user="bob") is None
    assert s.value(LOST_READ, reason="unknown_job") == 77777 + 2097152


def test_sacct_names_finished_jobs_once_and_is_cached(
    start_exporter: Start, fake_cluster: FakeCluster
) -> None:
    exporter = start_exporter("--slurm.sacct")
    for _ in range(2):
        s = exporter.scrape()
        assert s.value(OK) == 1
        assert s.value(JOB_READ, account="geology", user="frank") == 77777
        assert s.value(LOST_READ, reason="unknown_job") is None
    calls = [c for c in fake_cluster.calls("sacct") if "JobIDRaw,Account,User" in c["argv"]]
    assert len(calls) == 1, calls  # the answer is cached
    argv = calls[0]["argv"]
    assert argv[argv.index("-j") + 1] == "4999"
    assert calls[0]["LC_ALL"] == "C"


def test_sacct_without_accounting_fails_cleanly(
    start_exporter: Start, fake_cluster: FakeCluster
) -> None:
    fake_cluster.set("sacct", "rc", "1")
    fake_cluster.set("sacct", "err", "Slurm accounting storage is disabled\n")
    exporter = start_exporter("--slurm.sacct")
    s = exporter.scrape()
    assert s.value(OK) == 0
    assert s.value(LOST_READ, reason="unknown_job") == 77777
    assert s.value(JOB_READ, account="physics", user="alice") == 1048576 + 524288
    assert (
        "source sacct failed: sacct: sacct exited with status 1: Slurm accounting storage is disabled"
        in exporter.log()
    )


def test_sacct_missing_binary(start_exporter: Start) -> None:
    exporter = start_exporter("--slurm.sacct", "--slurm.sacct-path=/nonexistent/sacct")
    s = exporter.scrape()
    assert s.value(OK) == 0
    assert s.series(JOB_READ)
    assert "command not found: /nonexistent/sacct" in exporter.log()


def test_enumeration_and_keyed_answers_are_cached(
    start_exporter: Start, fake_cluster: FakeCluster
) -> None:
    exporter = start_exporter("--getent.cache-ttl=10m")
    first, second = exporter.scrape(), exporter.scrape()
    for s in (first, second):
        assert s.value(OK) == 1
        assert (
            s.value(PROC_READ, proc_name="python3", group_name="hpc-ldap", user_name="erin") == 6000
        )
    calls = [c["argv"] for c in fake_cluster.calls("getent")]
    # The enumeration is not repeated within the TTL, nor are keys that were found;
    # keys not found (4242, 3999) are asked again, in case they exist by now.
    assert sorted(calls) == [
        ["group"],
        ["group", "3999"],
        ["group", "3999", "5100"],
        ["passwd"],
        ["passwd", "4242"],
        ["passwd", "4242", "5001"],
    ]


def test_enumeration_every_scrape_with_ttl_0(
    start_exporter: Start, fake_cluster: FakeCluster
) -> None:
    exporter = start_exporter("--getent.cache-ttl=0")
    exporter.scrape()
    exporter.scrape()
    calls = [c["argv"] for c in fake_cluster.calls("getent")]
    assert calls.count(["passwd"]) == 2 and calls.count(["group"]) == 2


def test_new_directory_user_is_resolved_by_key(
    start_exporter: Start, fake_cluster: FakeCluster, fake_prometheus: FakePrometheus
) -> None:
    read = json.loads((FIXTURES / "prometheus-read.json").read_text())
    read["data"]["result"].append({"metric": {"jobid": "vim.5002"}, "value": [1.0, "42"]})
    fake_prometheus.set("read", read)
    fake_cluster.set("getent-passwd", "keyed", "zed:*:5002:5100::/:/bin/sh\n")
    s = start_exporter().scrape()
    assert s.value(PROC_READ, proc_name="vim", group_name="hpc-ldap", user_name="zed") == 42


def test_squeue_json(start_exporter: Start, fake_cluster: FakeCluster) -> None:
    fake_cluster.set("squeue", "out", (FIXTURES / "squeue-22.05.json").read_bytes())
    exporter = start_exporter("--slurm.squeue-json")
    s = exporter.scrape()
    assert s.value(OK) == 1
    assert fake_cluster.calls("squeue")[0]["argv"] == ["--json"]
    assert s.value(JOB_READ, account="physics", user="alice") == 1048576
    assert s.value(JOB_READ, account="(null)", user="carol") == 4096


def test_fs_label(start_exporter: Start, fake_prometheus: FakePrometheus) -> None:
    fake_prometheus.set(
        "read",
        {"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"jobid": "4242", "fs": "scratch"}, "value": [1.0, "100"]},
            {"metric": {"jobid": "4242", "fs": "home"}, "value": [1.0, "20"]},
            {"metric": {"jobid": "rsync.1002", "fs": "home"}, "value": [1.0, "3"]},
            {"metric": {"jobid": "nodot", "fs": "home"}, "value": [1.0, "4"]},
        ]}},
    )  # fmt: skip
    s = start_exporter("--metrics.fs-label").scrape()
    assert s.series(JOB_READ) == {
        key(account="physics", user="alice", fs="scratch"): 100,
        key(account="physics", user="alice", fs="home"): 20,
    }
    assert s.series(PROC_READ) == {
        key(proc_name="rsync", group_name="hpc-chem", user_name="bob", fs="home"): 3
    }
    assert s.series(LOST_READ) == {key(reason="unparsable_jobid", fs="home"): 4}
    assert s.value(JOB_META, account="physics", user="alice", target="scratch-MDT0000",
                   fs="scratch") == 150  # fmt: skip
    assert any("label_replace(" in q for q in fake_prometheus.queries)


def test_configured_jobid_formats(start_exporter: Start, fake_prometheus: FakePrometheus) -> None:
    fake_prometheus.set(
        "read",
        {"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"jobid": "4242:1001:node01"}, "value": [1.0, "100"]},
            {"metric": {"jobid": "rsync:1002:node02"}, "value": [1.0, "7"]},
            {"metric": {"jobid": '"4250"'}, "value": [1.0, "5"]},
        ]}},
    )  # fmt: skip
    s = start_exporter("--lustre.jobid-format=%j:%u:%H", "--lustre.jobid-format=%e:%u:%H",
                       "--lustre.jobid-format=%j").scrape()  # fmt: skip
    assert s.value(JOB_READ, account="physics", user="alice") == 100
    assert s.value(JOB_READ, account="chemistry", user="bob") == 5
    assert s.value(PROC_READ, proc_name="rsync", group_name="hpc-chem", user_name="bob") == 7


def test_unparsable_ids_are_named_once_not_every_scrape(start_exporter: Start) -> None:
    exporter = start_exporter()
    for _ in range(3):
        exporter.scrape()
    assert exporter.log().count("jobid 'nodot' not attributed") == 1
