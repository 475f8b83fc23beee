"""Parsers of every source: good lines in, bad lines skipped and counted, never raised."""

from __future__ import annotations

import json
import math
from typing import Any, List

import pytest

from prometheus_cluster_exporter.attribution import index_jobs
from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.records import (
    JobidRate,
    PasswdEntry,
    SlurmJob,
    TargetRate,
    fs_of_target,
)
from prometheus_cluster_exporter.sources.httpbody import Body
from prometheus_cluster_exporter.sources.identity import parse_group, parse_passwd
from prometheus_cluster_exporter.sources.prometheus import (
    LustreQueries,
    parse_jobid_vector,
    parse_target_vector,
)
from prometheus_cluster_exporter.sources.slurm import parse_sacct, parse_squeue, parse_squeue_json
from prometheus_cluster_exporter.upstream import redact_url
from tests.helpers import FIXTURES

MDT = ".*-MDT[0-9a-fA-F]{4}"


def test_squeue_fixture() -> None:
    parsed = parse_squeue((FIXTURES / "squeue.out").read_bytes())
    assert parsed.items == [
        SlurmJob("4242", "physics", "alice"),
        SlurmJob("4243", "physics", "alice"),
        SlurmJob("4250", "chemistry", "bob"),
        SlurmJob("4251", "physics", "bob"),
        SlurmJob("4260", "(null)", "carol"),
    ]
    assert parsed.skipped == 1


@pytest.mark.parametrize(
    "line",
    [
        b"abc physics alice",
        b"12 physics",
        b"12 a b c",
        b"4242_1 physics alice",
        b"\xff\xfe 1 2",
        "\u0661\u0662 physics alice".encode(),
    ],
)
def test_squeue_garbage_lines_are_skipped(line: bytes) -> None:
    parsed = parse_squeue(b"1 acct user\n" + line + b"\n")
    assert parsed.items == [SlurmJob("1", "acct", "user")]
    assert parsed.skipped == 1


def test_squeue_empty_output_is_no_jobs() -> None:
    parsed = parse_squeue(b"")
    assert parsed.items == [] and parsed.skipped == 0


def test_passwd_fixture() -> None:
    parsed = parse_passwd((FIXTURES / "getent-passwd.out").read_bytes())
    assert parsed.items[1001] == PasswdEntry("alice", 2001)
    assert parsed.items[0] == PasswdEntry("root", 0)
    assert parsed.items[65534] == PasswdEntry("nobody", 65534)
    assert len(parsed.items) == 7
    assert parsed.skipped == 2


def test_passwd_first_entry_of_a_uid_wins() -> None:
    parsed = parse_passwd(b"local:x:1000:1000::/:/bin/sh\nldap:x:1000:5000::/:/bin/sh\n")
    assert parsed.items == {1000: PasswdEntry("local", 1000)}


@pytest.mark.parametrize(
    "line", [b"x", b":x:1:1::/:/bin/sh", b"a:x:-1:1::/:/bin/sh", b"a:x:1:gid::/:/bin/sh", b"a:x:1"]
)
def test_passwd_garbage_lines_are_skipped(line: bytes) -> None:
    parsed = parse_passwd(b"root:x:0:0::/:/bin/sh\n" + line + b"\n")
    assert parsed.items == {0: PasswdEntry("root", 0)} and parsed.skipped == 1


def test_output_without_any_usable_line_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="getent passwd: none of the 2 entries"):
        parse_passwd(b"x\ny\n")
    with pytest.raises(SourceError, match="squeue: none of the 1 entries"):
        parse_squeue(b"squeue: error: Invalid user\n")
    with pytest.raises(SourceError, match="read query: none of the 2 entries"):
        parse_jobid_vector(
            {"status": "success", "data": {"resultType": "vector",
                                           "result": [{"metric": {}}, {"metric": {}}]}},
            "jobid", "read query",
        )  # fmt: skip
    assert parse_passwd(b"").items == {}  # empty output is not an error


def test_group_fixture() -> None:
    parsed = parse_group((FIXTURES / "getent-group.out").read_bytes())
    assert parsed.items == {
        0: "root",
        1: "daemon",
        2001: "hpc-physics",
        2002: "hpc-chem",
        65534: "nogroup",
    }
    assert parsed.skipped == 0


def test_group_garbage() -> None:
    parsed = parse_group(b"nogid:x::\nok:x:7:\n:x:8:\nweird\n")
    assert parsed.items == {7: "ok"} and parsed.skipped == 3


def load(name: str) -> object:
    return json.loads((FIXTURES / f"prometheus-{name}.json").read_text())


def test_jobid_vector_fixture_skips_missing_labels_and_non_finite_values() -> None:
    parsed = parse_jobid_vector(load("read"), "jobid", "read query")
    jobids = [r.jobid for r in parsed.items]
    assert JobidRate("4242", 1048576.0, "") in parsed.items
    assert "nan.1001" not in jobids and "inf.1001" not in jobids
    assert all(math.isfinite(r.value) for r in parsed.items)
    assert parsed.skipped == 3  # missing jobid label, NaN, +Inf
    assert len(parsed.items) == 17


def test_target_vector_keeps_only_mdt_targets() -> None:
    parsed = parse_target_vector(load("metadata"), "jobid", "target", MDT, "metadata query")
    assert TargetRate("4242", 120.0, "scratch-MDT0000", "scratch") in parsed.items
    assert all("MDT" in r.target for r in parsed.items)
    assert len(parsed.items) == 5
    assert parsed.skipped == 2  # the OST target and the sample without a target label


@pytest.mark.parametrize(
    "payload",
    [
        [],
        "text",
        {"status": "error", "errorType": "bad_data", "error": "parse error"},
        {"status": "success"},
        {"status": "success", "data": {"resultType": "matrix", "result": []}},
        {"status": "success", "data": {"resultType": "vector", "result": {}}},
    ],
)
def test_unusable_answers_raise_source_error(payload: object) -> None:
    with pytest.raises(SourceError) as info:
        parse_jobid_vector(payload, "jobid", "read query")
    assert str(info.value).startswith("read query: ")


@pytest.mark.parametrize(
    "sample",
    [
        {"metric": {"jobid": "1"}},
        {"metric": {"jobid": "1"}, "value": [1.0]},
        {"metric": {"jobid": "1"}, "value": [1.0, 5]},
        {"metric": {"jobid": "1"}, "value": [1.0, "abc"]},
        {"metric": {"jobid": 1}, "value": [1.0, "1"]},
        {"metric": "jobid", "value": [1.0, "1"]},
        {"value": [1.0, "1"]},
        "sample",
        None,
    ],
)
def test_malformed_samples_are_skipped(sample: object) -> None:
    payload = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [sample, {"metric": {"jobid": "2"}, "value": [1.0, "2.5"]}],
        },
    }
    parsed = parse_jobid_vector(payload, "jobid", "read query")
    assert parsed.items == [JobidRate("2", 2.5, "")]
    assert parsed.skipped == 1


def test_configurable_label_names() -> None:
    payload = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": {"job": "7", "tgt": "fs-MDT0003"}, "value": [1.0, "3"]}],
        },
    }
    parsed = parse_target_vector(payload, "job", "tgt", MDT, "metadata query")
    assert parsed.items == [TargetRate("7", 3.0, "fs-MDT0003", "fs")]


def test_default_queries_match_the_original() -> None:
    q = LustreQueries.build()
    assert q.read == "sum by(jobid)(irate(lustre_job_read_bytes_total[1m]) != 0)"
    assert q.write == "sum by(jobid)(irate(lustre_job_write_bytes_total[1m]) != 0)"
    assert q.metadata == (
        "round(sum by(target,jobid)(irate(lustre_job_stats_total"
        '{target=~".*-MDT[0-9a-fA-F]{4}"}[1m]) >= 1))'
    )


def test_queries_follow_configuration() -> None:
    q = LustreQueries.build(
        rate_function="rate",
        window="5m",
        read_metric="lustre_read",
        jobid_label="job",
        target_label="tgt",
        mdt_target_regex=r"\w+-MDT\d+",
    )
    assert q.read == "sum by(job)(rate(lustre_read[5m]) != 0)"
    assert '{tgt=~"\\\\w+-MDT\\\\d+"}[5m]' in q.metadata
    assert "sum by(tgt,job)" in q.metadata


def test_redact_url_drops_credentials() -> None:
    assert redact_url("https://user:secret@prom.example:9090/x") == "https://prom.example:9090/x"
    assert redact_url("http://prom:9090") == "http://prom:9090"


def test_squeue_json_22_05_shape() -> None:
    parsed = parse_squeue_json((FIXTURES / "squeue-22.05.json").read_bytes())
    assert parsed.items == [
        SlurmJob("4242", "physics", "alice"),
        SlurmJob("4301", "chemistry", "bob"),  # an array element: its own id
        SlurmJob("4400", "physics", "alice"),  # het job leader: IO arrives under its id
        SlurmJob("4401", "physics", "alice"),
        SlurmJob("4260", "(null)", "carol"),
        # No alias for the het leader from component 4401: the leader is listed itself.
    ]
    assert parsed.skipped == 2


def test_squeue_json_het_leader_named_by_a_component() -> None:
    payload = {"jobs": [{"job_id": 4401, "het_job_id": 4400, "account": "phys", "user_name": "al"}]}
    parsed = parse_squeue_json(json.dumps(payload).encode())
    assert index_jobs(parsed.items)["4400"] == SlurmJob("4400", "phys", "al")


def test_squeue_json_newer_shape() -> None:
    parsed = parse_squeue_json((FIXTURES / "squeue-24.05.json").read_bytes())
    assert parsed.items == [
        SlurmJob("4242", "physics", "alice"),
        SlurmJob("4301", "chemistry", "bob"),
        SlurmJob("4260", "bio", "carol"),
    ]
    assert parsed.skipped == 1  # job_id not set


@pytest.mark.parametrize("output", [b"", b"{", b"[]", b'{"jobs": {}}', b"\xff"])
def test_squeue_json_unusable_output(output: bytes) -> None:
    with pytest.raises(SourceError, match="squeue --json"):
        parse_squeue_json(output)


def test_sacct_lines() -> None:
    parsed = parse_sacct(b"4999|geology|frank\n4998||grace\n\nbad line\n12|a\nx|a|b\n13|a|\n")
    assert parsed.items == [
        SlurmJob("4999", "geology", "frank"),
        SlurmJob("4998", "(null)", "grace"),
    ]
    assert parsed.skipped == 4


def test_fs_labelled_answers() -> None:
    payload = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"jobid": "1", "fs": "scratch"}, "value": [1.0, "3"]},
                {"metric": {"jobid": "1", "fs": "home"}, "value": [1.0, "4"]},
                {"metric": {"jobid": "2"}, "value": [1.0, "5"]},
            ],
        },
    }
    parsed = parse_jobid_vector(payload, "jobid", "read query", fs_label="fs")
    assert parsed.items == [JobidRate("1", 3.0, "scratch"), JobidRate("1", 4.0, "home")]
    assert parsed.skipped == 1


def test_fs_label_query_and_fs_of_target() -> None:
    q = LustreQueries.build(fs_label=True)
    assert q.read == (
        "sum by(jobid,fs)(label_replace(irate(lustre_job_read_bytes_total[1m]) != 0, "
        '"fs", "$1", "target", "(.+)-[A-Za-z]{3}[0-9a-fA-F]{4}"))'
    )
    assert fs_of_target("scratch-MDT0000") == "scratch"
    assert fs_of_target("my-fs-OST001f") == "my-fs"
    assert fs_of_target("odd") == "odd"


class _CannedClient:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def query(self, promql: str, deadline: float, what: str, at: object = None) -> bytes:
        return self.body

    def query_body(self, promql: str, deadline: float, what: str, at: object = None) -> Body:
        return Body([self.body], "identity", 0, what)


def _source(body: bytes, **build: object) -> object:
    from prometheus_cluster_exporter.sources.prometheus import PrometheusLustreSource

    return PrometheusLustreSource(_CannedClient(body), LustreQueries.build(**build))  # type: ignore[arg-type]


def _rows(parsed: Any) -> List[Any]:
    """The (extra..., jobid, value) rows of a source's columns, sorted; extra left out
    when empty."""
    return sorted(
        (*((c.extra,) if c.extra else ()), j, v)
        for c in parsed.items
        for j, v in zip(c.jobids, c.values)
    )


def test_typed_fast_path_equals_the_tolerant_parser() -> None:
    good = [s for s in load("read")["data"]["result"] if "jobid" in s["metric"]]  # type: ignore[index]
    body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": good}})
    fast = _source(body.encode()).read_rates(math.inf)  # type: ignore[attr-defined]
    slow = parse_jobid_vector(json.loads(body), "jobid", "read query")
    assert _rows(fast) == sorted((r.jobid, r.value) for r in slow.items)
    assert fast.skipped == slow.skipped == 2  # NaN and +Inf skipped on both paths
    meta = load("metadata")
    ok = [s for s in meta["data"]["result"] if "target" in s["metric"]]  # type: ignore[index]
    body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": ok}})
    fast_md = _source(body.encode()).metadata_rates(math.inf)  # type: ignore[attr-defined]
    slow_md = parse_target_vector(json.loads(body), "jobid", "target", MDT, "metadata query")
    assert _rows(fast_md) == sorted(((r.target,), r.jobid, r.value) for r in slow_md.items)
    assert fast_md.skipped == slow_md.skipped == 1  # the OST target


def test_malformed_answer_falls_back_to_the_tolerant_parser() -> None:
    body = (FIXTURES / "prometheus-read.json").read_bytes()  # one sample lacks the label
    parsed = _source(body).read_rates(math.inf)  # type: ignore[attr-defined]
    slow = parse_jobid_vector(load("read"), "jobid", "read query")
    assert _rows(parsed) == sorted((r.jobid, r.value) for r in slow.items)
    assert parsed.skipped == slow.skipped


# A number longer than Python's int-from-string limit (4300 digits on 3.11+), and one
# merely absurd for a 32-bit Slurm job id, uid or gid.
HUGE = b"9" * 5000
LONG = b"1" + b"0" * 24


@pytest.mark.parametrize("number", [HUGE, LONG])
def test_squeue_huge_job_id_costs_only_its_line(number: bytes) -> None:
    parsed = parse_squeue(b"1 acct user\n" + number + b" acct user\n2 acct2 user2\n")
    assert parsed.items == [SlurmJob("1", "acct", "user"), SlurmJob("2", "acct2", "user2")]
    assert parsed.skipped == 1


@pytest.mark.parametrize("number", [HUGE, LONG])
def test_sacct_huge_job_id_costs_only_its_line(number: bytes) -> None:
    parsed = parse_sacct(b"4999|geology|frank\n" + number + b"|a|b\n")
    assert parsed.items == [SlurmJob("4999", "geology", "frank")]
    assert parsed.skipped == 1


def test_leading_zeros_are_not_too_long() -> None:
    assert parse_squeue(b"000000004242 a u\n").items == [SlurmJob("4242", "a", "u")]


@pytest.mark.parametrize("number", [HUGE, LONG])
def test_getent_huge_ids_cost_only_their_line(number: bytes) -> None:
    n = number.decode()
    for line in (f"a:x:{n}:1::/:/bin/sh", f"a:x:7:{n}::/:/bin/sh"):
        parsed = parse_passwd(f"root:x:0:0::/:/bin/sh\n{line}\n".encode())
        assert parsed.items == {0: PasswdEntry("root", 0)} and parsed.skipped == 1
    parsed = parse_group(f"root:x:0:\nbig:x:{n}:\n".encode())
    assert parsed.items == {0: "root"} and parsed.skipped == 1


def _squeue_json(*entries: object, raw: str = "") -> bytes:
    """A ``squeue --json`` document; ``raw`` is inserted verbatim as a first entry."""
    body = ", ".join(json.dumps(e) for e in entries)
    return ('{"meta": {}, "jobs": [' + (raw + ", " if raw else "") + body + "]}").encode()


GOOD = {"job_id": 7, "account": "a", "user_name": "u"}


@pytest.mark.parametrize(
    "raw",
    [
        '{"job_id": ' + HUGE.decode() + ', "account": "a", "user_name": "x"}',
        '{"job_id": {"set": true, "number": ' + HUGE.decode() + '}, "user_name": "x"}',
        '{"job_id": 1e400, "account": "a", "user_name": "x"}',
        '{"job_id": ' + LONG.decode() + ', "account": "a", "user_name": "x"}',
        '{"job_id": {"set": true, "number": {"set": true, "number": 5}}, "user_name": "x"}',
        '{"job_id": {"set": true, "infinite": true, "number": 5}, "user_name": "x"}',
        '{"job_id": {"set": false, "number": 5}, "user_name": "x"}',
        '{"job_id": 5.0, "user_name": "x"}',
        '{"job_id": "5", "user_name": "x"}',
        '{"job_id": true, "user_name": "x"}',
        '{"job_id": -5, "user_name": "x"}',
        '{"job_id": [5], "user_name": "x"}',
        '{"job_id": 5, "user_name": 5}',
        '{"job_id": 5, "user_name": "x", "account": 5}',
        "[5]",
        '"job"',
        "null",
        "5",
    ],
)
def test_squeue_json_odd_entry_costs_only_that_entry(raw: str) -> None:
    parsed = parse_squeue_json(_squeue_json(GOOD, raw=raw))
    assert parsed.items == [SlurmJob("7", "a", "u")]
    assert parsed.skipped == 1


@pytest.mark.parametrize("het", [HUGE.decode(), LONG.decode(), "1e400", '{"number": -1}'])
def test_squeue_json_odd_het_leader_is_no_alias(het: str) -> None:
    raw = '{"job_id": 8, "het_job_id": ' + het + ', "account": "b", "user_name": "v"}'
    parsed = parse_squeue_json(_squeue_json(GOOD, raw=raw))
    # An entry that cannot be decoded at all is skipped; either way there is no alias.
    assert parsed.items in (
        [SlurmJob("8", "b", "v"), SlurmJob("7", "a", "u")],
        [SlurmJob("7", "a", "u")],
    )
    assert len(parsed.items) + parsed.skipped == 2


def test_squeue_json_huge_numbers_outside_the_jobs_are_ignored() -> None:
    output = _squeue_json(GOOD).replace(b'"meta": {}', b'"meta": {"n": ' + HUGE + b", f: 1e999}")
    output = output.replace(b"f:", b'"f":')
    assert parse_squeue_json(output).items == [SlurmJob("7", "a", "u")]


def test_squeue_json_without_msgspec_skips_huge_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_cluster_exporter import jsonutil

    monkeypatch.setattr(jsonutil, "msgspec", None)
    raw = '{"job_id": ' + HUGE.decode() + ', "account": "a", "user_name": "x"}'
    parsed = parse_squeue_json(_squeue_json(GOOD, raw=raw))
    assert parsed.items == [SlurmJob("7", "a", "u")] and parsed.skipped == 1
    with pytest.raises(SourceError, match="squeue --json"):
        parse_squeue_json(b'{"jobs": [')
    with pytest.raises(SourceError, match="no jobs list"):
        parse_squeue_json(b'{"jobs": 5}')
