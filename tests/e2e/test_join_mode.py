"""Join mode on the real components: the attribution done by recording rules inside
Prometheus, and inside VictoriaMetrics by vmalert, must equal direct mode's.

Each backend scrapes the simulated Lustre exporters (the same synthetic cluster and real
Slurm jobs as the ground-truth tests) and two join-mode exporters (an HA pair: every
info series comes twice), and evaluates the rules ``prometheus-cluster-exporter rules``
prints, with the shipped recording rules and alerts beside them. Every recorded series
must equal the ground truth and direct mode's value (a direct-mode exporter querying the
same backend) within 2 %, nothing else may be recorded, and job + process + unattributed
must add up to the filesystems' total.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
import yaml

from tests.e2e import components as c
from tests.e2e.conftest import GETENT_SSSD, GROUP_OF, uid
from tests.e2e.test_dashboard_and_rules import RULES, dashboard_queries, substitute
from tests.e2e.test_ground_truth import (
    FAMILIES,
    KINDS,
    OPERATIONS,
    Expected,
    differences,
    matching_scrape,
)
from tests.e2e.test_top_jobs import FAMILIES as TOP_FAMILIES
from tests.e2e.test_top_jobs import biggest, known_rates
from tests.helpers import Scrape

pytestmark = pytest.mark.e2e

Labels = Tuple[Tuple[str, str], ...]
#: A recorded series counts if it has a point this recent (vmalert evaluates every 2 s).
RECENT = "6s"
EXPORTER_ARGS = (
    "--timerange=5s", "--timeout=10", f"--getent.path={GETENT_SSSD}", "--metrics.operations"
)  # fmt: skip
#: Every attributed family, the operations included.
ALL = FAMILIES + OPERATIONS
#: Dashboard panels of direct mode only: join mode's top jobs are a topk (TOP_JOBS_QUERY).
DIRECT_ONLY = {"Top jobs now", "Bytes this month per account"}
#: The README's top jobs for join mode: a topk over the Lustre series joined with the info.
TOP_JOBS_QUERY = """topk(10,
  sum by (jobid) (
    label_replace(irate(lustre_job_read_bytes_total{jobid=~"[0-9]+"}[1m]), "io", "read", "", "")
    or
    label_replace(irate(lustre_job_write_bytes_total{jobid=~"[0-9]+"}[1m]), "io", "write", "", "")
  )
  * on (jobid) group_left (account, user)
  topk by (jobid) (1, max by (jobid, account, user) (last_over_time(cluster_job_info[5m])))
)"""
README = Path(__file__).resolve().parents[2] / "README.md"


def print_rules(path: Path, *flags: str) -> Path:
    result = subprocess.run(
        [*c.exporter_command(), "rules", *flags],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    path.write_text(result.stdout)
    return path


@pytest.fixture(scope="module", params=["prometheus", "victoriametrics"])
def join_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, simulation: dict
) -> Iterator[Dict[str, str]]:
    """A backend with the Lustre series, an HA pair of join-mode exporters and the rules."""
    tmp = tmp_path_factory.mktemp(f"join-{request.param}")
    rules = print_rules(tmp / "join-rules.yml", *EXPORTER_ARGS)
    port = c.free_port()
    url = f"http://127.0.0.1:{port}"
    started: List[c.Process] = []
    try:
        exporters = []
        for name in ("join-a", "join-b"):
            proc, exporter = c.start_exporter(tmp, url, "--mode=join", *EXPORTER_ARGS, name=name)
            started.append(proc)
            exporters.append(exporter)
        scraped = [("cluster-exporter", [e.replace("http://", "") for e in exporters], "2s")]
        if request.param == "prometheus":
            proc, _ = c.start_prometheus(
                tmp, simulation["targets"], rule_files=[str(rules), str(RULES)],
                more_jobs=scraped, port=port,
            )  # fmt: skip
            started.append(proc)
            evaluator = url
        else:
            proc, _ = c.start_victoria_metrics(tmp, simulation["targets"], scraped, port=port)
            started.append(proc)
            vmalert, evaluator = c.start_vmalert(tmp, url, [str(rules), str(RULES)])
            started.append(vmalert)
        yield {"url": url, "exporter": exporters[0], "evaluator": evaluator}
    finally:
        for proc in reversed(started):
            proc.stop()


def recorded(url: str) -> Scrape:
    """The families as the backend holds them now, as if scraped."""
    lines = []
    for family in ALL:
        lines.append(f"# TYPE {family} gauge")
        for sample in c.instant_query(url, f"last_over_time({family}[{RECENT}])"):
            found = sorted(sample["metric"].items())
            labels = ",".join(f'{k}="{v}"' for k, v in found if k != "__name__")
            lines.append(f"{family}{{{labels}}} {sample['value'][1]}")
    return Scrape("\n".join(lines) + "\n")


def rule_errors(evaluator: str) -> List[str]:
    """The rules the evaluator (Prometheus or vmalert) reports as failing, and why."""
    payload = json.loads(c.http_get(evaluator + "/api/v1/rules"))
    return [
        f"{rule.get('name')}: {rule.get('lastError')}"
        for group in payload["data"]["groups"]
        for rule in group["rules"]
        if rule.get("lastError")
    ]


def matching_records(site: Dict[str, str], expected: Expected) -> Scrape:
    last: List[Scrape] = []

    def attempt() -> bool:
        last[:] = [recorded(site["url"])]
        return not differences(last[0], expected, ALL)

    try:
        c.wait_until(attempt, 90, "the rules to record the ground truth", interval=1.0)
    except AssertionError:
        problems = differences(last[0], expected, ALL) if last else ["nothing recorded"]
        errors = rule_errors(site["evaluator"])
        raise AssertionError(
            "recorded series disagree:\n" + "\n".join([*problems, "rule errors:", *errors])
        ) from None
    return last[0]


def test_recorded_series_equal_the_ground_truth(
    join_site: Dict[str, str], simulation: dict
) -> None:
    s = matching_records(join_site, simulation["expected_ops"])
    for what in ("read", "write"):
        exported = math.fsum(
            v
            for kind in KINDS
            for v in s.series(f"cluster_{kind}_{what}_throughput_bytes").values()
        )
        produced = math.fsum(job.get(what, 0) for job in simulation["spec"]["jobs"])
        assert math.isclose(exported, produced, rel_tol=0.02), (what, exported, produced)
    # The reasons PromQL tells apart, and a directory user resolved by key.
    for reason in ("unknown_job", "unknown_uid", "unparsable_jobid"):
        assert s.value("cluster_unattributed_read_throughput_bytes", reason=reason), reason
    assert s.value(
        "cluster_proc_read_throughput_bytes",
        proc_name="vim",
        group_name="hpc-geo",
        user_name="dave",
    ) == pytest.approx(2222, rel=0.02)


def test_recorded_series_equal_direct_mode(
    join_site: Dict[str, str], simulation: dict, tmp_path: Path
) -> None:
    """A direct-mode exporter querying the same backend reports the same series."""
    proc, url = c.start_exporter(tmp_path, join_site["url"], *EXPORTER_ARGS, name="direct")
    try:
        direct = matching_scrape(url, simulation["expected_ops"], families=ALL)
    finally:
        proc.stop()
    joined = matching_records(join_site, simulation["expected_ops"])
    for family in ALL:
        want, got = direct.series(family), joined.series(family)
        assert set(got) == set(want), family
        for labels, value in want.items():
            assert got[labels] == pytest.approx(value, rel=0.02), (family, labels)


def test_join_exporter_exports_the_owners_only(join_site: Dict[str, str], simulation: dict) -> None:
    jobs = simulation["jobs"]

    def owners() -> Scrape:
        s = Scrape(c.http_get(join_site["exporter"] + "/metrics", timeout=30).decode())
        return s if s.value("cluster_exporter_scrape_ok") == 1 else None  # type: ignore[return-value]

    s = c.wait_until(owners, 30, "a join-mode scrape with scrape_ok 1")
    info = s.series("cluster_job_info")
    for jobid, (account, user) in jobs.owners.items():
        assert info[(("account", account), ("jobid", jobid), ("user", user))] == 1
    users = s.series("cluster_user_info")
    for name in ("alice", "bob", "dave", "root"):  # dave only by a keyed lookup
        key = (("group_name", GROUP_OF[name]), ("uid", str(uid(name))), ("user_name", name))
        assert users[key] == 1, name
    assert not any(dict(k)["uid"] == "59999" for k in users), "unknown uid has no owner"
    text = json.dumps([family for family in ALL + TOP_FAMILIES if s.has(family)])
    assert text == "[]", f"join mode exports no attributed family: {text}"
    stages = {dict(k)["name"] for k in s.series("cluster_exporter_stage_execution_seconds")}
    assert {"retrieve_running_jobs", "retrieve_process_uids", "build_info_metrics"} <= stages


def test_dashboard_and_shipped_rules_work_on_join_series(join_site: Dict[str, str]) -> None:
    url = join_site["url"]
    c.wait_until(
        lambda: c.instant_query(url, "cluster:io_throughput_bytes:sum"),
        90,
        "the shipped recording rules to evaluate over join mode's series",
    )
    empty: List[str] = []

    def all_answer() -> bool:
        # The rule groups evaluate independently: the first results arrive apart.
        empty[:] = [f"{title}: {expr}" for title, expr in dashboard_queries()
                    if title not in DIRECT_ONLY and not c.instant_query(url, substitute(expr))]  # fmt: skip
        return not empty

    try:
        c.wait_until(all_answer, 60, "every dashboard query to have data")
    except AssertionError:
        raise AssertionError(
            "dashboard queries without data in join mode:\n" + "\n".join(empty)
        ) from None
    records = [r["record"] for g in yaml.safe_load(RULES.read_text())["groups"]
               for r in g["rules"] if "record" in r]  # fmt: skip
    missing: List[str] = []

    def all_recorded() -> bool:
        # vmalert writes a rule's result back with a delay, so a rule reading another's
        # output (the unattributed ratio) has data a few evaluations later.
        missing[:] = [r for r in records if not c.instant_query(url, r)]
        return not missing

    try:
        c.wait_until(all_recorded, 60, "every shipped recording rule to have data")
    except AssertionError:
        raise AssertionError(
            f"shipped recording rules without data in join mode: {missing}"
        ) from None


def test_top_jobs_are_a_topk_over_the_joined_series(
    join_site: Dict[str, str], simulation: dict
) -> None:
    assert TOP_JOBS_QUERY in README.read_text(), "the README shows the tested query"
    direct_only = [e for t, e in dashboard_queries() if t in DIRECT_ONLY]
    # Direct mode's own families: the top jobs (this query instead) and the counters.
    assert direct_only and all("cluster_top_job_" in e or "_bytes_total[" in e for e in direct_only)
    assert any("cluster_top_job_" in e for e in direct_only)
    rates = known_rates(simulation)
    want = biggest(rates, 3)
    query = TOP_JOBS_QUERY.replace("topk(10,", "topk(3,", 1)
    found: List[Dict[str, float]] = [{}]

    def top() -> bool:
        answer = c.instant_query(join_site["url"], query)
        found[0] = {s["metric"]["jobid"]: float(s["value"][1]) for s in answer}
        return set(found[0]) == set(want) and all(
            math.isclose(found[0][j], rates[j][0] + rates[j][1], rel_tol=0.02) for j in want
        )

    try:
        c.wait_until(top, 60, "the topk to give the three biggest jobs")
    except AssertionError:
        raise AssertionError(f"topk gave {found[0]}, want {want}") from None
    owners = simulation["jobs"].owners
    answer = c.instant_query(join_site["url"], query)
    assert {(s["metric"]["account"], s["metric"]["user"]) for s in answer} == {
        owners[j] for j in want
    }


@pytest.mark.parametrize(
    "flags",
    [
        (),
        ("--metrics.fs-label", "--query.rate-function=rate", "--timerange=2m"),
        ("--lustre.jobid-format=%j:%u:%H", "--lustre.jobid-format=%e:%u:%H"),
        ("--lustre.jobid-label=job", "--lustre.target-label=ost", "--lustre.jobid-format=%e.%u"),
        ("--metrics.metadata-by-operation", "--metrics.fs-label", "--metrics.max-series=5"),
    ],
    ids=["default", "fs-rate", "host-forms", "labels-procs-only", "by-operation"],
)
def test_printed_rules_pass_promtool(flags: Tuple[str, ...], tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        c.unavailable("promtool is not installed (Debian package prometheus)")
    rules = print_rules(tmp_path / "rules.yml", *flags)
    checked = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout
    if "--metrics.metadata-by-operation" in flags:
        assert "sum by(target,jobid,operation)" in rules.read_text()
