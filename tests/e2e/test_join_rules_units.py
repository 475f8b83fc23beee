"""Join mode's rules under ``promtool test rules``: Prometheus's own rule engine on series
written out here, so every case (each reason, duplicate info series from an HA pair, an
info series that ended before its job's IO, the cardinality budget) has an exact answer.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import yaml

from tests.e2e import components as c
from tests.e2e.test_join_mode import print_rules

pytestmark = pytest.mark.e2e

#: Counters sampled every minute; the rules take irate over 2 minutes, so a counter
#: growing by 60 a minute has a rate of 1 per second.
RATES = {"1": 3, "2": 2, "3": 1, "4": 7, "app.1001": 5, "vim.1005": 4, "cp.4242": 6,
         "nodot": 9, '"5"': 8}  # fmt: skip


def counter(
    jobid: str,
    rate: float,
    target: str = "scratch-OST0000",
    metric: str = "read_bytes",
    more: str = "",
) -> Dict[str, str]:
    jobid = jobid.replace('"', '\\"')
    name = f'lustre_job_{metric}_total{{jobid="{jobid}",target="{target}"{more}}}'
    return {"series": name, "values": f"0+{60 * rate:g}x10"}


def info(labels: str, values: str = "1x10") -> Dict[str, str]:
    return {"series": labels, "values": values}


INPUT = [
    *(counter(jobid, rate) for jobid, rate in RATES.items()),
    counter("1", 3, "scratch-OST0001"),  # job 1 on two OSTs: 6 in all
    # An HA pair: job 1's info twice; job 2's info ended two minutes before the evaluation.
    info('cluster_job_info{jobid="1",account="a",user="u1",instance="x"}'),
    info('cluster_job_info{jobid="1",account="a",user="u1",instance="y"}'),
    info('cluster_job_info{jobid="2",account="b",user="u2",instance="x"}', "1 1 stale"),
    info('cluster_job_info{jobid="3",account="c",user="u3",instance="x"}'),
    info('cluster_job_info{jobid="5",account="a",user="u1",instance="x"}'),
    info('cluster_user_info{uid="1001",user_name="bob",group_name="chem",instance="x"}'),
    info('cluster_user_info{uid="1005",user_name="dave",group_name="",instance="x"}'),
]  # job 4 has no info (unknown_job); uid 4242 has none (unknown_uid)

Samples = List[Tuple[str, float]]


def case(expr: str, samples: Samples) -> Dict:
    return {"expr": expr, "eval_time": "4m",
            "exp_samples": [{"labels": labels, "value": value} for labels, value in samples]}  # fmt: skip


def run_promtool(
    tmp_path: Path, rules: Path, cases: List[Dict], series: List[Dict[str, str]] = INPUT
) -> None:
    if shutil.which("promtool") is None:
        c.unavailable("promtool is not installed (Debian package prometheus)")
    tests = {"rule_files": [str(rules)], "evaluation_interval": "1m",
             "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": cases}]}  # fmt: skip
    path = tmp_path / "tests.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


READ = "cluster_job_read_throughput_bytes"
PROC = "cluster_proc_read_throughput_bytes"
LOST = "cluster_unattributed_read_throughput_bytes"


def test_every_id_lands_with_its_owner_or_reason(tmp_path: Path) -> None:
    rules = print_rules(tmp_path / "rules.yml", "--timerange=2m")
    run_promtool(tmp_path, rules, [
        # Job 1 on two OSTs, with duplicate info; job 5 is the quoted id "5", same owner.
        case(READ, [(f'{READ}{{account="a",user="u1"}}', 6 + 8),
                    (f'{READ}{{account="b",user="u2"}}', 2),
                    (f'{READ}{{account="c",user="u3"}}', 1)]),
        case(PROC, [(f'{PROC}{{proc_name="app",group_name="chem",user_name="bob"}}', 5)]),
        case(LOST, [(f'{LOST}{{reason="unknown_job"}}', 7),
                    (f'{LOST}{{reason="unknown_gid"}}', 4),
                    (f'{LOST}{{reason="unknown_uid"}}', 6),
                    (f'{LOST}{{reason="unparsable_jobid"}}', 9)]),
        # Conservation: everything the counters do, once.
        case(f"sum({{__name__=~'{READ}|{PROC}|{LOST}'}})", [("{}", sum(RATES.values()) + 3)]),
    ])  # fmt: skip


def test_the_budget_folds_the_smallest_owners_into_other(tmp_path: Path) -> None:
    rules = print_rules(tmp_path / "rules.yml", "--timerange=2m", "--metrics.max-series=1")
    folded = "cluster_exporter_folded_owners"
    run_promtool(tmp_path, rules, [
        case(READ, [(f'{READ}{{account="a",user="u1"}}', 14),
                    (f'{READ}{{account="__other__",user="__other__"}}', 3)]),
        case(PROC, [(f'{PROC}{{proc_name="app",group_name="chem",user_name="bob"}}', 5)]),
        case(f'{folded}{{family="{READ}"}}', [(f'{folded}{{family="{READ}"}}', 2)]),
        case(f'{folded}{{family="{PROC}"}}', [(f'{folded}{{family="{PROC}"}}', 0)]),
        case(f"sum({READ})", [("{}", 17)]),  # the sum is unchanged
    ])  # fmt: skip


def test_metadata_by_mdt_and_the_fs_label(tmp_path: Path) -> None:
    rules = print_rules(tmp_path / "rules.yml", "--timerange=2m", "--metrics.fs-label")
    meta = "cluster_job_metadata_operations"
    proc_meta = "cluster_proc_metadata_operations"
    series = [
        counter("1", 3, "scratch-MDT0000", "stats", ',operation="open"'),
        counter("1", 2, "scratch-MDT0000", "stats", ',operation="close"'),
        counter("1", 0.5, "scratch-MDT0001", "stats", ',operation="open"'),  # below 1/s
        counter("1", 4, "scratch-OST0000", "stats", ',operation="punch"'),  # not an MDT
        counter("app.1001", 2, "home-MDT0000", "stats", ',operation="open"'),
        counter("1", 5, "home-OST0001"),
        info('cluster_job_info{jobid="1",account="a",user="u1"}'),
        info('cluster_user_info{uid="1001",user_name="bob",group_name="chem"}'),
    ]
    run_promtool(tmp_path, rules, [
        case(meta, [(f'{meta}{{account="a",user="u1",target="scratch-MDT0000",fs="scratch"}}', 5)]),
        case(proc_meta, [(f'{proc_meta}{{proc_name="app",group_name="chem",user_name="bob",'
                          'target="home-MDT0000",fs="home"}', 2)]),
        case(READ, [(f'{READ}{{account="a",user="u1",fs="home"}}', 5)]),
    ], series)  # fmt: skip


def test_budget_keeps_ties_folds_per_mdt_and_never_doubles_other(tmp_path: Path) -> None:
    rules = print_rules(tmp_path / "rules.yml", "--timerange=2m", "--metrics.max-series=1")
    meta = "cluster_job_metadata_operations"
    folded = "cluster_exporter_folded_owners"
    stats = ("stats", ',operation="open"')
    series = [
        counter("1", 5),
        counter("2", 5),
        counter("3", 1),
        counter("4", 2),  # 1, 2 tie
        counter("1", 6, "scratch-MDT0000", *stats),
        counter("1", 1, "scratch-MDT0001", *stats),
        counter("3", 2, "scratch-MDT0000", *stats),
        counter("3", 4, "scratch-MDT0001", *stats),
        counter("4", 3, "scratch-MDT0001", *stats),
        info('cluster_job_info{jobid="1",account="a",user="u1"}'),
        info('cluster_job_info{jobid="2",account="b",user="u2"}'),
        info('cluster_job_info{jobid="3",account="c",user="u3"}'),
        # A real owner with the labels of __other__: folded, never a second series.
        info('cluster_job_info{jobid="4",account="__other__",user="__other__"}'),
    ]
    other = 'account="__other__",user="__other__"'
    run_promtool(tmp_path, rules, [
        case(READ, [(f'{READ}{{account="a",user="u1"}}', 5), (f'{READ}{{account="b",user="u2"}}', 5),
                    (f"{READ}{{{other}}}", 1 + 2)]),
        case(f'{folded}{{family="{READ}"}}', [(f'{folded}{{family="{READ}"}}', 1)]),
        # c (2 + 4) loses to a (6 + 1) on the total: a keeps both MDTs, __other__ gets
        # one row per MDT (c's and the real __other__'s), and every MDT's sum holds.
        case(meta, [(f'{meta}{{account="a",user="u1",target="scratch-MDT0000"}}', 6),
                    (f'{meta}{{account="a",user="u1",target="scratch-MDT0001"}}', 1),
                    (f'{meta}{{{other},target="scratch-MDT0000"}}', 2),
                    (f'{meta}{{{other},target="scratch-MDT0001"}}', 4 + 3)]),
    ], series)  # fmt: skip
