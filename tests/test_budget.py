"""The cardinality budget (--metrics.max-series): folding keeps the biggest owners, sums
the others under __other__, and moves values without losing one."""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prometheus_cluster_exporter import attribution as attr
from prometheus_cluster_exporter.attribution import JOB, LOST, PROC, Attribution
from prometheus_cluster_exporter.budget import OTHER, fold
from prometheus_cluster_exporter.collector import ClusterCollector
from prometheus_cluster_exporter.exposition import render
from prometheus_cluster_exporter.metrics import JOB_READ, JOB_WRITE, RowFamily
from prometheus_cluster_exporter.records import (
    JobidRate,
    Parsed,
    PasswdEntry,
    SlurmJob,
    TargetRate,
)
from prometheus_cluster_exporter.report import Consumer
from tests.helpers import Scrape, key

Key = Tuple[str, ...]
#: (kind, owner's labels, labels after the owner's, value)
Input = Tuple[int, Key, Key, float]
FOLDED = "cluster_exporter_folded_owners"
JOB_OTHER = (OTHER, OTHER)
PROC_OTHER = (OTHER, OTHER, OTHER)
MDT0, MDT1 = ("fs-MDT0000",), ("fs-MDT0001",)


def attribution(rows: Sequence[Input]) -> Attribution:
    """An attribution as ``attribution.attribute`` makes them: owners numbered in the
    order they first appear, sums per tuple of labels after the owner's."""
    kinds: List[int] = []
    labels: List[Key] = []
    numbers: Dict[Tuple[int, Key], int] = {}
    result = Attribution(kinds, labels)
    for kind, owner, extra, value in rows:
        number = numbers.setdefault((kind, owner), len(kinds))
        if number == len(kinds):
            kinds.append(kind)
            labels.append(owner)
        sums = result.sums.setdefault(extra, {})
        sums[number] = sums.get(number, 0.0) + value
    return result


def by_owner(result: Attribution, kind: int) -> Dict[Key, float]:
    """owner's labels -> value summed over the labels after the owner's."""
    size = 2 if kind == JOB else 3 if kind == PROC else 1
    totals: Dict[Key, float] = {}
    for labels, value in result.rows(kind):
        totals[labels[:size]] = totals.get(labels[:size], 0.0) + value
    return totals


def column_sums(result: Attribution, kind: int) -> Dict[Key, float]:
    """labels after the owner's -> the sum of the kind's rows there."""
    size = 2 if kind == JOB else 3 if kind == PROC else 1
    sums: Dict[Key, float] = {}
    for labels, value in result.rows(kind):
        sums[labels[size:]] = sums.get(labels[size:], 0.0) + value
    return sums


def job(name: str, value: float, extra: Key = ()) -> Input:
    return (JOB, (f"acct-{name}", name), extra, value)


def proc(name: str, value: float, extra: Key = ()) -> Input:
    return (PROC, (name, "hpc", "alice"), extra, value)


def lost(reason: str, value: float, extra: Key = ()) -> Input:
    return (LOST, (reason,), extra, value)


ROWS = [
    job("a", 50.0),
    job("b", 10.0),
    proc("cp", 3.0),
    job("c", 40.0),
    lost(attr.UNKNOWN_JOB, 7.0),
    job("d", 5.0),
    proc("dd", 2.0),
    proc("tar", 1.0),
    lost(attr.UNPARSABLE_JOBID, 0.5),
]


def test_the_biggest_owners_are_kept_and_the_others_summed_under_other() -> None:
    result = attribution(ROWS)
    folded, counts = fold(result, 2)
    assert folded.jobs == {("acct-a", "a"): 50.0, ("acct-c", "c"): 40.0, JOB_OTHER: 15.0}
    assert folded.procs == {("cp", "hpc", "alice"): 3.0, ("dd", "hpc", "alice"): 2.0,
                            PROC_OTHER: 1.0}  # fmt: skip
    assert folded.unattributed == result.unattributed  # reasons are never folded
    assert counts == {JOB: 2, PROC: 1}
    assert folded.total() == result.total()
    assert list(folded.jobs)[-1] == JOB_OTHER  # last, though b came before c
    # The input is left as it was: the status page ranks the unfolded sums.
    assert len(result.jobs) == 4 and OTHER not in str(result.labels)


def test_metadata_owners_are_ranked_over_all_targets_and_keep_every_row() -> None:
    """alice has the biggest total though not the biggest row on either target; the
    folded owners' rows are summed per target."""
    result = attribution([
        job("alice", 30.0, MDT0), job("alice", 30.0, MDT1),
        job("bob", 50.0, MDT0),
        job("carol", 5.0, MDT0), job("carol", 1.0, MDT1),
        job("dave", 2.0, MDT1),
        lost(attr.UNKNOWN_JOB, 4.0, MDT1),
    ])  # fmt: skip
    folded, counts = fold(result, 1)
    assert folded.jobs == {
        ("acct-alice", "alice", *MDT0): 30.0,
        ("acct-alice", "alice", *MDT1): 30.0,
        (*JOB_OTHER, *MDT0): 55.0,
        (*JOB_OTHER, *MDT1): 3.0,
    }
    assert folded.unattributed == {(attr.UNKNOWN_JOB, *MDT1): 4.0}
    assert counts == {JOB: 3, PROC: 0}


def test_a_target_only_kept_owners_have_rows_on_gets_no_other_row() -> None:
    result = attribution([job("a", 9.0, MDT0), job("a", 9.0, MDT1), job("b", 1.0, MDT0)])
    folded, _ = fold(result, 1)
    assert folded.jobs == {
        ("acct-a", "a", *MDT0): 9.0,
        ("acct-a", "a", *MDT1): 9.0,
        (*JOB_OTHER, *MDT0): 1.0,
    }


@pytest.mark.parametrize("budget", [0, 4, 5, 1000])
def test_no_budget_or_one_above_the_owners_folds_nothing(budget: int) -> None:
    result = attribution(ROWS)
    folded, counts = fold(result, budget)
    assert folded is result  # the same rows, the same table: the same page
    assert counts == {JOB: 0, PROC: 0}


def test_one_kind_over_the_budget_leaves_the_other_as_it_is() -> None:
    folded, counts = fold(attribution(ROWS), 3)
    assert counts == {JOB: 1, PROC: 0}
    assert folded.jobs == {("acct-a", "a"): 50.0, ("acct-c", "c"): 40.0,
                           ("acct-b", "b"): 10.0, JOB_OTHER: 5.0}  # fmt: skip
    assert folded.procs == attribution(ROWS).procs


def test_equal_values_are_ranked_by_labels_whatever_the_order_owners_came_in() -> None:
    rows = [job(name, 10.0) for name in "dbeac"] + [job("z", 11.0)]
    expected = {("acct-z", "z"): 11.0, ("acct-a", "a"): 10.0, ("acct-b", "b"): 10.0,
                JOB_OTHER: 30.0}  # fmt: skip
    for order in (rows, rows[::-1], sorted(rows), rows[2:] + rows[:2]):
        assert fold(attribution(order), 3).result.jobs == expected


def test_an_owner_named_other_never_makes_a_second_other_series() -> None:
    rows = [(JOB, JOB_OTHER, (), 100.0), job("a", 50.0), job("b", 40.0), job("c", 30.0)]
    folded, counts = fold(attribution(rows), 1)
    assert folded.jobs == {("acct-a", "a"): 50.0, JOB_OTHER: 170.0}
    assert counts[JOB] == 3
    text = render([RowFamily(JOB_READ, folded.rows(JOB))]).decode()
    assert text.count('account="__other__"') == 1
    # Within the budget it is one owner like any other.
    folded, counts = fold(attribution(rows), 3)
    assert folded.jobs[JOB_OTHER] == 100.0 and counts[JOB] == 0


def test_an_owner_whose_total_is_not_a_number_ranks_last() -> None:
    rows = [job("a", math.inf, MDT0), job("a", -math.inf, MDT1), job("b", 1.0, MDT0),
            job("c", 2.0, MDT0)]  # fmt: skip
    folded, _ = fold(attribution(rows), 2)
    assert set(by_owner(folded, JOB)) == {("acct-b", "b"), ("acct-c", "c"), JOB_OTHER}


def test_folded_and_unfolded_tables_render_side_by_side() -> None:
    """The renderer keeps escaped owner labels per table: a folded result has a table of
    its own, so a page that holds both shows each with its own owners."""
    result = attribution([*ROWS, (JOB, ('q"x', "u\\"), (), 1.0)])
    folded, _ = fold(result, 1)
    families = [
        RowFamily(JOB_READ, result.rows(JOB)),
        RowFamily(JOB_WRITE, folded.rows(JOB)),
    ]
    for _ in range(2):
        s = Scrape(render(families).decode())
        assert s.series(JOB_READ.name) == {
            key(account=a, user=u): v for (a, u), v in result.jobs.items()
        }
        assert s.series(JOB_WRITE.name) == {
            key(account="acct-a", user="a"): 50.0,
            key(account=OTHER, user=OTHER): 56.0,
        }


owner_names = st.integers(0, 7)
inputs = st.lists(
    st.tuples(
        st.sampled_from((JOB, PROC, LOST)),
        owner_names,
        st.integers(0, 2),
        st.floats(0, 1e12, allow_nan=False) | st.integers(0, 5).map(float),
    ),
    max_size=60,
)


def as_rows(drawn: List[Tuple[int, int, int, float]], targets: bool) -> List[Input]:
    names = {JOB: lambda i: (f"acct{i % 3}", f"u{i}"), PROC: lambda i: (f"p{i}", "g", f"u{i % 2}"),
             LOST: lambda i: (attr.REASONS[i % 6],)}  # fmt: skip
    return [
        (kind, names[kind](i), (f"fs-MDT000{t}",) if targets else (), value)
        for kind, i, t, value in drawn
    ]


@settings(max_examples=300, deadline=None)
@given(inputs, st.booleans(), st.integers(1, 6))
def test_folding_keeps_every_sum_and_at_most_the_budget(
    drawn: List[Tuple[int, int, int, float]], targets: bool, budget: int
) -> None:
    result = attribution(as_rows(drawn, targets))
    folded, counts = fold(result, budget)
    assert math.isclose(folded.total(), result.total(), rel_tol=1e-9, abs_tol=1e-6)
    assert dict(folded.rows(LOST)) == dict(result.rows(LOST))
    for kind, other in ((JOB, JOB_OTHER), (PROC, PROC_OTHER)):
        before, after = by_owner(result, kind), by_owner(folded, kind)
        # Every column's sum is kept (conservation per target, per kind).
        want = column_sums(result, kind)
        got = column_sums(folded, kind)
        assert want.keys() == got.keys()
        for extra, value in want.items():
            assert math.isclose(got[extra], value, rel_tol=1e-9, abs_tol=1e-6)
        kept = set(after) - {other}
        assert len(kept) <= budget
        assert counts[kind] == (len(before) - len(kept) if len(before) > budget else 0)
        assert (other in after) == (counts[kind] > 0)
        gone = set(before) - kept
        if gone:  # the kept ones are the biggest
            assert min(before[k] for k in kept) >= max(before[k] for k in gone)
        # A kept owner keeps each of its rows as it was.
        size = len(other)
        rows = dict(result.rows(kind))
        assert {r: v for r, v in rows.items() if r[:size] in kept} == {
            r: v for r, v in folded.rows(kind) if r[:size] in kept
        }


class Lustre:
    """Five jobs and three processes reading, writing and on two MDTs."""

    def read_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[List[JobidRate]]:
        rows = [JobidRate(str(n), 10.0 * n, "") for n in range(1, 6)]
        return Parsed([*rows, JobidRate("cp.1001", 3.0, ""), JobidRate("dd.1001", 2.0, ""),
                       JobidRate("tar.1001", 1.0, ""), JobidRate("99", 0.5, "")])  # fmt: skip

    def write_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[List[JobidRate]]:
        return Parsed([JobidRate("1", 4.0, ""), JobidRate("cp.1001", 5.0, "")])

    def metadata_rates(
        self, deadline: float, at: Optional[float] = None
    ) -> Parsed[List[TargetRate]]:
        mdts = ("fs-MDT0000", "fs-MDT0001")
        return Parsed([TargetRate(str(n), float(n), t, "fs") for n in range(1, 6) for t in mdts])


class Jobs:
    def jobs(self, deadline: float) -> Parsed[List[SlurmJob]]:
        return Parsed([SlurmJob(str(n), f"acct{n}", f"user{n}") for n in range(1, 6)])


class Identities:
    def users(self, deadline: float) -> Parsed[Dict[int, PasswdEntry]]:
        return Parsed({1001: PasswdEntry("alice", 2001)})

    def groups(self, deadline: float) -> Parsed[Dict[int, str]]:
        return Parsed({2001: "hpc"})


def collect(max_series: int) -> Tuple[Scrape, ClusterCollector]:
    collector = ClusterCollector(Lustre(), Jobs(), Identities(), timeout=5, max_series=max_series)
    try:
        return Scrape(render(collector.scrape()).decode()), collector
    finally:
        collector.close()


def cluster_lines(s: Scrape) -> List[str]:
    return [line for line in s.text.splitlines() if line.startswith("cluster_")
            and "stage_execution" not in line]  # fmt: skip


def test_the_collector_folds_every_job_and_process_family() -> None:
    s, collector = collect(2)
    assert s.value("cluster_exporter_scrape_ok") == 1
    assert s.series("cluster_job_read_throughput_bytes") == {
        key(account="acct5", user="user5"): 50.0,
        key(account="acct4", user="user4"): 40.0,
        key(account=OTHER, user=OTHER): 60.0,
    }
    assert s.series("cluster_proc_read_throughput_bytes") == {
        key(proc_name="cp", group_name="hpc", user_name="alice"): 3.0,
        key(proc_name="dd", group_name="hpc", user_name="alice"): 2.0,
        key(proc_name=OTHER, group_name=OTHER, user_name=OTHER): 1.0,
    }
    assert s.series("cluster_unattributed_read_throughput_bytes") == {
        key(reason="unknown_job"): 0.5
    }
    meta = s.series("cluster_job_metadata_operations")
    assert meta[key(account=OTHER, user=OTHER, target="fs-MDT0001")] == 6.0
    assert len(meta) == 6  # two kept owners and __other__, on both MDTs
    assert s.series(FOLDED) == {
        key(family="cluster_job_metadata_operations"): 3.0,
        key(family="cluster_proc_metadata_operations"): 0.0,
        key(family="cluster_job_read_throughput_bytes"): 3.0,
        key(family="cluster_proc_read_throughput_bytes"): 1.0,
        key(family="cluster_job_write_throughput_bytes"): 0.0,
        key(family="cluster_proc_write_throughput_bytes"): 0.0,
    }
    report = collector.last
    assert report is not None
    # The status page ranks the owners as they were, before folding.
    assert report.top[0] == Consumer("job", "acct5 / user5", 50.0, 0.0)
    assert Consumer("job", "acct1 / user1", 10.0, 4.0) in report.top
    assert report.series == sum(len(s.series(name)) for name in s.families)


def test_without_a_budget_the_output_is_the_unfolded_one() -> None:
    plain, _ = collect(0)
    assert not plain.has(FOLDED)
    assert OTHER not in plain.text
    assert len(plain.series("cluster_job_read_throughput_bytes")) == 5
    # A budget above every family's owners changes nothing but adds the folded counts.
    roomy, _ = collect(5)
    assert set(roomy.series(FOLDED).values()) == {0.0}
    folded_lines = [line for line in cluster_lines(roomy) if not line.startswith(FOLDED)]
    assert folded_lines == cluster_lines(plain)


def test_a_failed_source_leaves_its_families_out_of_the_folded_counts() -> None:
    class NoJobs:
        def jobs(self, deadline: float) -> Parsed[List[SlurmJob]]:
            from prometheus_cluster_exporter.errors import SourceError

            raise SourceError("squeue: down")

    collector = ClusterCollector(Lustre(), NoJobs(), Identities(), timeout=5, max_series=1)
    s = Scrape(render(collector.scrape()).decode())
    assert set(s.series(FOLDED)) == {
        key(family="cluster_proc_metadata_operations"),
        key(family="cluster_proc_read_throughput_bytes"),
        key(family="cluster_proc_write_throughput_bytes"),
    }
    assert s.value("cluster_unattributed_read_throughput_bytes", reason="jobs_unavailable") == 150.5
