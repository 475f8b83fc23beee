"""The fault matrix: every way an upstream can fail, one at a time, through the real CLI.

For each fault: a clear log line, scrape_ok 0, the metrics that do not need the failing
source still exported, nothing left behind (child processes, threads, sockets), and full
recovery on the next scrape once the fault is gone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, List, Tuple

import pytest

from tests.helpers import (
    Exporter,
    FakeCluster,
    FakePrometheus,
    child_pids,
    pid_alive,
    socket_count,
    thread_count,
)

Start = Callable[..., Exporter]
JOB = ("cluster_job_read_throughput_bytes", "cluster_job_write_throughput_bytes",
       "cluster_job_metadata_operations")  # fmt: skip
PROC = ("cluster_proc_read_throughput_bytes", "cluster_proc_write_throughput_bytes",
        "cluster_proc_metadata_operations")  # fmt: skip
READ = ("cluster_job_read_throughput_bytes", "cluster_proc_read_throughput_bytes",
        "cluster_unattributed_read_throughput_bytes")  # fmt: skip
ALL_DATA = (*JOB, *PROC)
HUGE = 100 * 1024 * 1024
MAX_THREADS = 20  # main + accept + 8 HTTP workers + 6 source workers + a few


@dataclass
class Fault:
    name: str
    apply: Callable[[FakePrometheus, FakeCluster], None]
    log: str
    lost: Tuple[str, ...]
    kept: Tuple[str, ...]
    args: List[str] = field(default_factory=list)
    #: The fault is in the exporter's own settings: a second exporter is started with these.
    faulty_args: List[str] = field(default_factory=list)


def read_answer(body: bytes, status: int = 200, delay: float = 0.0) -> Callable[..., None]:
    return lambda prom, cluster: prom.set("read", body, status=status, delay=delay)


def command(name: str, suffix: str, value: str | bytes) -> Callable[..., None]:
    return lambda prom, cluster: cluster.set(name, suffix, value)


def stop_prometheus(prom: FakePrometheus, cluster: FakeCluster) -> None:
    prom.stop()


FAULTS = [
    Fault("upstream refused", stop_prometheus, "connection refused", ALL_DATA,
          ("cluster_exporter_stage_execution_seconds",)),
    Fault("upstream times out", read_answer(b"{}", delay=60), "source read query failed", READ,
          ("cluster_job_write_throughput_bytes", "cluster_proc_write_throughput_bytes"),
          ["--timeout=6"]),
    Fault("upstream HTTP 500", read_answer(b"internal error", 500), "answered HTTP 500", READ,
          ("cluster_job_write_throughput_bytes",)),
    Fault("non-success JSON", read_answer(b'{"status":"error","errorType":"timeout","error":"x"}'),
          "query status 'error'", READ, ("cluster_job_write_throughput_bytes",)),
    Fault("truncated JSON", read_answer(b'{"status":"success","data":{"resultType":"vec'),
          "not valid JSON", READ, ("cluster_job_write_throughput_bytes",)),
    Fault("100 MB garbage answer", read_answer(b"x" * HUGE), "not valid JSON", READ,
          ("cluster_job_write_throughput_bytes",)),
    Fault("100 MB answer over the cap", read_answer(b"[" + b" " * HUGE + b"]"),
          "exceeds --max-response-bytes=10000000", READ, ("cluster_job_write_throughput_bytes",),
          ["--max-response-bytes=10000000"]),
    Fault("squeue hangs", command("squeue", "sleep", "120"), "did not finish", JOB, PROC,
          ["--timeout=6"]),
    Fault("squeue exits non-zero", command("squeue", "rc", "1"), "squeue exited with status 1",
          JOB, PROC),
    Fault("squeue prints garbage", command("squeue", "out", b"\x00\xffgarbage\x07\n??\n"),
          "squeue: none of the 2 entries", JOB, PROC),
    Fault("squeue missing", lambda p, c: None, "command not found: /nonexistent/squeue", JOB, PROC,
          faulty_args=["--slurm.squeue-path=/nonexistent/squeue"]),
    Fault("getent hangs", command("getent-passwd", "sleep", "120"), "did not finish", PROC, JOB,
          ["--timeout=6"]),
    Fault("getent fails", command("getent-group", "rc", "2"), "getent exited with status 2", PROC,
          JOB),
    Fault("getent missing", lambda p, c: None, "command not found: /nonexistent/getent", PROC, JOB,
          faulty_args=["--getent.path=/nonexistent/getent"]),
]  # fmt: skip


def heal(fault: Fault, prom: FakePrometheus, cluster: FakeCluster) -> None:
    prom.load_fixtures()
    cluster.load_fixtures()
    for name in ("squeue", "getent-passwd", "getent-group"):
        for suffix in ("sleep", "rc"):
            cluster.set(name, suffix, None)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault(
    fault: Fault, start_exporter: Start, fake_prometheus: FakePrometheus, fake_cluster: FakeCluster
) -> None:
    # Caches off: every scrape must really ask every source again.
    exporter = start_exporter("--getent.cache-ttl=0", *fault.args)
    healthy = exporter.scrape()
    assert healthy.value("cluster_exporter_scrape_ok") == 1
    sockets_before = socket_count(exporter.proc.pid)

    fault.apply(fake_prometheus, fake_cluster)
    if fault.name == "upstream refused":
        exporter = start_exporter(f"--promserver={fake_prometheus.url}", *fault.args,
                                  promserver=False)  # fmt: skip
    elif fault.faulty_args:
        exporter = start_exporter("--getent.cache-ttl=0", *fault.faulty_args)
    started = time.monotonic()
    broken = exporter.scrape()
    assert time.monotonic() - started < 15 + 5, "the scrape must stay bounded"
    assert broken.value("cluster_exporter_scrape_ok") == 0
    assert fault.log in exporter.log(), exporter.log()
    assert "ERROR" in exporter.log()
    for family in fault.lost:
        assert not broken.has(family), f"{family} needs the failing source"
    for family in fault.kept:
        assert broken.series(family), f"{family} does not need the failing source"

    # Nothing left behind by the failed scrape.
    pid = exporter.proc.pid
    assert child_pids(pid) == [], "a child process outlived the scrape"
    for command_pid in fake_cluster.pids("squeue") + fake_cluster.pids("getent-passwd"):
        end = time.monotonic() + 5
        while pid_alive(command_pid) and time.monotonic() < end:
            time.sleep(0.05)
        assert not pid_alive(command_pid), "a grandchild of a killed command survived"
    assert thread_count(pid) <= MAX_THREADS

    if fault.name == "upstream refused" or fault.faulty_args:
        return  # the fault is in the exporter's own settings; nothing to heal
    heal(fault, fake_prometheus, fake_cluster)
    recovered = exporter.scrape()
    assert recovered.value("cluster_exporter_scrape_ok") == 1
    for family in ALL_DATA:
        assert recovered.series(family), family
    assert thread_count(pid) <= MAX_THREADS
    assert socket_count(pid) <= sockets_before + 3, "sockets are leaking"
    assert child_pids(pid) == []
