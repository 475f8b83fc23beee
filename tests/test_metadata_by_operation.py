"""--metrics.metadata-by-operation: the metadata query summed by operation as well, the
operation kept by every parser (scanner, typed decoder, tolerant parser), attributed per
operation without losing a call, the families' ``operation`` label after the MDT (and
before ``fs``), nothing of it by default; join mode's rules by operation with the flag,
the shipped rules unchanged. Through the real CLI: tests at the end of the file."""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from prometheus_cluster_exporter import families as fam
from prometheus_cluster_exporter.cli import main
from prometheus_cluster_exporter.collector import ClusterCollector
from prometheus_cluster_exporter.config import Config
from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.exposition import render
from prometheus_cluster_exporter.flags import parse_args
from prometheus_cluster_exporter.jsonutil import vector_decoder
from prometheus_cluster_exporter.promql import LustreSeries
from prometheus_cluster_exporter.records import Parsed, PasswdEntry, SlurmJob, TargetRate
from prometheus_cluster_exporter.sources.httpbody import Body
from prometheus_cluster_exporter.sources.prometheus import LustreQueries, PrometheusLustreSource
from prometheus_cluster_exporter.sources.promscan import scan_vector
from prometheus_cluster_exporter.sources.promvector import parse_target_vector
from prometheus_cluster_exporter.wiring import build_collector, build_sources
from tests.helpers import JOB_META, LOST_META, OK, PROC_META, Exporter, FakePrometheus, Scrape

MDT = ".*-MDT[0-9a-fA-F]{4}"
DEFAULT = f'round(sum by(target,jobid)(irate(lustre_job_stats_total{{target=~"{MDT}"}}[1m]) >= 1))'
BY_OPERATION = (
    f"round(sum by(target,jobid,operation)"
    f'(irate(lustre_job_stats_total{{target=~"{MDT}"}}[1m]) >= 1))'
)
META = (JOB_META, PROC_META, LOST_META)
LABELS = ("jobid", "target", "operation")
#: (jobid, target, operation, value): a job, a process, an unknown job, an id no grammar
#: explains, an OST (not a metadata target) and a NaN.
SAMPLES = [
    ("4242", "scratch-MDT0000", "open", "20"),
    ("4242", "scratch-MDT0000", "close", "18"),
    ("4242", "scratch-MDT0001", "open", "5"),
    ("4243", "scratch-MDT0000", "getattr", "7"),
    ("rsync.1002", "home-MDT0000", "unlink", "40"),
    ("rsync.1002", "home-MDT0000", "open", "2"),
    ("9999", "scratch-MDT0000", "open", "3"),
    ("nodot", "scratch-MDT0000", "mkdir", "1"),
    ("4242", "scratch-OST0000", "punch", "99"),
    ("4242", "scratch-MDT0000", "statfs", "NaN"),
]
Row = Tuple[Tuple[str, ...], str, float]


def answer(samples: List[Tuple[str, str, str, str]], spaced: bool = False) -> bytes:
    """An answer by operation, as Prometheus writes it (compact, labels sorted)."""
    result = [
        {"metric": dict(sorted(zip(LABELS, sample[:3]))), "value": [1733090000.123, sample[3]]}
        for sample in samples
    ]
    payload = {"status": "success", "data": {"resultType": "vector", "result": result}}
    separators = (", ", ": ") if spaced else (",", ":")
    return json.dumps(payload, separators=separators, ensure_ascii=False).encode()


def expected(samples: List[Tuple[str, str, str, str]], fs_label: bool) -> List[Row]:
    rows = []
    for jobid, target, operation, value in samples:
        if "MDT" in target and math.isfinite(float(value)):
            fs = (target.split("-")[0],) if fs_label else ()
            rows.append(((target, operation, *fs), jobid, float(value)))
    return sorted(rows)


class Canned:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.asked: List[str] = []

    def query_body(self, promql: str, deadline: float, what: str, at: object = None) -> Body:
        self.asked.append(promql)
        return Body([self.body], "identity", 0, what)


def metadata(body: bytes, fs_label: bool) -> Tuple[List[Row], int, List[str]]:
    client = Canned(body)
    queries = LustreQueries.build(fs_label=fs_label, metadata_by_operation=True)
    parsed = PrometheusLustreSource(client, queries).metadata_rates(math.inf)  # type: ignore[arg-type]
    found = [(c.extra, j, v) for c in parsed.items for j, v in zip(c.jobids, c.values)]
    return sorted(found), parsed.skipped, client.asked


# -- the query ---------------------------------------------------------------------------


def test_the_query_is_by_operation_only_with_the_flag() -> None:
    assert LustreSeries().metadata_query == DEFAULT
    assert LustreQueries.build().metadata == DEFAULT
    assert LustreSeries(metadata_by_operation=True).metadata_query == BY_OPERATION
    assert LustreQueries.build(metadata_by_operation=True).metadata == BY_OPERATION
    site = LustreSeries(rate_function="rate", window="2m", stats_metric="md_calls",
                        jobid_label="job", target_label="mdt", metadata_by_operation=True)  # fmt: skip
    assert site.metadata_query == (
        f'round(sum by(mdt,job,operation)(rate(md_calls{{mdt=~"{MDT}"}}[2m]) >= 1))'
    )
    # The throughput queries do not change.
    assert LustreSeries(metadata_by_operation=True).read == LustreSeries().read


def test_the_labels_after_the_owner_put_the_operation_after_the_target() -> None:
    assert LustreSeries(metadata_by_operation=True).extra_labels(True) == ("target", "operation")
    with_fs = LustreSeries(metadata_by_operation=True, fs_label=True)
    assert with_fs.extra_labels(True) == ("target", "operation", "fs")
    assert with_fs.extra_labels(False) == ("fs",)
    assert LustreSeries(fs_label=True).extra_labels(True) == ("target", "fs")


# -- the parsers -------------------------------------------------------------------------


@pytest.mark.parametrize("fs_label", [False, True])
def test_every_parser_keeps_the_operation(fs_label: bool) -> None:
    want = expected(SAMPLES, fs_label)
    compact, spaced = answer(SAMPLES), answer(SAMPLES, spaced=True)
    odd = json.loads(compact)
    odd["data"]["result"].append({"metric": {"jobid": "1", "target": "scratch-MDT0000"},
                                  "value": [1733090000.123, "4"]})  # fmt: skip
    tolerant = json.dumps(odd).encode()
    # Which path takes which answer: the scanner the compact one, the typed decoder the
    # spaced one, the tolerant parser the one with a sample lacking its operation.
    assert scan_vector(compact, LABELS) is not None
    assert scan_vector(spaced, LABELS) is None
    decoder = vector_decoder(LABELS)
    assert decoder is not None and decoder.decode(spaced) is not None
    assert decoder.decode(tolerant) is None
    for body, skipped in ((compact, 2), (spaced, 2), (tolerant, 3)):
        rows, count, asked = metadata(body, fs_label)
        assert rows == want
        assert count == skipped  # the OST, the NaN (and the sample without operation)
        assert asked == [BY_OPERATION]  # the fs comes from the target, not the query


def test_the_tolerant_parser_needs_the_operation_only_when_asked() -> None:
    payload = json.loads(answer(SAMPLES))
    by_op = parse_target_vector(payload, "jobid", "target", MDT, "m", operation_label="operation")
    assert {r.operation for r in by_op.items} == {"open", "close", "getattr", "unlink", "mkdir"}
    plain = parse_target_vector(payload, "jobid", "target", MDT, "m")
    assert {r.operation for r in plain.items} == {""}


values = st.one_of(st.integers(1, 10**9).map(str), st.sampled_from(["NaN", "+Inf", "1.5"]))
ids = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\'),
              max_size=12)  # fmt: skip
targets = st.sampled_from(["scratch-MDT0000", "home-MDT0001", "scratch-OST0001"])
operations = st.sampled_from(["open", "close", "getattr", "set_info", "unlink"])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(ids, targets, operations, values), max_size=25), st.booleans())
def test_the_scanner_agrees_with_the_tolerant_parser(
    samples: List[Tuple[str, str, str, str]], fs_label: bool
) -> None:
    body = answer(samples)
    assert scan_vector(body, LABELS) is not None
    try:
        got: Optional[List[Row]] = metadata(body, fs_label)[0]
    except SourceError:  # both fail alike: every sample unusable
        got = None
    try:
        parse_target_vector(json.loads(body), "jobid", "target", MDT, "m", math.inf, "operation")
        want: Optional[List[Row]] = expected(samples, fs_label)
    except SourceError:
        want = None
    assert got == want


# -- attribution and families ------------------------------------------------------------


class Lustre:
    def __init__(self, rows: List[TargetRate]) -> None:
        self.rows = rows

    def read_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[list]:
        return Parsed([])

    write_rates = read_rates

    def metadata_rates(self, deadline: float, at: Optional[float] = None) -> Parsed[list]:
        return Parsed(list(self.rows))


class Jobs:
    def jobs(self, deadline: float) -> Parsed[List[SlurmJob]]:
        return Parsed([SlurmJob("4242", "physics", "alice"), SlurmJob("4243", "physics", "bob")])


class Identities:
    def users(self, deadline: float) -> Parsed[Dict[int, PasswdEntry]]:
        return Parsed({1002: PasswdEntry("bob", 2002)})

    def groups(self, deadline: float) -> Parsed[Dict[int, str]]:
        return Parsed({2002: "hpc-chem"})

    def lookup_users(self, uids: Any, deadline: float) -> Parsed[Dict[int, PasswdEntry]]:
        return Parsed({})

    def lookup_groups(self, gids: Any, deadline: float) -> Parsed[Dict[int, str]]:
        return Parsed({})


ROWS = [
    TargetRate(jobid, float(value), target, target.split("-")[0], operation)
    for jobid, target, operation, value in SAMPLES
    if "MDT" in target and value != "NaN"
]


def collect(*, by_operation: bool, fs_label: bool = False, max_series: int = 0) -> Scrape:
    collector = ClusterCollector(Lustre(ROWS), Jobs(), Identities(), timeout=5,  # type: ignore[arg-type]
                                 fs_label=fs_label, max_series=max_series,
                                 metadata_by_operation=by_operation)  # fmt: skip
    try:
        return Scrape(render(collector.scrape()).decode())
    finally:
        collector.close()


def per(s: Scrape, *labels: str) -> Dict[Tuple[str, ...], float]:
    """The metadata families' values summed by ``labels``."""
    sums: Dict[Tuple[str, ...], float] = defaultdict(float)
    for family in META:
        for key, value in s.series(family).items():
            sums[tuple(dict(key).get(label, "") for label in labels)] += value
    return dict(sums)


@pytest.mark.parametrize("max_series", [0, 1])
@pytest.mark.parametrize("fs_label", [False, True])
def test_every_operation_adds_up(fs_label: bool, max_series: int) -> None:
    """job + process + unattributed == the answer, per operation and MDT (folded too)."""
    s = collect(by_operation=True, fs_label=fs_label, max_series=max_series)
    assert s.value(OK) == 1
    want: Dict[Tuple[str, ...], float] = defaultdict(float)
    for row in ROWS:
        want[(row.operation, row.target)] += row.value
    assert per(s, "operation", "target") == dict(want)
    fs = {"fs": "scratch"} if fs_label else {}
    alice = {"account": "physics", "user": "alice", "target": "scratch-MDT0000", **fs}
    if not max_series:
        assert s.value(JOB_META, **alice, operation="open") == 20
        assert s.value(JOB_META, **alice, operation="close") == 18
        assert s.value(PROC_META, proc_name="rsync", group_name="hpc-chem", user_name="bob",
                       target="home-MDT0000", operation="unlink",
                       **({"fs": "home"} if fs_label else {})) == 40  # fmt: skip
    assert s.value(LOST_META, reason="unknown_job", target="scratch-MDT0000", operation="open",
                   **fs) == 3  # fmt: skip
    assert s.value(LOST_META, reason="unparsable_jobid", target="scratch-MDT0000",
                   operation="mkdir", **fs) == 1  # fmt: skip


@pytest.mark.parametrize("fs_label", [False, True])
def test_the_families_name_the_operation_after_the_target(fs_label: bool) -> None:
    query = fam.queries_of(False, True)[0]
    assert query is fam.METADATA_BY_OPERATION
    fs = ("fs",) if fs_label else ()
    built = fam.query_families(query, [], [], [], fs_label=fs_label, jobs_known=True,
                               identities_known=True)  # fmt: skip
    assert [f.spec.labels for f in built] == [
        ("account", "user", "target", "operation", *fs),
        ("proc_name", "group_name", "user_name", "target", "operation", *fs),
        ("reason", "target", "operation", *fs),
    ]
    # The labels a row adds are in the same order as the family's.
    extra = fam.extra_labels(query, fs_label)
    assert extra is not None
    assert extra(ROWS[0]) == ("scratch-MDT0000", "open", *(("scratch",) if fs_label else ()))
    assert all(f.spec.help.endswith(", by operation.") for f in built)
    assert [q.job.name for q in fam.queries_of(True, True)] == [
        q.job.name for q in fam.queries_of(True)
    ]


def test_without_the_flag_nothing_changes() -> None:
    """The same rows by operation, the flag off: one series per owner and MDT, their sum."""
    assert fam.queries_of(False) == fam.QUERIES and fam.queries_of(True)[0] is fam.METADATA
    s = collect(by_operation=False)
    for family in META:
        assert s.families[family].documentation == next(
            spec.help for spec in (fam.METADATA.job, fam.METADATA.proc, fam.METADATA.lost)
            if spec.name == family
        )  # fmt: skip
        assert all("operation" not in dict(k) for k in s.series(family)), family
    assert s.series(JOB_META) == {
        (("account", "physics"), ("target", "scratch-MDT0000"), ("user", "alice")): 38.0,
        (("account", "physics"), ("target", "scratch-MDT0001"), ("user", "alice")): 5.0,
        (("account", "physics"), ("target", "scratch-MDT0000"), ("user", "bob")): 7.0,
    }
    assert per(s, "target") == per(collect(by_operation=True), "target")


def test_the_flag_and_the_demo() -> None:
    assert not Config().metadata_by_operation
    config = parse_args(["--promserver=http://p:9090", "--metrics.metadata-by-operation"]).config
    assert config.metadata_by_operation
    demo = build_collector(Config(), build_sources(Config(), demo=True))
    try:
        assert fam.METADATA_BY_OPERATION in demo.queries  # type: ignore[attr-defined]
        s = Scrape(render(demo.scrape()).decode())
    finally:
        demo.close()
    operations = {dict(k)["operation"] for f in META for k in s.series(f)}
    assert {"open", "close", "getattr"} <= operations


# -- join mode's rules -------------------------------------------------------------------


def rules(*flags: str, capsys: pytest.CaptureFixture[str]) -> Tuple[str, Dict[str, List[str]]]:
    assert main(["rules", *flags]) == 0
    text = capsys.readouterr().out
    groups = {g["name"]: [r["expr"] for r in g["rules"]] for g in yaml.safe_load(text)["groups"]}
    return text, groups


@pytest.mark.parametrize("extra", [[], ["--metrics.fs-label", "--metrics.max-series=5"]])
def test_join_rules_carry_the_operation_with_the_flag(
    extra: List[str], capsys: pytest.CaptureFixture[str]
) -> None:
    plain_text, plain = rules(*extra, capsys=capsys)
    text, by_op = rules("--metrics.metadata-by-operation", *extra, capsys=capsys)
    assert not re.search(r"\boperation\b", plain_text)
    assert "rules --metrics.metadata-by-operation" in text
    metadata = by_op.pop("cluster-exporter.join.metadata")
    plain.pop("cluster-exporter.join.metadata")
    assert by_op == plain, "only the metadata rules change"
    for expr in metadata:
        assert "sum by(target,jobid,operation)" in expr, expr
        assert "sum by(target,jobid)" not in expr
    # Every sum after the per-jobid query keeps the operation (the family's labels).
    for record in ("account, user, target, operation", "proc_name, group_name, user_name, "
                   "target, operation"):  # fmt: skip
        assert any(f"sum by ({record}" in expr for expr in metadata), record


# -- through the real CLI ----------------------------------------------------------------

Start = Callable[..., Exporter]


@pytest.mark.parametrize("fs_label", [False, True])
def test_through_the_query_api(
    start_exporter: Start, fake_prometheus: FakePrometheus, fs_label: bool
) -> None:
    fake_prometheus.set("metadata", answer(SAMPLES))
    for kind in ("read", "write"):  # the fixtures' throughput answers have no fs label
        fake_prometheus.set(kind, answer([]))
    flags = ["--metrics.metadata-by-operation", *(["--metrics.fs-label"] if fs_label else [])]
    s = start_exporter(*flags).scrape()
    assert s.value(OK) == 1
    asked = [q for q in fake_prometheus.queries if "stats" in q]
    assert asked and all("sum by(target,jobid,operation)" in q for q in asked)
    if not fs_label:
        assert asked[0] == BY_OPERATION
    want: Dict[Tuple[str, ...], float] = defaultdict(float)
    for row in ROWS:
        want[(row.operation, row.target, row.fs if fs_label else "")] += row.value
    assert per(s, "operation", "target", "fs") == dict(want)
    fs = {"fs": "scratch"} if fs_label else {}
    assert s.value(JOB_META, account="physics", user="alice", target="scratch-MDT0000",
                   operation="close", **fs) == 18  # fmt: skip


def test_off_by_default_through_the_query_api(
    start_exporter: Start, fake_prometheus: FakePrometheus
) -> None:
    s = start_exporter().scrape()
    assert s.value(OK) == 1
    assert next(q for q in fake_prometheus.queries if "stats" in q) == DEFAULT
    assert s.series(JOB_META)
    assert all("operation" not in dict(k) for f in META for k in s.series(f))
