"""Attribution: the per-owner sums, and conservation of every input byte."""

from __future__ import annotations

import math
from typing import NamedTuple

from hypothesis import given, settings
from hypothesis import strategies as st

from prometheus_cluster_exporter import attribution as attr
from prometheus_cluster_exporter.attribution import attribute, classify
from prometheus_cluster_exporter.jobid import JobidGrammar
from prometheus_cluster_exporter.records import PasswdEntry, SlurmJob

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


def run(rows, jobs=JOBS, users=USERS, groups=GROUPS):  # type: ignore[no-untyped-def]
    """rows of (jobid, extra labels, value), as the tables of the collector see them."""
    refs = classify((r[0] for r in rows), GRAMMAR)
    owner_of = attr.owners(refs, jobs, users, groups)
    records = [Row(jobid, value, extra) for jobid, extra, value in rows]
    with_extra = any(extra for _, extra, _ in rows)
    result = attribute(records, owner_of, (lambda r: r.extra) if with_extra else None)
    result.lost = sorted(attr.lost_ids(owner_of))  # type: ignore[attr-defined]
    return result


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
    refs = classify(["1", "77", "78", "cp.1001", "cp.5000", "x.5001", "bad"], GRAMMAR)
    assert attr.wanted_jobs(refs, JOBS) == ["77", "78"]
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
