"""The real CLI process against a fake Prometheus API and fake squeue/getent on PATH."""

from __future__ import annotations

import threading
import time
from typing import Callable

import pytest

from tests.helpers import (
    FOLDED,
    JOB_META,
    JOB_READ,
    JOB_WRITE,
    LOST_META,
    LOST_READ,
    LOST_WRITE,
    OK,
    PROC_META,
    PROC_READ,
    PROC_WRITE,
    Exporter,
    FakeCluster,
    FakePrometheus,
    Scrape,
    key,
    pid_alive,
)

Start = Callable[..., Exporter]


def proc(name: str, group: str, user: str) -> tuple[tuple[str, str], ...]:
    return key(proc_name=name, group_name=group, user_name=user)


def test_exact_values_from_fixtures(
    start_exporter: Start, fake_prometheus: FakePrometheus, fake_cluster: FakeCluster
) -> None:
    exporter = start_exporter()
    s = exporter.scrape()
    assert s.value(OK) == 1
    assert s.series(JOB_READ) == {
        key(account="physics", user="alice"): 1048576 + 524288,
        key(account="chemistry", user="bob"): 2097152,
        key(account="physics", user="bob"): 1000,
        key(account="(null)", user="carol"): 4096,
    }
    assert s.series(PROC_READ) == {
        proc("mpirun", "hpc-physics", "alice"): 3000,
        proc("my.app", "hpc-physics", "alice"): 500,
        proc("rsync", "hpc-chem", "bob"): 8192,
        proc("kworker/86:1", "root", "root"): 12,
        proc('q"uo\\te \u00fc', "hpc-physics", "carol"): 13,
        proc("python3", "hpc-ldap", "erin"): 6000,  # uid and gid resolved by key
    }
    assert s.series(LOST_READ) == {
        key(reason="unknown_job"): 77777,
        key(reason="unparsable_jobid"): 5 + 7 + 3,
        key(reason="unknown_uid"): 9,
        key(reason="unknown_gid"): 11,
    }
    assert s.series(LOST_WRITE) == {key(reason="unknown_job"): 10}
    assert s.series(LOST_META) == {}
    assert s.series(JOB_WRITE) == {
        key(account="physics", user="alice"): 2000000,
        key(account="chemistry", user="bob"): 250000.5,
    }
    assert s.series(PROC_WRITE) == {proc("rsync", "hpc-chem", "bob"): 65536}
    assert s.series(JOB_META) == {
        key(account="physics", user="alice", target="scratch-MDT0000"): 150,
        key(account="physics", user="alice", target="scratch-MDT0001"): 5,
        key(account="chemistry", user="bob", target="scratch-MDT0000"): 7,
    }
    assert s.series(PROC_META) == {
        key(
            proc_name="rsync", group_name="hpc-chem", user_name="bob", target="scratch-MDT0000"
        ): 40,
    }
    assert "OST" not in s.text
    assert not s.has(FOLDED) and "__other__" not in s.text  # no budget by default
    # The label value with a quote, a backslash and unicode is escaped in the text format.
    assert 'proc_name="q\\"uo\\\\te \u00fc"' in s.text

    # Upstream calls are the original's.
    assert sorted(set(fake_prometheus.queries)) == sorted(
        {
            "sum by(jobid)(irate(lustre_job_read_bytes_total[1m]) != 0)",
            "sum by(jobid)(irate(lustre_job_write_bytes_total[1m]) != 0)",
            "round(sum by(target,jobid)(irate(lustre_job_stats_total"
            '{target=~".*-MDT[0-9a-fA-F]{4}"}[1m]) >= 1))',
        }
    )
    # The original's one listing; then, for the top jobs (on by default), their partition
    # and name, asked apart.
    listing, *details = fake_cluster.calls("squeue")
    assert listing == {"argv": ["-a", "-h", "-o", "%A %a %u"], "LC_ALL": "C"}
    assert [c["argv"][:3] for c in details] == [["-a", "-h", "-j"]]
    assert sorted(c["argv"] for c in fake_cluster.calls("getent")) == [
        ["group"],
        ["group", "3999", "5100"],
        ["passwd"],
        ["passwd", "4242", "5001"],
    ]
    # Skipped input is summarised once per scrape, not a crash.
    log = exporter.log()
    assert log.count("skipped malformed entries this scrape") == 1
    assert "jobid 'nodot' not attributed (unparsable_jobid)" in log
    assert "jobid 'cp.4242' not attributed (unknown_uid): uid 4242 is unknown to getent" in log
    assert "jobid 'tar.1005' not attributed (unknown_gid): primary gid 3999" in log


def test_go_style_single_dash_flags(start_exporter: Start, fake_prometheus: FakePrometheus) -> None:
    exporter = start_exporter(
        "-promserver",
        fake_prometheus.url,
        "-timeout",
        "5",
        "-timerange",
        "30s",
        "-log",
        "DEBUG",
        promserver=False,
    )
    s = exporter.scrape()
    assert s.value(OK) == 1
    assert "sum by(jobid)(irate(lustre_job_read_bytes_total[30s]) != 0)" in fake_prometheus.queries
    assert "DEBUG" in exporter.log()


def test_hung_squeue_is_killed_and_the_scrape_stays_bounded(
    start_exporter: Start, fake_cluster: FakeCluster
) -> None:
    # The other sources are Python fakes that run one after another: the deadline leaves
    # them room on a loaded machine.
    fake_cluster.set("squeue", "sleep", "120")
    exporter = start_exporter("--timeout=6")
    started = time.monotonic()
    s = exporter.scrape()
    elapsed = time.monotonic() - started
    assert elapsed < 6 + 5, f"scrape took {elapsed:.1f}s with --timeout=6"
    assert s.value(OK) == 0
    assert not s.has(JOB_READ)
    assert s.series(PROC_READ)  # unaffected metrics are still exported
    assert "source squeue failed" in exporter.log() and "did not finish" in exporter.log()
    pids = fake_cluster.pids("squeue")
    assert len(pids) == 2  # the fake squeue and its sleeping child
    end = time.monotonic() + 5
    while any(pid_alive(p) for p in pids) and time.monotonic() < end:
        time.sleep(0.05)
    assert not any(pid_alive(p) for p in pids), "a child of the timed-out squeue survived"
    # The next scrape works normally.
    fake_cluster.set("squeue", "sleep", None)
    again = exporter.scrape()
    assert again.value(OK) == 1
    assert again.series(JOB_READ)


def test_overlapping_scrape_gets_scrape_ok_0(
    start_exporter: Start, fake_cluster: FakeCluster
) -> None:
    fake_cluster.set("squeue", "sleep", "3")
    exporter = start_exporter("--timeout=20")
    first: list[Scrape] = []
    thread = threading.Thread(target=lambda: first.append(exporter.scrape()))
    thread.start()
    try:
        end = time.monotonic() + 10
        while not fake_cluster.pids("squeue") and time.monotonic() < end:
            time.sleep(0.05)
        assert fake_cluster.pids("squeue"), "first collect did not start"
        second = exporter.scrape(timeout=2)
        assert second.value(OK) == 0
        assert not second.has(JOB_READ) and not second.has(PROC_READ)
    finally:
        thread.join(30)
    assert first[0].value(OK) == 1
    assert "Collect is still active... - Skipping now" in exporter.log()
    assert len([c for c in fake_cluster.calls("squeue") if "-j" not in c["argv"]]) == 1


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            b'{"status":"error","errorType":"execution","error":"query timed out"}',
            422,
            "HTTP 422: query timed out",
        ),
        (b"<html>Internal Server Error</html>", 500, "HTTP 500"),
        (b'{"status":"success","data":{"resultType":"vector","res', 200, "not valid JSON"),
        (b'{"status":"error","error":"bad"}', 200, "query status 'error'"),
    ],
)
def test_bad_read_answer_costs_only_read_metrics(
    start_exporter: Start, fake_prometheus: FakePrometheus, body: bytes, status: int, message: str
) -> None:
    fake_prometheus.set("read", body, status=status)
    exporter = start_exporter()
    s = exporter.scrape()
    assert s.value(OK) == 0
    assert not s.has(JOB_READ) and not s.has(PROC_READ)
    assert s.series(JOB_WRITE) and s.series(PROC_WRITE) and s.series(JOB_META)
    assert "source read query failed" in exporter.log()
    assert message in exporter.log()
    fake_prometheus.load_fixtures()
    assert exporter.scrape().value(OK) == 1


def test_slow_prometheus_is_bounded(start_exporter: Start, fake_prometheus: FakePrometheus) -> None:
    fake_prometheus.set("write", fake_prometheus.answers["write"].body, delay=60)
    exporter = start_exporter("--timeout=6")
    started = time.monotonic()
    s = exporter.scrape()
    assert time.monotonic() - started < 6 + 5
    assert s.value(OK) == 0
    assert not s.has(JOB_WRITE)
    assert s.series(JOB_READ)
    assert "source write query failed" in exporter.log()


def test_unreachable_prometheus(start_exporter: Start, fake_prometheus: FakePrometheus) -> None:
    url = fake_prometheus.url
    fake_prometheus.stop()
    exporter = start_exporter(f"--promserver={url}", "--timeout=3", promserver=False)
    s = exporter.scrape()
    assert s.value(OK) == 0
    assert not s.has(JOB_READ) and not s.has(JOB_META)
    assert "connection refused" in exporter.log()


def test_no_running_jobs_keeps_proc_metrics_and_scrape_ok(
    start_exporter: Start, fake_cluster: FakeCluster
) -> None:
    fake_cluster.set("squeue", "out", "")
    s = start_exporter().scrape()
    assert s.value(OK) == 1
    assert s.series(JOB_READ) == {}
    assert s.series(PROC_READ)


def test_missing_squeue_binary(start_exporter: Start) -> None:
    exporter = start_exporter("--slurm.squeue-path=/nonexistent/squeue")
    s = exporter.scrape()
    assert s.value(OK) == 0
    assert s.series(PROC_READ)
    assert "command not found: /nonexistent/squeue" in exporter.log()


def test_failing_getent(start_exporter: Start, fake_cluster: FakeCluster) -> None:
    fake_cluster.set("getent-group", "rc", "2")
    exporter = start_exporter()
    s = exporter.scrape()
    assert s.value(OK) == 0
    assert not s.has(PROC_READ) and not s.has(PROC_META)
    assert s.series(JOB_READ)
    assert "source getent group failed" in exporter.log()


def test_garbage_from_every_source_never_loses_the_scrape(
    start_exporter: Start, fake_cluster: FakeCluster, fake_prometheus: FakePrometheus
) -> None:
    fake_cluster.set("squeue", "out", b"\x00\xff garbage\n\n4242 physics alice\n:::\n")
    fake_cluster.set("getent-passwd", "out", b"\xff\xfe\n::::\nalice:x:1001:2001::/:/bin/sh\n")
    fake_prometheus.set(
        "metadata",
        {"status": "success", "data": {"resultType": "vector", "result": [
            None, 1, "x", {}, {"metric": {"jobid": "4242", "target": "s-MDT0000"}, "value": [1, "2"]},
        ]}},
    )  # fmt: skip
    exporter = start_exporter()
    s = exporter.scrape()
    assert s.value(OK) == 1  # bad entries are skipped, the good ones used
    assert s.value(JOB_READ, account="physics", user="alice") == 1048576
    assert s.series(JOB_META) == {key(account="physics", user="alice", target="s-MDT0000"): 2}
    assert "skipped malformed entries this scrape" in exporter.log()


def test_output_with_no_usable_entry_is_a_failing_source(
    start_exporter: Start, fake_cluster: FakeCluster, fake_prometheus: FakePrometheus
) -> None:
    fake_cluster.set("squeue", "out", b"slurm_load_jobs error: Socket timed out\nretrying\n")
    fake_prometheus.set(
        "metadata",
        {"status": "success", "data": {"resultType": "vector", "result": [None, 1, "x", {}]}},
    )
    exporter = start_exporter()
    s = exporter.scrape()
    assert s.value(OK) == 0
    assert not s.has(JOB_READ) and not s.has(JOB_META)
    assert s.series(PROC_READ)
    log = exporter.log()
    assert "source squeue failed: squeue: none of the 2 entries has the expected form" in log
    assert "source metadata query failed: metadata query: none of the 4 entries" in log


def test_landing_page_and_404(start_exporter: Start) -> None:
    exporter = start_exporter()
    status, page = exporter.get("/")
    assert status == 200
    assert '<a href="/metrics">' in page
    status, _ = exporter.get("/nope")
    assert status == 404


def test_demo_mode_needs_no_prometheus_or_slurm(
    start_exporter: Start, fake_cluster: FakeCluster
) -> None:
    exporter = start_exporter("--demo", promserver=False)
    s = exporter.scrape()
    assert s.value(OK) == 1
    assert len(s.series(JOB_READ)) > 5
    assert len(s.series(PROC_WRITE)) > 1
    assert len(s.series(JOB_META)) > 5
    assert fake_cluster.calls("squeue") == []  # nothing external was run
