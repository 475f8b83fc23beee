"""--metrics.top-jobs: the jobs with the most read + write throughput, by job id, name
and partition: squeue and sacct asked for them in the same single call, the ranking
from the attributed answers, the families, the status page and their failure modes."""

from __future__ import annotations

import logging
import time
from typing import Callable, Dict, List, Optional, Sequence

import pytest

from prometheus_cluster_exporter import attribution as attr
from prometheus_cluster_exporter import idsort
from prometheus_cluster_exporter.collector import ClusterCollector
from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.exposition import render
from prometheus_cluster_exporter.families import METADATA, READ, WRITE
from prometheus_cluster_exporter.jobid import JobidGrammar
from prometheus_cluster_exporter.records import (
    JobidRate,
    Parsed,
    PasswdEntry,
    RateColumn,
    SlurmJob,
    TargetRate,
)
from prometheus_cluster_exporter.scrapestate import ScrapeState
from prometheus_cluster_exporter.sources.jobdetails import MAX_NAME_CHARS, parse_details
from prometheus_cluster_exporter.sources.slurm import (
    SqueueSource,
    parse_squeue,
    parse_squeue_json,
)
from prometheus_cluster_exporter.topjobs import MAX_LABEL_CHARS, TopJob, top_jobs
from tests.helpers import FIXTURES, Exporter, FakeCluster, FakePrometheus, Scrape, key

Start = Callable[..., Exporter]
TOP_READ = "cluster_top_job_read_throughput_bytes"
TOP_WRITE = "cluster_top_job_write_throughput_bytes"
TOP_META = "cluster_top_job_metadata_operations"
TOP = (TOP_READ, TOP_WRITE, TOP_META)

# -- the names, asked apart --------------------------------------------------------------


def test_details_lines_count_only_for_asked_ids_answered_once() -> None:
    long_name = "x" * 300
    out = (
        "4242|batch|relax the  lattice\n"
        "4243|gpu|\r\n"
        f"4244|long|{long_name}\n"
        "4245|debug|a|b \x1e4246|batch|split?\n"
        "9999|batch|not asked\n"
        "junk\n"
    ).encode()
    found = parse_details(out, {"4242", "4243", "4244", "4245", "4246"})
    assert found == {
        "4242": ("batch", "relax the  lattice"),
        "4243": ("gpu", ""),
        "4244": ("long", long_name[:MAX_NAME_CHARS]),
        # Only a newline ends a line: the name keeps its \x1e and what follows.
        "4245": ("debug", "a|b \x1e4246|batch|split?"),
    }


def test_a_name_forging_a_line_gets_no_details() -> None:
    # The job 4250 is named "x\n4242|evil|forged": 4242 is answered twice, so neither is
    # taken (at worst a user blanks another top job's name, never its owner or numbers).
    out = b"4242|batch|relax\n4250|gpu|x\n4242|evil|forged\n"
    assert parse_details(out, {"4242", "4250"}) == {"4250": ("gpu", "x")}


def test_the_job_listing_never_holds_a_name() -> None:
    assert SqueueSource("squeue").argv == ["squeue", "-a", "-h", "-o", "%A %a %u"]
    # A name may not split a listing line at \x1e or \u2028 either.
    parsed = parse_squeue(b"4242 physics alice\n4243 chem bob\x1e4244 evil x\n")
    assert [job.jobid for job in parsed.items] == ["4242"] and parsed.skipped == 1


def test_squeue_json_gives_partition_and_name() -> None:
    out = (
        b'{"jobs":[{"job_id":5,"account":"a","user_name":"u","partition":"gpu","name":" n m "},'
        b'{"job_id":6,"account":"a","user_name":"u","partition":7,"name":["odd"]},'
        b'{"job_id":8,"account":"a","user_name":"v"}]}'
    )
    parsed = parse_squeue_json(out)
    # A partition or name of another type is left empty: the job still counts.
    assert parsed.items == [
        SlurmJob("5", "a", "u", "gpu", "n m"),
        SlurmJob("6", "a", "u"),
        SlurmJob("8", "a", "v"),
    ]


def test_a_het_leader_keeps_its_own_listing() -> None:
    out = (
        b'{"jobs":[{"job_id":70,"het_job_id":70,"account":"a","user_name":"u","partition":"cpu"},'
        b'{"job_id":71,"het_job_id":70,"account":"a","user_name":"u","partition":"gpu"},'
        b'{"job_id":81,"het_job_id":80,"account":"b","user_name":"w","partition":"gpu"},'
        b'{"job_id":82,"het_job_id":80,"account":"b","user_name":"w","partition":"big"}]}'
    )
    jobs = {}
    for job in parse_squeue_json(out).items:
        assert job.jobid not in jobs, "one listing per id"
        jobs[job.jobid] = job
    assert jobs["70"].partition == "cpu"  # not its component's
    assert jobs["80"].partition == "gpu"  # no leader listed: its first component


# -- the ranking ---------------------------------------------------------------------------

JOBS = {
    "10": SlurmJob("10", "physics", "alice", "batch", "relax"),
    "11": SlurmJob("11", "chemistry", "bob", "gpu", "md"),
    "12": SlurmJob("12", "biology", "carol", "long", "asm"),
    "13": SlurmJob("13", "biology", "carol", "long", "idle"),
}
USERS = {1001: PasswdEntry("bob", 2001)}
GROUPS = {2001: "hpc"}


def rank(
    count: int,
    read: Sequence[RateColumn],
    write: Sequence[RateColumn],
    metadata: Optional[Sequence[RateColumn]] = None,
    jobs: Dict[str, SlurmJob] = JOBS,
    formats: Sequence[str] = ("%j", "%j:%u:%H", "%e.%u"),
) -> List[TopJob]:
    """The ranking as the collector does it: plain numbers looked up, the other ids
    parsed, all owned, then ranked (every id parsed where %j is not the first form)."""
    grammar = JobidGrammar(formats)
    listed = idsort.listed_jobs(jobs) if grammar.numbers_are_jobs else {}
    ids = {i for c in [*read, *write, *(metadata or ())] for i in c.jobids}
    refs = {i: grammar.parse(i) for i in ids if i not in listed}
    table = attr.owner_table(refs, jobs, USERS, GROUPS, listed or None)
    return top_jobs(count, read, write, metadata, table, refs, jobs, listed or None)


def col(ids: List[str], values: List[float], *extra: str) -> RateColumn:
    return RateColumn(tuple(extra), ids, values)


def test_a_job_under_several_ids_counts_once_with_all_of_its_io() -> None:
    read = [col(["10", "11:1001:n1", "11:1001:n2", "12", "999", "cp.1001"], [5, 3, 3, 1, 100, 50])]
    write = [col(["10", "11:1001:n1"], [4, 1])]
    top = rank(10, read, write)
    # 999 is a job nobody lists and cp.1001 a process: neither is ranked; 13 did no IO.
    assert [(t.jobid, t.read, t.write) for t in top] == [
        ("10", 5, 4),
        ("11", 6, 1),
        ("12", 1, 0),
    ]
    assert top[0][:5] == ("10", "physics", "alice", "relax", "batch")
    assert [t.jobid for t in rank(2, read, write)] == ["10", "11"]
    assert rank(0, read, write) == []


@pytest.mark.parametrize("formats", [("%j", "%j:%u:%H", "%e.%u"), ("%e.%u", "%j:%u:%H", "%j")])
def test_plain_and_parsed_ids_of_one_job_add_up(formats: Sequence[str]) -> None:
    # "0010" is job 10 zero-padded (always parsed); with %j first "10" is looked up, else
    # parsed too: the same sums either way.
    read = [col(["10", "0010", "11:1001:n1", "12", "cp.1001"], [5, 2, 3, 1, 50]),
            col(["10", "11:1001:n2"], [1, 5], "home")]  # fmt: skip
    write = [col(["0010", "12"], [1, 6])]
    metadata = [col(["0010", "11:1001:n9", "12", "cp.1001"], [2, 3, 4, 5], "fs-MDT0000")]
    top = rank(10, read, write, metadata, formats=formats)
    assert [(t.jobid, t.read, t.write, t.metadata) for t in top] == [
        ("10", 8, 1, 2),
        ("11", 8, 0, 3),
        ("12", 1, 6, 4),
    ]
    assert [t.jobid for t in rank(1, read, write, metadata, formats=formats)] == ["10"]


def test_metadata_is_summed_over_mdts_and_ids_without_read_or_write() -> None:
    read = [col(["10", "11"], [5, 4])]
    metadata = [
        col(["10", "11:1001:n3", "12"], [2, 7, 9], "fs-MDT0000"),
        col(["10"], [3], "fs-MDT0001"),
    ]
    top = rank(2, read, [], metadata)
    assert [(t.jobid, t.metadata) for t in top] == [("10", 5), ("11", 7)]
    assert all(t.metadata is None for t in rank(2, read, [], None))


def test_fs_columns_are_summed_and_ties_go_to_the_newer_job() -> None:
    read = [col(["10", "11"], [2, 3], "scratch"), col(["10"], [2], "home")]
    write = [col(["12"], [4], "home")]
    assert [(t.jobid, t.read + t.write) for t in rank(3, read, write)] == [
        ("12", 4),
        ("10", 4),
        ("11", 3),
    ]
    assert [t.jobid for t in rank(1, read, write)] == ["12"]


def test_label_values_are_bounded() -> None:
    long = "n" * 500
    jobs = {"10": SlurmJob("10", "a" * 300, "alice", "p" * 300, long)}
    (job,) = rank(5, [col(["10"], [1])], [], None, jobs)
    assert job.job_name == long  # kept as known; cut where it becomes a label
    assert [len(value) for value in job.labels] == [2, MAX_LABEL_CHARS, 5] + [MAX_LABEL_CHARS] * 2


# -- in the collector ----------------------------------------------------------------------


class Lustre:
    def __init__(self) -> None:
        self.fail: set[str] = set()

    def _check(self, kind: str) -> None:
        if kind in self.fail:
            raise SourceError(f"{kind} query: answered HTTP 500")

    def read_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[List[JobidRate]]:
        self._check("read")
        return Parsed([JobidRate("10", 10.0, ""), JobidRate("11", 1.0, "")])

    def write_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[List[JobidRate]]:
        self._check("write")
        return Parsed([JobidRate("11", 20.0, ""), JobidRate("cp.1001", 4.0, "")])

    def metadata_rates(
        self, deadline: float, at: Optional[float] = None
    ) -> Parsed[List[TargetRate]]:
        self._check("metadata")
        return Parsed([TargetRate("10", 3.0, "fs-MDT0000", "fs")])


class Jobs:
    def __init__(self) -> None:
        self.error: Optional[Exception] = None
        self.listing = list(JOBS.values())

    def jobs(self, deadline: float) -> Parsed[List[SlurmJob]]:
        if self.error is not None:
            raise self.error
        return Parsed(list(self.listing))


class Identities:
    def users(self, deadline: float) -> Parsed[Dict[int, PasswdEntry]]:
        return Parsed(dict(USERS))

    def groups(self, deadline: float) -> Parsed[Dict[int, str]]:
        return Parsed(dict(GROUPS))

    def lookup_users(self, uids: Sequence[int], deadline: float) -> Parsed[Dict[int, PasswdEntry]]:
        return Parsed({})

    def lookup_groups(self, gids: Sequence[int], deadline: float) -> Parsed[Dict[int, str]]:
        return Parsed({})


def collect(lustre: Lustre, jobs: Jobs, top: int = 10) -> tuple[Scrape, ClusterCollector]:
    collector = ClusterCollector(lustre, jobs, Identities(), timeout=10.0, top_jobs=top)
    return Scrape(render(collector.scrape()).decode()), collector


def test_the_collector_exports_the_top_jobs() -> None:
    s, collector = collect(Lustre(), Jobs())
    bob = key(jobid="11", account="chemistry", user="bob", job_name="md", partition="gpu")
    alice = key(jobid="10", account="physics", user="alice", job_name="relax", partition="batch")
    assert s.series(TOP_READ) == {bob: 1.0, alice: 10.0}
    assert s.series(TOP_WRITE) == {bob: 20.0, alice: 0.0}
    assert s.series(TOP_META) == {bob: 0.0, alice: 3.0}
    assert collector.last is not None
    assert [t.jobid for t in collector.last.top_jobs] == ["11", "10"]
    stages = {dict(k)["name"] for k in s.series("cluster_exporter_stage_execution_seconds")}
    assert "build_top_jobs_metrics" in stages
    # The job families still hold what they held: the top jobs are additive.
    assert s.value("cluster_job_write_throughput_bytes", account="chemistry", user="bob") == 20


def test_metadata_by_operation_is_summed_for_the_top_jobs() -> None:
    class ByOperation(Lustre):
        def metadata_rates(
            self, deadline: float, at: Optional[float] = None
        ) -> Parsed[List[TargetRate]]:
            return Parsed([TargetRate("10", 3.0, "fs-MDT0000", "fs", "open"),
                           TargetRate("10", 2.0, "fs-MDT0000", "fs", "close"),
                           TargetRate("11", 4.0, "fs-MDT0001", "fs", "getattr")])  # fmt: skip

    collector = ClusterCollector(
        ByOperation(), Jobs(), Identities(), timeout=10.0, top_jobs=5, metadata_by_operation=True
    )
    s = Scrape(render(collector.scrape()).decode())
    assert {dict(k)["jobid"]: v for k, v in s.series(TOP_META).items()} == {"10": 5.0, "11": 4.0}
    assert s.value("cluster_job_metadata_operations", account="physics", user="alice",
                   target="fs-MDT0000", operation="close") == 2  # fmt: skip


class Details:
    def __init__(self) -> None:
        self.asked: List[List[str]] = []
        self.error: Optional[Exception] = None

    def details(self, jobids: Sequence[str], deadline: float) -> Parsed[Dict[str, tuple]]:
        self.asked.append(list(jobids))
        if self.error is not None:
            raise self.error
        return Parsed({"11": ("gpu", "md run"), "12": ("long", "never asked")})


def test_the_listing_s_unnamed_top_jobs_are_named_apart() -> None:
    jobs = Jobs()
    jobs.listing = [SlurmJob(j.jobid, j.account, j.user) for j in JOBS.values()]  # as text
    details = Details()
    collector = ClusterCollector(
        Lustre(), jobs, Identities(), timeout=10.0, top_jobs=10, job_details=details
    )
    s = Scrape(render(collector.scrape()).decode())
    assert details.asked == [["11", "10"]]  # the top jobs only, largest first
    names = {dict(k)["jobid"]: (dict(k)["partition"], dict(k)["job_name"])
             for k in s.series(TOP_READ)}  # fmt: skip
    assert names == {"11": ("gpu", "md run"), "10": ("", "")}
    stages = {dict(k)["name"] for k in s.series("cluster_exporter_stage_execution_seconds")}
    assert "retrieve_top_job_details" in stages and s.value("cluster_exporter_scrape_ok") == 1
    # A failing details call costs the names only.
    details.error = SourceError("squeue (top jobs): exited with status 2")
    s = Scrape(render(collector.scrape()).decode())
    assert s.value("cluster_exporter_scrape_ok") == 0
    assert {dict(k)["job_name"] for k in s.series(TOP_WRITE)} == {""}
    assert len(s.series(TOP_WRITE)) == 2 and s.has("cluster_job_read_throughput_bytes")


def test_top_jobs_off_and_failures_cost_only_them() -> None:
    s, _ = collect(Lustre(), Jobs(), top=0)
    assert not [f for f in TOP if s.has(f)]
    assert "build_top_jobs_metrics" not in s.text
    lustre = Lustre()
    lustre.fail = {"metadata"}
    s, _ = collect(lustre, Jobs())
    assert s.has(TOP_READ) and s.has(TOP_WRITE) and not s.has(TOP_META)
    for failing in ("read", "write"):
        lustre.fail = {failing}
        s, collector = collect(lustre, Jobs())
        assert not [f for f in TOP if s.has(f)], failing
        assert collector.last is not None and collector.last.top_jobs == ()
    jobs = Jobs()
    jobs.error = SourceError("squeue: exit status 1")
    s, _ = collect(Lustre(), jobs)
    assert not [f for f in TOP if s.has(f)]
    assert s.value("cluster_unattributed_read_throughput_bytes", reason="jobs_unavailable") == 11


def test_no_top_jobs_past_the_collects_end(caplog: pytest.LogCaptureFixture) -> None:
    collector = ClusterCollector(Lustre(), Jobs(), Identities(), timeout=10.0, top_jobs=5)
    now = time.monotonic()
    scrape = ScrapeState(now - 10, now - 5)
    scrape.jobs = JOBS
    scrape.listed = idsort.listed_jobs(JOBS)
    scrape.answers = {READ: [col(["10"], [1])], WRITE: [], METADATA: []}  # type: ignore[dict-item]
    table = attr.owner_table({}, JOBS, USERS, GROUPS, idsort.listed_jobs(JOBS))
    results = {q: attr.Attribution.of(table) for q in (READ, WRITE, METADATA)}
    with caplog.at_level(logging.WARNING):
        # Attribution used up all the time it had: no ranking.
        assert collector.top_step(scrape, results, table, now - 1) is None
    assert "No top jobs this scrape" in caplog.text
    found = collector.top_step(scrape, results, table, time.monotonic() + 60)
    assert found is not None and [t.jobid for t in found] == ["10"]


# -- through the command line --------------------------------------------------------------

DETAILS = (
    "4242|batch|relax the lattice\n4243|batch|post\n4250|gpu|md run\n4251|batch|\n4260|long|asm\n"
)


def details_calls(fake_cluster: FakeCluster, command: str) -> List[List[str]]:
    return [c["argv"] for c in fake_cluster.calls(command) if "%A|%P|%j" in c["argv"]
            or "JobIDRaw,Partition,JobName" in c["argv"]]  # fmt: skip


def test_top_jobs_from_the_fixtures(
    start_exporter: Start, fake_cluster: FakeCluster, fake_prometheus: FakePrometheus
) -> None:
    fake_cluster.set("squeue-details", "out", DETAILS)
    fake_cluster.set("sacct-details", "out", "4999|debug|late|job\n")
    exporter = start_exporter("--slurm.sacct")
    s = exporter.scrape()
    assert s.value("cluster_exporter_scrape_ok") == 1
    reads = {dict(k)["jobid"]: v for k, v in s.series(TOP_READ).items()}
    writes = {dict(k)["jobid"]: v for k, v in s.series(TOP_WRITE).items()}
    metas = {dict(k)["jobid"]: v for k, v in s.series(TOP_META).items()}
    assert reads == {"4242": 1048576, "4250": 2097152, "4243": 524288, "4260": 4096,
                     "4251": 1000, "4999": 77777}  # fmt: skip
    assert writes == {"4242": 2000000, "4250": 250000.5, "4243": 0, "4260": 0, "4251": 0,
                      "4999": 10}  # fmt: skip
    assert metas == {"4242": 125, "4250": 7, "4243": 30, "4260": 0, "4251": 0, "4999": 0}
    first = key(jobid="4242", account="physics", user="alice", job_name="relax the lattice",
                partition="batch")  # fmt: skip
    assert s.series(TOP_READ)[first] == 1048576
    # A finished job squeue no longer lists: sacct supplies its name and partition.
    ended = key(jobid="4999", account="geology", user="frank", job_name="late|job",
                partition="debug")  # fmt: skip
    assert s.series(TOP_WRITE)[ended] == 10
    # The listing is the original's; the top jobs' names are asked apart, for them only.
    assert fake_cluster.calls("squeue")[0]["argv"] == ["-a", "-h", "-o", "%A %a %u"]
    asked = details_calls(fake_cluster, "squeue")
    assert asked == [["-a", "-h", "-j", "4242,4250,4243,4999,4260,4251", "-o", "%A|%P|%j"]]
    assert details_calls(fake_cluster, "sacct")[0][5] == "4999"
    assert len(fake_prometheus.queries) == 3  # no query of their own
    # The status page lists them by job id, largest read + write first.
    _, page = exporter.get("/")
    table = page[page.index("Top 6 jobs") :]
    assert (
        table.index("<td>4242</td>") < table.index("<td>4250</td>") < table.index("<td>4999</td>")
    )
    assert "<td>relax the lattice</td>" in table and "<td>gpu</td>" in table


def test_top_n_and_names_remembered(start_exporter: Start, fake_cluster: FakeCluster) -> None:
    fake_cluster.set("squeue-details", "out", DETAILS)
    exporter = start_exporter("--metrics.top-jobs=2", "--slurm.job-grace-period=10m")
    s = exporter.scrape()
    assert {dict(k)["jobid"] for k in s.series(TOP_READ)} == {"4242", "4250"}
    # 4242 leaves squeue: the grace memory keeps its owner, the names are remembered
    # (no second call for them).
    listing = (FIXTURES / "squeue.out").read_text()
    fake_cluster.set("squeue", "out", listing.replace("4242 physics alice\n", ""))
    s = exporter.scrape()
    names = {dict(k)["jobid"]: dict(k)["job_name"] for k in s.series(TOP_WRITE)}
    assert names == {"4242": "relax the lattice", "4250": "md run"}
    assert len(details_calls(fake_cluster, "squeue")) == 1


def test_top_jobs_off_asks_nothing_more(
    start_exporter: Start, fake_cluster: FakeCluster, fake_prometheus: FakePrometheus
) -> None:
    s = start_exporter("--metrics.top-jobs=0", "--slurm.sacct").scrape()
    assert s.value("cluster_exporter_scrape_ok") == 1
    assert not [f for f in TOP if s.has(f)]
    assert [c["argv"] for c in fake_cluster.calls("squeue")] == [["-a", "-h", "-o", "%A %a %u"]]
    assert not details_calls(fake_cluster, "sacct")
    assert len(fake_prometheus.queries) == 3
