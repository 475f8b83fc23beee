"""Hostile input: every parser and the jobid grammar take any input without raising
(other than SourceError for a source that is broken as a whole), and every label value
they can produce survives the exposition format."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any, Optional

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from prometheus_cluster_exporter.collector import ClusterCollector
from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.exposition import render
from prometheus_cluster_exporter.jobid import JobidGrammar
from prometheus_cluster_exporter.records import JobidRate, Parsed, PasswdEntry, SlurmJob, TargetRate
from prometheus_cluster_exporter.sources.identity import parse_group, parse_passwd
from prometheus_cluster_exporter.sources.prometheus import parse_jobid_vector, parse_target_vector
from prometheus_cluster_exporter.sources.slurm import parse_sacct, parse_squeue, parse_squeue_json

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


def sample_like() -> st.SearchStrategy[Any]:
    labels = st.dictionaries(
        st.sampled_from(["jobid", "target", "fs", "x"]),
        st.text(max_size=40) | st.integers() | st.none(),
        max_size=4,
    )
    value = st.lists(st.floats() | st.text(max_size=10) | st.integers(), max_size=3)
    return st.fixed_dictionaries({"metric": labels, "value": value}) | json_values


def answer(results: list[Any]) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": results}}


@given(st.binary(max_size=400))
def test_text_parsers_never_raise(data: bytes) -> None:
    for parse in (parse_squeue, parse_passwd, parse_group, parse_sacct):
        try:
            parsed = parse(data)
        except SourceError:
            continue
        assert isinstance(parsed, Parsed)


@given(st.lists(st.text(alphabet="0123456789|:abc .()\n\t", max_size=30), max_size=20))
def test_text_parsers_on_near_miss_lines(lines: list[str]) -> None:
    data = "\n".join(lines).encode()
    for parse in (parse_squeue, parse_passwd, parse_group, parse_sacct):
        try:
            parsed = parse(data)
        except SourceError as exc:
            assert "none of the" in str(exc)
            continue
        assert parsed.skipped >= 0


@given(json_values)
def test_squeue_json_never_raises(payload: Any) -> None:
    for document in (payload, {"jobs": payload}, {"jobs": [payload]}):
        with contextlib.suppress(SourceError):
            parse_squeue_json(json.dumps(document).encode())


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(json_values | st.lists(sample_like(), max_size=8).map(answer))
def test_query_answers_never_raise(payload: Any) -> None:
    for parse in (
        lambda p: parse_jobid_vector(p, "jobid", "read query"),
        lambda p: parse_jobid_vector(p, "jobid", "read query", fs_label="fs"),
        lambda p: parse_target_vector(p, "jobid", "target", ".*-MDT[0-9a-f]{4}", "metadata query"),
    ):
        try:
            parsed = parse(payload)
        except SourceError:
            continue
        for record in parsed.items:
            assert isinstance(record.jobid, str) and math.isfinite(record.value)


label_text = st.text(min_size=1, max_size=25)


class _Lustre:
    def __init__(self, rows: list[tuple[str, float]]) -> None:
        self.rows = rows

    def read_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[list[JobidRate]]:
        return Parsed([JobidRate(j, v, "") for j, v in self.rows])

    def write_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[list[JobidRate]]:
        return Parsed([])

    def metadata_rates(
        self, deadline: float, at: Optional[float] = None
    ) -> Parsed[list[TargetRate]]:
        return Parsed([TargetRate(j, v, "fs-MDT0000", "fs") for j, v in self.rows])


class _Jobs:
    def __init__(self, jobs: list[SlurmJob]) -> None:
        self.listing = jobs

    def jobs(self, deadline: float) -> Parsed[list[SlurmJob]]:
        return Parsed(self.listing)


class _Identities:
    def __init__(self, users: dict[int, PasswdEntry], groups: dict[int, str]) -> None:
        self.u, self.g = users, groups

    def users(self, deadline: float) -> Parsed[dict[int, PasswdEntry]]:
        return Parsed(self.u)

    def groups(self, deadline: float) -> Parsed[dict[int, str]]:
        return Parsed(self.g)

    def lookup_users(self, uids: Any, deadline: float) -> Parsed[dict[int, PasswdEntry]]:
        return Parsed({})

    def lookup_groups(self, gids: Any, deadline: float) -> Parsed[dict[int, str]]:
        return Parsed({})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    accounts=st.lists(st.tuples(label_text, label_text), min_size=1, max_size=4),
    procs=st.lists(st.tuples(label_text, label_text, label_text), min_size=1, max_size=4),
    junk=st.lists(st.text(max_size=20), max_size=4),
)
def test_every_label_value_round_trips_through_the_exposition(
    accounts: list[tuple[str, str]], procs: list[tuple[str, str, str]], junk: list[str]
) -> None:
    jobs = [SlurmJob(str(100 + i), a, u) for i, (a, u) in enumerate(accounts)]
    users = {2000 + i: PasswdEntry(user, 3000 + i) for i, (_, user, _) in enumerate(procs)}
    groups = {3000 + i: group for i, (_, _, group) in enumerate(procs)}
    rows = [(job.jobid, 1.5) for job in jobs]
    rows += [(f"{name}.{2000 + i}", 2.0) for i, (name, _, _) in enumerate(procs)]
    rows += [(j, 0.25) for j in junk]
    collector = ClusterCollector(
        _Lustre(rows), _Jobs(jobs), _Identities(users, groups), timeout=5, grammar=JobidGrammar()
    )
    try:
        text = render(collector.scrape()).decode()
    finally:
        collector.close()
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    job_read = {
        (s.labels["account"], s.labels["user"]): s.value
        for s in parsed["cluster_job_read_throughput_bytes"].samples
    }
    expected: dict[tuple[str, str], float] = {}
    for job in jobs:
        expected[(job.account, job.user)] = expected.get((job.account, job.user), 0) + 1.5
    assert job_read == expected
    proc_read = {
        (s.labels["proc_name"], s.labels["group_name"], s.labels["user_name"])
        for s in parsed["cluster_proc_read_throughput_bytes"].samples
    }
    wanted = set()
    for i, (name, user, _) in enumerate(procs):
        ref = JobidGrammar().parse(f"{name}.{2000 + i}")
        if ref is not None:
            wanted.add((ref.proc_name, groups[3000 + i], user))  # type: ignore[union-attr]
    assert proc_read == wanted
    assert parsed["cluster_exporter_scrape_ok"].samples[0].value == 1
