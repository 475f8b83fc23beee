"""Attribution: the per-owner sums, and conservation of every input byte."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import NamedTuple

from hypothesis import example, given, settings
from hypothesis import strategies as st

from prometheus_cluster_exporter import attribution as attr
from prometheus_cluster_exporter.attribution import attribute
from prometheus_cluster_exporter.idsort import ParseCache, classify, listed_jobs, split_ids
from prometheus_cluster_exporter.jobid import JobidGrammar
from prometheus_cluster_exporter.records import (
    Packed,
    PasswdEntry,
    RateColumn,
    SlurmJob,
    columns_of,
)

GRAMMAR = JobidGrammar()
JOBS = attr.index_jobs(
    [
        SlurmJob("1", "physics", "alice"),
        SlurmJob("2", "physics", "alice"),
        SlurmJob("3", "chem", "bob"),
        SlurmJob("1", "dup", "dup"),
    ]
)
USERS = {
    1001: PasswdEntry("alice", 2001),
    1002: PasswdEntry("bob", 2002),
    1005: PasswdEntry("dave", 3999),
}
GROUPS = {2001: "hpc-physics", 2002: "hpc-chem"}


class Row(NamedTuple):
    """A query answer row with any labels after the owner's (a Rate to attribution)."""

    jobid: str
    value: float
    extra: tuple[str, ...]

    def extra_of(self) -> tuple[str, ...]:
        return self.extra


def run(rows, jobs=JOBS, users=USERS, groups=GROUPS, grammar=GRAMMAR):  # type: ignore[no-untyped-def]
    """rows of (jobid, extra labels, value), through the steps the collector takes:
    split off the plain numbers, parse the other ids, build the owner table, sum."""
    columns = columns_of([Row(jobid, value, extra) for jobid, extra, value in rows], Row.extra_of)
    known = listed_jobs(jobs) if jobs is not None else {}
    to_parse: set[str] = set()
    numbers: set[str] = set()
    for column in columns:
        if grammar.numbers_are_jobs:
            found, others = split_ids(column.jobids, known)
            numbers.update(found)
            to_parse.update(others)
        else:
            to_parse.update(column.jobids)
    refs = classify(to_parse, grammar)
    listed = known if grammar.numbers_are_jobs else None
    table = attr.owner_table(refs, jobs, users, groups, listed)
    result = attribute(columns, table)
    lost = attr.lost_ids(table, refs) + [(table.labels[0][0], n) for n in numbers]
    result.lost = sorted(lost)  # type: ignore[attr-defined]
    return result


def reference(rows, jobs=JOBS, users=USERS, groups=GROUPS, grammar=GRAMMAR):  # type: ignore[no-untyped-def]
    """The same sums the plain way: every id parsed, every row added one by one."""
    owner_of = attr.owners(classify((r[0] for r in rows), grammar), jobs, users, groups)
    tables: tuple[dict, dict, dict] = ({}, {}, {})
    for jobid, extra, value in rows:
        kind, key = owner_of[jobid]
        tables[kind][key + extra] = tables[kind].get(key + extra, 0.0) + value
    return SimpleNamespace(jobs=tables[0], procs=tables[1], unattributed=tables[2])


def rows(*pairs: tuple[str, float]) -> list[tuple[str, tuple[str, ...], float]]:
    return [(jobid, (), value) for jobid, value in pairs]


def test_jobs_are_summed_per_account_and_user() -> None:
    result = run(rows(("1", 10.0), ("2", 5.0), ("3", 1.5)))
    assert result.jobs == {("physics", "alice"): 15.0, ("chem", "bob"): 1.5}
    assert result.procs == {} and result.unattributed == {}


def test_first_listing_of_a_jobid_wins() -> None:
    assert JOBS["1"].account == "physics"


def test_procs_are_summed_per_name_group_user() -> None:
    result = run(rows(("cp.1001", 1.0), ("cp.1001", 2.0), ("my.app.1002", 4.0)))
    assert result.procs == {
        ("cp", "hpc-physics", "alice"): 3.0,
        ("my.app", "hpc-chem", "bob"): 4.0,
    }


def test_unattributable_rows_are_counted_by_reason() -> None:
    result = run(
        rows(("99", 1.0), ("cp.4242", 2.0), ("tar.1005", 4.0), ("nodot", 8.0), ("1", 16.0))
    )
    assert result.unattributed == {
        (attr.UNKNOWN_JOB,): 1.0,
        (attr.UNKNOWN_UID,): 2.0,
        (attr.UNKNOWN_GID,): 4.0,
        (attr.UNPARSABLE_JOBID,): 8.0,
    }
    assert result.lost == sorted(
        [
            (attr.UNKNOWN_JOB, "99"),
            (attr.UNKNOWN_UID, "cp.4242"),
            (attr.UNKNOWN_GID, "tar.1005"),
            (attr.UNPARSABLE_JOBID, "nodot"),
        ]
    )
    assert result.total() == 31.0


def test_missing_sources_make_rows_unavailable_not_lost() -> None:
    result = run(rows(("1", 1.0), ("cp.1001", 2.0)), jobs=None, users=None, groups=None)
    assert result.jobs == {} and result.procs == {}
    assert result.unattributed == {
        (attr.JOBS_UNAVAILABLE,): 1.0,
        (attr.IDENTITIES_UNAVAILABLE,): 2.0,
    }


def test_extra_labels_are_kept_in_keys() -> None:
    result = run(
        [
            ("1", ("fs-MDT0000",), 3.0),
            ("1", ("fs-MDT0001",), 1.0),
            ("2", ("fs-MDT0000",), 2.0),
            ("cp.1001", ("fs-MDT0000",), 7.0),
            ("x", ("fs-MDT0001",), 9.0),
        ]
    )
    assert result.jobs == {
        ("physics", "alice", "fs-MDT0000"): 5.0,
        ("physics", "alice", "fs-MDT0001"): 1.0,
    }
    assert result.procs == {("cp", "hpc-physics", "alice", "fs-MDT0000"): 7.0}
    assert result.unattributed == {(attr.UNPARSABLE_JOBID, "fs-MDT0001"): 9.0}


def test_wanted_lookups() -> None:
    refs = classify(["1", "77", "078", "cp.1001", "cp.5000", "x.5001", "bad"], GRAMMAR)
    assert attr.wanted_jobs(refs, JOBS, ["9", "77"]) == ["9", "77", "78"]
    assert attr.wanted_uids(refs, USERS) == [5000, 5001]
    assert attr.wanted_gids([1001, 1005, 5000], USERS, GROUPS) == [3999]


jobid_strategy = st.one_of(
    st.integers(0, 12).map(str),  # some known jobs, many unknown
    st.tuples(
        st.sampled_from(["cp", "my.app", "k/1:2"]), st.sampled_from([1001, 1002, 1005, 7])
    ).map(lambda t: f"{t[0]}.{t[1]}"),
    st.text(max_size=12),
)
value_strategy = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False)


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(jobid_strategy, st.sampled_from(["", "a-MDT0000", "b-MDT0001"]), value_strategy),
        max_size=60,
    ),
    st.booleans(),
    st.booleans(),
)
def test_conservation(
    samples: list[tuple[str, str, float]], jobs_ok: bool, identities_ok: bool
) -> None:
    """jobs + procs + unattributed == input total, per extra label, for any input."""
    data = [(jobid, (target,), value) for jobid, target, value in samples]
    result = run(
        data,
        jobs=JOBS if jobs_ok else None,
        users=USERS if identities_ok else None,
        groups=GROUPS if identities_ok else None,
    )
    total = math.fsum(v for _, _, v in data)
    assert math.isclose(result.total(), total, rel_tol=1e-9, abs_tol=1e-6)
    for target in ("", "a-MDT0000", "b-MDT0001"):
        want = math.fsum(v for _, (t,), v in data if t == target)
        got = math.fsum(
            v
            for table in (result.jobs, result.procs, result.unattributed)
            for key, v in table.items()
            if key[-1] == target
        )
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-6)
    assert set(reason for reason, *_ in result.unattributed) <= set(attr.REASONS)


#: Ids that look numeric in every way the shortcut for plain numbers must get right.
odd_number = st.one_of(
    st.sampled_from(["0", "00", "007", "1", "01", "3", '"2"', "\u0661\u0662", "1\u0663", "+1"]),
    st.integers(10**29, 10**40).map(str),  # from 30 digits: 31 and more were cut by Lustre
    st.integers(1, 10**6).map(lambda n: f"{n:031d}"),
)


@settings(max_examples=400)
@example([("cp.1001", "", 1.0), ("01", "", 2.0)], True, True, GRAMMAR)  # a zero not first
@example([("01", "", 2.0), ("cp.1001", "", 1.0)], True, True, GRAMMAR)  # a zero first
@given(
    st.lists(
        st.tuples(
            st.one_of(jobid_strategy, odd_number),
            st.sampled_from(["", "a-MDT0000"]),
            value_strategy,
        ),
        max_size=40,
    ),
    st.booleans(),
    st.booleans(),
    st.sampled_from([GRAMMAR, JobidGrammar(["%j", "%e.%u"]), JobidGrammar(["%e.%u", "%j"])]),
)
def test_columns_and_shortcuts_equal_the_plain_way(
    samples: list[tuple[str, str, float]], jobs_ok: bool, identities_ok: bool, grammar: JobidGrammar
) -> None:
    """The owner table, the plain-number shortcut and the column sums give exactly the
    sums of parsing every id and adding every row, for any ids."""
    data = [(jobid, (target,), value) for jobid, target, value in samples]
    tables = dict(
        jobs=JOBS if jobs_ok else None,
        users=USERS if identities_ok else None,
        groups=GROUPS if identities_ok else None,
    )
    fast, plain = run(data, grammar=grammar, **tables), reference(data, grammar=grammar, **tables)
    for got, want in ((fast.jobs, plain.jobs), (fast.procs, plain.procs),
                      (fast.unattributed, plain.unattributed)):  # fmt: skip
        assert got.keys() == want.keys()
        for key, value in want.items():
            assert math.isclose(got[key], value, rel_tol=1e-12, abs_tol=1e-9)


def test_packed_columns_are_cut_into_pieces_in_order() -> None:
    packed = Packed()
    packed.extend(["1", "cp.1001"])
    packed.extend([])
    packed.extend(["x", "2", "3"])
    assert len(packed) == 5 and list(packed) == ["1", "cp.1001", "x", "2", "3"]
    column = RateColumn(("t",), packed, [1.0, 2.0, 3.0, 4.0, 5.0])
    cut = list(attr.pieces([column], 2))
    assert [list(p.jobids) for p in cut] == [["1", "cp.1001"], ["x", "2"], ["3"]]
    assert [list(p.values) for p in cut] == [[1.0, 2.0], [3.0, 4.0], [5.0]]
    assert all(p.extra == ("t",) for p in cut)


def test_parsed_ids_are_remembered_up_to_a_bound() -> None:
    calls: list[str] = []

    class Counting(JobidGrammar):
        def parse(self, jobid: str):  # type: ignore[no-untyped-def]
            calls.append(jobid)
            return super().parse(jobid)

    cache = ParseCache(Counting(), max_entries=3)
    first = cache.classify(["cp.1001", "bad", "cp.1001"])
    assert first == {"cp.1001": attr.ProcRef("cp", 1001), "bad": None}
    assert sorted(calls) == ["bad", "cp.1001"]
    assert cache.classify(["bad", "cp.1001"]) == first and len(calls) == 2
    assert cache.classify(["x.7", "y.8"]) == {
        "x.7": attr.ProcRef("x", 7),
        "y.8": attr.ProcRef("y", 8),
    }
    assert len(calls) == 4  # past the bound: the memory started afresh with only these
    cache.classify(["cp.1001"])
    assert len(calls) == 5


@settings(max_examples=100)
@given(
    st.lists(st.tuples(st.sampled_from(["1", "2", "3", "9", "cp.1001", "x.7"]), value_strategy),
             max_size=40),
    st.integers(1, 7),
)  # fmt: skip
def test_a_column_summed_in_pieces_equals_it_summed_whole(
    samples: list[tuple[str, float]], size: int
) -> None:
    refs = classify([j for j, _ in samples], GRAMMAR)
    table = attr.owner_table(refs, JOBS, USERS, GROUPS, listed_jobs(JOBS))
    column = RateColumn(("t",), [j for j, _ in samples], [v for _, v in samples])
    whole = attribute([column], table)
    cut = attr.Attribution.of(table)
    for piece in attr.pieces([column], size):
        attribute([piece], table, into=cut)
    assert cut.sums.keys() == whole.sums.keys()
    for extra, sums in whole.sums.items():
        assert cut.sums[extra].keys() == sums.keys()
        for number, value in sums.items():
            assert math.isclose(cut.sums[extra][number], value, rel_tol=1e-12, abs_tol=1e-9)
