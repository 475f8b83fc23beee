"""Join mode's rules as text: the jobid forms read ids as direct mode does, the rules
cover every family and reason, follow the site's flags, and the shipped file is the
default output. (Prometheus and vmalert evaluating them: tests/e2e/test_join_mode.py.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from prometheus_cluster_exporter import jobidre
from prometheus_cluster_exporter.cli import main
from prometheus_cluster_exporter.jobid import JobidGrammar, JobRef, ProcRef
from prometheus_cluster_exporter.joinrules import JoinPlan
from prometheus_cluster_exporter.promql import LustreSeries

SHIPPED = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "join-rules.yml"
SITE_FORMATS: List[Tuple[str, ...]] = [
    ("%j", "%e.%u"),
    ("%e.%u",),
    ("%j:%u:%H", "%e:%u:%H"),
    ("%e.%u.%H",),
    ("%j.%u", "%e.%u"),
    ("%u:%e",),
    ("%e.%u", "%j"),
]
#: Ids seen in the field (see the README's "Jobids").
CORPUS = ["12345", "0123", "0", '"1125"', "mpirun.1001", "my.app.1001", "kworker/86:1.0",
          "(ostnamed).0", ".0", "abc .0123 .-_+ .1000", "node_exporter:989:es-2-virt3-co",
          "4242:1001:node01", "app:1001:n1", "rsync.0.host", "nodot", "", "12.34", "a.b",
          "1001:vim", '"1001:vim"', '"app.1001"', '".0"', '":1:b"', '"x.1', 'x.1"', '""', '"4242:1001:n1"', '"app:1001:n1"', '"0"',
          "x" * 30 + ".1", "9" * 31, "app." + "1" * 27]  # fmt: skip

Owner = Union[Tuple[str, str], Tuple[str, str, int], None]


def by_rules(forms: Sequence[jobidre.Form], jobid: str) -> Owner:
    """What the rules' matchers and label_replace make of an id (RE2 is anchored)."""
    if re.fullmatch(jobidre.LONG, jobid):
        return None
    quoted = re.fullmatch(jobidre.QUOTED, jobid) is not None
    for form in forms:
        if form.quoted != quoted:
            continue
        match = re.fullmatch(form.regex, jobid)
        if match is None:
            continue
        group = match.group
        if form.is_job:
            return ("job", group(int(form.job[1:])))  # type: ignore[index]
        return ("proc", group(int(form.name[1:])), int(group(int(form.uid[1:]))))  # type: ignore[index]
    return None


def by_grammar(formats: Sequence[str], jobid: str) -> Owner:
    ref = JobidGrammar(formats).parse(jobid)
    if isinstance(ref, JobRef):
        return ("job", ref.jobid)
    if isinstance(ref, ProcRef):
        return ("proc", ref.proc_name, ref.uid)
    return None


def comparable(jobid: str) -> bool:
    """Outside what the README names as join mode's difference: 31 bytes or more."""
    return len(jobid) < 31


@pytest.mark.parametrize("formats", SITE_FORMATS, ids=" then ".join)
def test_forms_read_the_field_corpus_as_direct_mode(formats: Tuple[str, ...]) -> None:
    forms = jobidre.forms_of(formats)
    for jobid in filter(comparable, CORPUS):
        assert by_rules(forms, jobid) == by_grammar(formats, jobid), jobid


@settings(max_examples=300, deadline=None)
@given(
    formats=st.sampled_from(SITE_FORMATS),
    jobid=st.one_of(
        st.text(alphabet='0123456789abz.:_- "/', max_size=30),
        st.text(alphabet="0123456789abz.:_- /", max_size=28).map(lambda text: f'"{text}"'),
    ),
)
def test_forms_read_any_id_as_direct_mode(formats: Tuple[str, ...], jobid: str) -> None:
    if comparable(jobid):
        assert by_rules(jobidre.forms_of(formats), jobid) == by_grammar(formats, jobid)


def test_ids_of_31_characters_or_more_are_unparsable_in_both_modes() -> None:
    forms = jobidre.forms_of(("%j", "%e.%u"))
    for jobid in ("9" * 31, "1" * 40, "app." + "1" * 27, '"' + "1" * 31 + '"'):
        assert by_rules(forms, jobid) is None
        assert by_grammar(("%j", "%e.%u"), jobid) is None
    assert by_rules(forms, '"' + "1" * 29 + '"') == ("job", "1" * 29), "quotes do not count"


def test_a_form_that_names_nobody_is_left_out() -> None:
    assert jobidre.form_of("%u:%H") is None  # a uid without an executable names no owner
    assert [(f.text, f.quoted) for f in jobidre.forms_of(("%u:%H", "%j"))] == [
        ("%j", True),
        ("%j", False),
    ]
    assert jobidre.escape("a.b+c(d)") == "a\\.b\\+c\\(d\\)"


def rules_of(*flags: str, capsys: pytest.CaptureFixture[str]) -> Tuple[str, List[Dict]]:
    assert main(["rules", *flags]) == 0
    text = capsys.readouterr().out
    groups = yaml.safe_load(text)["groups"]
    assert [g["name"] for g in groups][:3] == [
        "cluster-exporter.join.read", "cluster-exporter.join.write", "cluster-exporter.join.metadata"
    ]  # fmt: skip
    return text, [rule for group in groups for rule in group["rules"]]


def reasons(rules: List[Dict], family: str) -> Set[Optional[str]]:
    return {r.get("labels", {}).get("reason") for r in rules if r["record"] == family}


def test_shipped_join_rules_are_the_default_output(capsys: pytest.CaptureFixture[str]) -> None:
    text, _ = rules_of(capsys=capsys)
    assert SHIPPED.read_text() == text, "regenerate: prometheus-cluster-exporter rules"


def test_rules_record_every_family_under_direct_modes_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, rules = rules_of(capsys=capsys)
    for what in ("read_throughput_bytes", "write_throughput_bytes", "metadata_operations"):
        records = {r["record"] for r in rules}
        assert {f"cluster_job_{what}", f"cluster_proc_{what}"} <= records
        assert reasons(rules, f"cluster_unattributed_{what}") == {
            "unknown_job", "unknown_uid", "unknown_gid", "unparsable_jobid"
        }  # fmt: skip
    by_record = {r["record"]: r["expr"] for r in rules if "labels" not in r}
    assert by_record["cluster_job_read_throughput_bytes"].startswith("sum by (account, user) (")
    assert "sum by (account, user, target) (" in by_record["cluster_job_metadata_operations"]
    assert "group_left (user_name, group_name)" in by_record["cluster_proc_write_throughput_bytes"]
    # Duplicate info series (HA) and a missed scrape do not break the join.
    assert (
        "max by (jobid, account, user) (last_over_time(cluster_job_info[5m]))"
        in (by_record["cluster_job_read_throughput_bytes"])
    )


def test_rules_follow_the_site_flags(capsys: pytest.CaptureFixture[str]) -> None:
    text, rules = rules_of(
        "--lustre.jobid-label=job", "--lustre.read-metric=jobstats_read_bytes",
        "--timerange=2m", "--query.rate-function=rate", "--metrics.fs-label",
        "--join.info-lookback=15m", "--lustre.jobid-format=%e.%u", capsys=capsys,
    )  # fmt: skip
    assert "rate(jobstats_read_bytes{job=~" in text and "irate(" not in text
    assert "[2m]" in text and "[15m]" in text and "jobid=~" not in text
    assert "sum by (proc_name, group_name, user_name, fs) (" in text
    # No job form: no job families and no unknown_job; every id is a process or lost.
    assert not any(r["record"].startswith("cluster_job_") for r in rules)
    assert "unknown_job" not in text


@pytest.mark.parametrize(
    "server", [["--promserver=http://alice:s3cret@prom:9090"],
               ["--promserver", "http://alice:s3cret@prom:9090"],
               ["-promserver", "http://alice:s3cret@prom:9090", "-promserver.user", "bob"]],
)  # fmt: skip
def test_rules_header_shows_the_rule_flags_only(
    server: List[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """An options file works as it is: the server, credentials and certificate files are
    neither shown nor read; the settings the rules depend on are repeated."""
    text, _ = rules_of(
        *server, "--promserver.bearer-token-file=/nonexistent", "--web.config.file=/nope",
        "--timerange", "2m", "--port=1234", capsys=capsys,
    )  # fmt: skip
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert "s3cret" not in text and "prom:9090" not in text and "bob" not in text
    assert "#   prometheus-cluster-exporter rules --timerange=2m" in header


def test_rules_header_stays_a_comment(capsys: pytest.CaptureFixture[str]) -> None:
    text, _ = rules_of("--lustre.mdt-target-regex=.*\ngroups: x", capsys=capsys)
    assert "groups: x" not in [line.strip() for line in text.splitlines()]


def test_plan_queries_for_the_exporter() -> None:
    plan = JoinPlan.build(LustreSeries(), ("%j", "%e.%u"), "5m")
    assert plan.uids_query().startswith("group by (uid) (label_replace({__name__=~")
    assert "unless on (jobid)" in plan.unknown_jobs_query()
    procs_only = JoinPlan.build(LustreSeries(), ("%e.%u",), "5m")
    assert procs_only.unknown_jobs_query() == ""
    assert JoinPlan.build(LustreSeries(), ("%j",), "5m").uids_query() == ""


def test_rules_record_the_operations_families_with_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text, rules = rules_of("--metrics.operations", capsys=capsys)
    for what in ("read", "write"):
        assert {f"cluster_job_{what}_operations", f"cluster_proc_{what}_operations"} <= {
            r["record"] for r in rules
        }  # fmt: skip
        assert reasons(rules, f"cluster_unattributed_{what}_operations") == {
            "unknown_job", "unknown_uid", "unknown_gid", "unparsable_jobid"
        }  # fmt: skip
        for family in (f"cluster_job_{what}_operations", f"cluster_proc_{what}_operations"):
            expr = next(r["expr"] for r in rules if r["record"] == family)
            assert f"irate(lustre_job_{what}_samples_total{{" in expr, family
            assert "_bytes_total" not in expr and "_samples_total" in expr
    groups = [g["name"] for g in yaml.safe_load(text)["groups"]]
    assert groups[3:] == ["cluster-exporter.join.read_operations",
                          "cluster-exporter.join.write_operations"]  # fmt: skip
    assert "rules --metrics.operations" in text
    plain, _ = rules_of(capsys=capsys)
    assert "samples" not in plain
