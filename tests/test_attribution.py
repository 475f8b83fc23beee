"""Attribution: jobid grammar and the per-owner sums."""

from __future__ import annotations

import pytest

from prometheus_cluster_exporter import attribution as attr
from prometheus_cluster_exporter.attribution import JobRef, ProcRef, attribute, parse_jobid
from prometheus_cluster_exporter.records import PasswdEntry, SlurmJob


@pytest.mark.parametrize(
    ("jobid", "expected"),
    [
        ("12345", JobRef("12345")),
        ("007", JobRef("7")),
        ("mpirun.1001", ProcRef("mpirun", 1001)),
        ("my.app.1001", ProcRef("my.app", 1001)),
        ("kworker/86:1.0", ProcRef("kworker/86:1", 0)),
        ("(ostnamed).0", ProcRef("(ostnamed)", 0)),
        ("abc .0123 .-_+ .1000", ProcRef("abc .0123 .-_+ ", 1000)),
        ("nodot", None),
        ("cp.notanumber", None),
        ("", None),
        (".0", None),
        ("cp.", None),
        ("cp.-1", None),
        ("\u0661\u0662", None),
        ("cp.\u0661", None),
        ("node_exporter:989:es-2-virt3-co", None),
    ],
)
def test_parse_jobid(jobid: str, expected: object) -> None:
    assert parse_jobid(jobid) == expected


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


def rows(*pairs: tuple[str, float]) -> list[tuple[str, tuple[str, ...], float]]:
    return [(jobid, (), value) for jobid, value in pairs]


def test_jobs_are_summed_per_account_and_user() -> None:
    result = attribute(rows(("1", 10.0), ("2", 5.0), ("3", 1.5)), JOBS, USERS, GROUPS)
    assert result.jobs == {("physics", "alice"): 15.0, ("chem", "bob"): 1.5}
    assert result.procs == {} and result.unattributed == {}


def test_first_listing_of_a_jobid_wins() -> None:
    assert JOBS["1"].account == "physics"


def test_procs_are_summed_per_name_group_user() -> None:
    result = attribute(
        rows(("cp.1001", 1.0), ("cp.1001", 2.0), ("my.app.1002", 4.0)), JOBS, USERS, GROUPS
    )
    assert result.procs == {("cp", "hpc-physics", "alice"): 3.0, ("my.app", "hpc-chem", "bob"): 4.0}


def test_unattributable_rows_are_counted_by_reason() -> None:
    result = attribute(
        rows(("99", 1.0), ("cp.4242", 2.0), ("tar.1005", 4.0), ("nodot", 8.0), ("1", 16.0)),
        JOBS,
        USERS,
        GROUPS,
    )
    assert result.unattributed == {
        (attr.UNKNOWN_JOB,): 1.0,
        (attr.UNKNOWN_UID,): 2.0,
        (attr.UNKNOWN_GID,): 4.0,
        (attr.UNPARSABLE_JOBID,): 8.0,
    }
    assert sorted(result.skipped) == sorted(
        [
            (attr.UNKNOWN_JOB, "99"),
            (attr.UNKNOWN_UID, "cp.4242"),
            (attr.UNKNOWN_GID, "tar.1005"),
            (attr.UNPARSABLE_JOBID, "nodot"),
        ]
    )
    assert result.total() == 31.0


def test_missing_sources_make_rows_unavailable_not_lost() -> None:
    result = attribute(rows(("1", 1.0), ("cp.1001", 2.0)), None, None, None)
    assert result.jobs == {} and result.procs == {}
    assert result.unattributed == {
        (attr.JOBS_UNAVAILABLE,): 1.0,
        (attr.IDENTITIES_UNAVAILABLE,): 2.0,
    }


def test_extra_labels_are_kept_in_keys() -> None:
    result = attribute(
        [
            ("1", ("fs-MDT0000",), 3.0),
            ("1", ("fs-MDT0001",), 1.0),
            ("2", ("fs-MDT0000",), 2.0),
            ("cp.1001", ("fs-MDT0000",), 7.0),
            ("x", ("fs-MDT0001",), 9.0),
        ],
        JOBS,
        USERS,
        GROUPS,
    )
    assert result.jobs == {
        ("physics", "alice", "fs-MDT0000"): 5.0,
        ("physics", "alice", "fs-MDT0001"): 1.0,
    }
    assert result.procs == {("cp", "hpc-physics", "alice", "fs-MDT0000"): 7.0}
    assert result.unattributed == {(attr.UNPARSABLE_JOBID, "fs-MDT0001"): 9.0}
