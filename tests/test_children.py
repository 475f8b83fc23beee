"""Child processes and lookups at scale: output caps through the real CLI, id lists
split to fit the kernel's argument limits, and lookups that are asked again every
scrape (only answers are cached) with a cap per scrape."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Sequence

import pytest

from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.flags import parse_config
from prometheus_cluster_exporter.records import GroupTable, Parsed, PasswdEntry, SlurmJob, UserTable
from prometheus_cluster_exporter.sources.identity import CachedIdentities, GetentSource
from prometheus_cluster_exporter.sources.slurm import CachedJobLookup, SacctSource
from tests.helpers import (
    FAKE_BIN,
    FIXTURES,
    JOB_READ,
    LOST_READ,
    OK,
    PROC_READ,
    Exporter,
    FakeCluster,
    FakePrometheus,
    pid_alive,
)

Start = Callable[..., Exporter]
# The kernel refuses a single argument longer than this (MAX_ARG_STRLEN).
MAX_ARG_STRLEN = 32 * 4096


@pytest.fixture
def cluster(fake_cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    """The fake cluster, for sources run in this process (not through the CLI)."""
    monkeypatch.setenv("FAKE_CLUSTER_DIR", str(fake_cluster.root))
    return fake_cluster


@pytest.fixture
def endless_pids(fake_cluster: FakeCluster) -> Iterator[Path]:
    """Fakes printing forever note their pids here; any left alive are killed after."""
    path = fake_cluster.root / "forever.pids"
    yield path
    if path.exists():
        for pid in map(int, path.read_text().split()):
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def vm_peak_kib(pid: int, field: str = "VmHWM") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field}")


# -- output caps ------------------------------------------------------------------------


def test_endless_squeue_is_killed_at_the_output_cap(
    start_exporter: Start, fake_cluster: FakeCluster, endless_pids: Path
) -> None:
    limit = 8 * 1024 * 1024
    fake_cluster.set("squeue", "forever", "")
    exporter = start_exporter(f"--max-command-output-bytes={limit}")
    s = exporter.scrape()
    assert s.value(OK) == 0
    assert s.series(PROC_READ)  # the rest of the scrape is still exported
    assert not s.series(JOB_READ)
    assert (
        f"source squeue failed: squeue: output exceeds --max-command-output-bytes={limit}; "
        "killed" in exporter.log()
    )
    pids = list(map(int, endless_pids.read_text().split()))
    end = time.monotonic() + 10
    while any(map(pid_alive, pids)) and time.monotonic() < end:
        time.sleep(0.05)
    assert not any(map(pid_alive, pids))
    # The exporter's peak memory stays near its base size plus the cap.
    assert vm_peak_kib(exporter.proc.pid) < 200 * 1024


def test_output_cap_flag() -> None:
    base = ["--promserver=http://p:1"]
    assert parse_config(base).max_command_output_bytes == 256 * 1024 * 1024
    assert parse_config([*base, "--max-command-output-bytes=0"]).max_command_output_bytes == 0
    with pytest.raises(SystemExit) as info:
        parse_config([*base, "--max-command-output-bytes=-1"])
    assert info.value.code == 2


# -- id lists split to fit the argument limits -------------------------------------------


def test_20000_job_ids_are_looked_up_in_calls_that_fit(cluster: FakeCluster) -> None:
    ids = [str(n) for n in range(10_000_000, 10_020_000)]
    cluster.set("sacct", "out", "".join(f"{i}|acct{i}|user{i}\n" for i in ids))
    found = SacctSource(str(FAKE_BIN / "sacct")).lookup_jobs(ids, time.monotonic() + 100)
    assert sorted(found.items) == [SlurmJob(i, f"acct{i}", f"user{i}") for i in ids]
    calls = cluster.calls("sacct")
    assert 1 < len(calls) <= 4
    assert all(max(map(len, c["argv"])) <= 64 * 1024 < MAX_ARG_STRLEN for c in calls)


def test_200000_uids_are_looked_up_in_calls_that_fit(cluster: FakeCluster) -> None:
    cluster.set("getent-passwd", "echo", "")
    cluster.set("getent-group", "echo", "")
    uids = list(range(100_000, 300_000))
    deadline = time.monotonic() + 100
    users = GetentSource(str(FAKE_BIN / "getent")).lookup_users(uids, deadline).items
    assert users == {u: PasswdEntry(f"u{u}", u) for u in uids}
    calls = cluster.calls("getent")
    assert all(len(c["argv"]) <= 4097 and len(" ".join(c["argv"])) <= 65 * 1024 for c in calls)
    assert len(calls) == 49
    groups = GetentSource(str(FAKE_BIN / "getent")).lookup_groups([5, 6], deadline).items
    assert groups == {5: "g5", 6: "g6"}


def test_a_failing_batch_fails_the_lookup(cluster: FakeCluster) -> None:
    ids = [str(n) for n in range(10_000_000, 10_020_000)]
    cluster.set("sacct", "rc", "1")
    cluster.set("sacct", "err", "sacct: error: slurmdbd: Connection refused\n")
    with pytest.raises(SourceError, match="Connection refused"):
        SacctSource(str(FAKE_BIN / "sacct")).lookup_jobs(ids, time.monotonic() + 100)
    assert len(cluster.calls("sacct")) == 1  # the remaining batches are not tried


# -- only answers are cached; a cap per scrape -------------------------------------------


class Directory:
    """An in-memory sacct and getent that records what it was asked."""

    def __init__(self) -> None:
        self.jobs: Dict[str, SlurmJob] = {}
        self.users: UserTable = {}
        self.groups: GroupTable = {}
        self.asked: List[List[object]] = []

    def lookup_jobs(self, jobids: Sequence[str], deadline: float) -> Parsed[List[SlurmJob]]:
        self.asked.append(list(jobids))
        return Parsed([self.jobs[j] for j in jobids if j in self.jobs])

    def lookup_users(self, uids: Sequence[int], deadline: float) -> Parsed[UserTable]:
        self.asked.append(list(uids))
        return Parsed({u: self.users[u] for u in uids if u in self.users})

    def lookup_groups(self, gids: Sequence[int], deadline: float) -> Parsed[GroupTable]:
        self.asked.append(list(gids))
        return Parsed({g: self.groups[g] for g in gids if g in self.groups})


def test_a_job_sacct_did_not_know_is_asked_again_next_time() -> None:
    sacct = Directory()
    lookup = CachedJobLookup(sacct)
    assert lookup.lookup_jobs(["5", "6"], 0).items == []
    sacct.jobs["5"] = SlurmJob("5", "a", "u")  # accounting caught up
    assert lookup.lookup_jobs(["5", "6"], 0).items == [SlurmJob("5", "a", "u")]
    assert lookup.lookup_jobs(["5", "6"], 0).items == [SlurmJob("5", "a", "u")]
    assert sacct.asked == [["6", "5"], ["6", "5"], ["6"]]  # an answer is kept


def test_an_id_getent_did_not_find_is_asked_again_next_time() -> None:
    getent = Directory()
    identities = CachedIdentities(getent, ttl=600)  # type: ignore[arg-type]
    assert identities.lookup_users([7], 0).items == {}
    assert identities.lookup_groups([9], 0).items == {}
    getent.users[7] = PasswdEntry("new", 9)
    getent.groups[9] = "newgrp"
    assert identities.lookup_users([7], 0).items == {7: PasswdEntry("new", 9)}
    assert identities.lookup_groups([9], 0).items == {9: "newgrp"}
    identities.lookup_users([7], 0)
    identities.lookup_groups([9], 0)
    assert getent.asked == [[7], [9], [7], [9]]


def test_job_lookups_per_scrape_are_capped_newest_first(caplog: pytest.LogCaptureFixture) -> None:
    sacct = Directory()
    ids = [str(n) for n in range(1, 25_001)]
    CachedJobLookup(sacct).lookup_jobs(ids, 0)
    assert sacct.asked == [[str(n) for n in range(25_000, 5_000, -1)]]
    assert "only 20000 of the 25000" in caplog.text


def test_uid_lookups_per_scrape_are_capped() -> None:
    getent = Directory()
    identities = CachedIdentities(getent, ttl=600)  # type: ignore[arg-type]
    identities.lookup_users(list(range(30_000)), 0)
    assert getent.asked == [list(range(20_000))]


# -- through the CLI ----------------------------------------------------------------------


def test_new_directory_user_is_attributed_on_the_next_scrape(
    start_exporter: Start, fake_cluster: FakeCluster, fake_prometheus: FakePrometheus
) -> None:
    import json

    read = json.loads((FIXTURES / "prometheus-read.json").read_text())
    read["data"]["result"].append({"metric": {"jobid": "vim.5002"}, "value": [1.0, "42"]})
    fake_prometheus.set("read", read)
    exporter = start_exporter("--getent.cache-ttl=10m")
    first = exporter.scrape()
    assert first.value(PROC_READ, proc_name="vim", group_name="hpc-ldap", user_name="zed") is None
    fake_cluster.set("getent-passwd", "keyed", "zed:*:5002:5100::/:/bin/sh\n")
    second = exporter.scrape()
    assert second.value(PROC_READ, proc_name="vim", group_name="hpc-ldap", user_name="zed") == 42


def test_job_sacct_learns_late_is_attributed_on_the_next_scrape(
    start_exporter: Start, fake_cluster: FakeCluster
) -> None:
    fake_cluster.set("sacct", "out", "")
    exporter = start_exporter("--slurm.sacct")
    assert exporter.scrape().value(LOST_READ, reason="unknown_job") == 77777
    fake_cluster.set("sacct", "out", (FIXTURES / "sacct.out").read_bytes())
    s = exporter.scrape()
    assert s.value(JOB_READ, account="geology", user="frank") == 77777
    assert s.value(LOST_READ, reason="unknown_job") is None
