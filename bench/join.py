#!/usr/bin/env python3
"""Join mode's cost: the exporter's scrape, and the recording rules in a real Prometheus.

Two measurements, one after the other (never at the same time):

1. **The exporter in --mode=join** on the synthetic cluster of bench/scale.py (its
   generators and fakes, same seed: the same squeue listing, passwd/group and jobids as
   its scale workloads). The exporter fetches no per-jobid rates in join mode: its only
   question to the TSDB is the uids query (``JoinPlan.uids_query()``), which a fake
   Prometheus API on 127.0.0.1 answers, gzip-compressed, with the distinct uids of the
   workload's procname.uid jobids in the exact shape Prometheus writes::

       {"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"uid":"10001"},"value":[1796198400.123,"1"]},...]}}

   squeue and getent are bench/scale.py's ``cat`` fakes. One line per workload: the first
   scrape (it includes the getent enumeration), median and max wall time of the timed
   scrapes after a warm-up (scraped as Prometheus does: its Accept header, gzip), CPU
   seconds per timed scrape (/proc/PID/stat), peak RSS (VmHWM over the whole run), series
   out, the info series (cluster_job_info, cluster_user_info) and the exporter's own stage
   seconds of the last scrape. By default also bench/scale.py's direct-mode measurement of
   the same workload (``scale.measure``), for comparison; ``--no-direct`` skips it.

   Workloads: 50,000 and 500,000 jobids with bench/scale.py's shapes (20,000 squeue jobs
   per 50,000 jobids, 100,000 passwd entries, 20,000 groups, half the jobids
   procname.uid), then 500,000 jobids with only 20,000 squeue jobs: the jobids with IO
   grow tenfold, the jobs and process uids do not.

2. **The recording rules in a real Prometheus** (``--prometheus``, default
   /usr/bin/prometheus) at ``--rules-jobids`` (default 50,000) jobids, in a temporary
   storage directory, every process on 127.0.0.1. Prometheus scrapes every ``--interval``
   seconds (default 15; rules evaluated as often):

   - a Lustre exporter: ``prometheus-cluster-exporter simulate`` serving the counters of
     the workload's jobids, growing at known constant rates: read and write bytes on 2
     OSTs, and for every second jobid ``open`` operations on 1 MDT (an integer rate of
     2 or more, so the rounded metadata rate is exact; a rate of exactly 1 can come out
     a hair below 1 by float rounding and fall under the queries' ">= 1" cut);
   - the exporter in --mode=join, with the same fake squeue and getent, asking this
     Prometheus its uids query;

   with the rules printed by ``python -m prometheus_cluster_exporter rules
   --timerange=1m`` as its rule file. Once the rates of every Lustre series exist,
   ``--evaluations`` rule group evaluations are watched through /api/v1/rules (the
   group's and each rule's evaluation time, health and lastError); then Prometheus's own
   /metrics gives prometheus_rule_group_last_duration_seconds and the quantiles of
   prometheus_rule_evaluation_duration_seconds and prometheus_rule_group_duration_seconds,
   and /proc its RSS and CPU (and the exporter's CPU). The same Prometheus is then asked,
   three times each, direct mode's three per-jobid queries and the join exporter's uids
   query over its HTTP API (gzip). Last, the plausibility check: for each of read, write
   and metadata, the recorded job + proc + unattributed sums against the generated total
   rate, and per part (jobs squeue lists, ended jobs, process ids) against what was
   generated for it.

   Then, unless ``--no-direct``, the same run with the exporter in direct mode and no
   rules (Prometheus scrapes the attributed series from the exporter and answers its
   three queries every scrape), watched as many intervals, for Prometheus's CPU and
   memory and the same check of the totals.

Figures are printed, never judged: the exit status is 1 only if a scrape had scrape_ok 0
(or the join exporter's cluster_user_info missed a uid), a rule reported an error or the
recorded totals are off by more than 1e-6 relative.

    python bench/join.py                           # both parts, as in docs/performance.md
    python bench/join.py --jobids 50000 --no-rules --no-direct
    python bench/join.py --no-exporter --rules-jobids 5000 --evaluations 3
    python bench/join.py --jobids 500000 --squeue-jobs 20000 --no-rules

Arguments after -- go to every exporter started (direct and join mode). --json PATH writes
{"exporter": [one row per exporter workload and mode], "tsdb": [one object per mode]}.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.components import Process, free_port
from tests.helpers import Exporter, FakePrometheus

from bench.scale import (
    GROUPS,
    USERS,
    Workload,
    cpu_seconds,
    line,
    measure,
    peak_rss_mb,
    scale_ids,
    scrape,
    timed,
    vector,
    write_directory,
    write_fakes,
    write_squeue,
)
from prometheus_cluster_exporter.jobid import DEFAULT_FORMATS
from prometheus_cluster_exporter.joinrules import JoinPlan
from prometheus_cluster_exporter.promql import LustreSeries

TIMERANGE = "1m"
OSTS, MDTS = 2, 1
KINDS = ("read", "write", "metadata")
#: The families the rules record, by kind: job, proc, unattributed.
RECORDED = {
    kind: (f"cluster_job_{suffix}", f"cluster_proc_{suffix}", f"cluster_unattributed_{suffix}")
    for kind, suffix in (
        ("read", "read_throughput_bytes"),
        ("write", "write_throughput_bytes"),
        ("metadata", "metadata_operations"),
    )
}
STAGE_LINE = re.compile(rb'^cluster_exporter_stage_execution_seconds\{name="([^"]+)"\} (\S+)', re.M)
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


# -- the exporter in join mode ------------------------------------------------------------


@dataclass(frozen=True)
class JoinWorkload:
    jobids: int
    #: squeue jobs; 0: bench/scale.py's (20,000 per 50,000 jobids).
    squeue: int = 0

    @property
    def squeue_jobs(self) -> int:
        return self.squeue or Workload(self.jobids).squeue_jobs

    @property
    def label(self) -> str:
        return f"jobids {self.jobids:>7,} squeue {self.squeue_jobs:>7,}"


@dataclass
class JoinCluster:
    root: Path
    bin: Path
    #: Job ids squeue lists.
    jobs: List[str]
    #: Jobids with IO (the Lustre jobids), as bench/scale.py's scale workloads.
    ids: List[str]

    @property
    def uids(self) -> List[int]:
        return sorted({int(j.rsplit(".", 1)[1]) for j in self.ids if "." in j})


def join_cluster(root: Path, jobids: int, squeue_jobs: int, seed: int = 7) -> JoinCluster:
    """bench/scale.py's cluster (the same random draws as its ``generate``), without the
    three query answers join mode never asks for."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    names = write_directory(root, USERS, GROUPS)
    active = names[: max(50, squeue_jobs // 10)]
    jobs = write_squeue(root, rng, squeue_jobs, active)
    ids = scale_ids(rng, jobids, jobs, len(active))
    cat_bin, _ = write_fakes(root)
    return JoinCluster(root, cat_bin, jobs, ids)


def uids_answer(uids: List[int]) -> bytes:
    """What Prometheus answers the uids query: one sample per uid, value 1."""
    return vector((f'"uid":"{u}"', "1") for u in uids)


def count_lines(text: bytes, name: str) -> int:
    return text.count(b"\n" + name.encode() + b"{")


def fetch_page(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=300) as response:
        body = response.read()
        encoding = response.headers.get("Content-Encoding")
    return gzip.decompress(body) if encoding == "gzip" else body


def measure_join(
    workload: JoinWorkload, scrapes: int, warmup: int, tmp: Path, extra: List[str]
) -> Dict[str, Any]:
    cluster = join_cluster(tmp / f"join{workload.jobids}-{workload.squeue_jobs}",
                           workload.jobids, workload.squeue_jobs)  # fmt: skip
    uids = cluster.uids
    prom = FakePrometheus()
    # The fake answers by the query's kind: "uids" is the uids query's.
    prom.set("uids", gzip.compress(uids_answer(uids), compresslevel=6, mtime=0),
             headers={"Content-Encoding": "gzip"})  # fmt: skip
    prom.start()
    env = dict(os.environ, PATH=f"{cluster.bin}:{os.environ['PATH']}")
    exporter = Exporter(
        ["--mode=join", f"--promserver={prom.url}", "--timeout=120", *extra],
        env,
        tmp / f"exporter-join-{cluster.root.name}.log",
    )
    try:
        cpu0 = cpu_seconds(exporter.proc.pid)
        first = scrape(exporter.url + "/metrics")
        first_cpu = cpu_seconds(exporter.proc.pid) - cpu0
        done, cpu = timed(exporter, scrapes, warmup)
        rss = peak_rss_mb(exporter.proc.pid)
        page = fetch_page(exporter.url + "/metrics")  # after VmHWM: to count, not timed
    finally:
        exporter.stop()
        prom.stop()
    times = [s.seconds for s in done[warmup:]]
    stages = {m.group(1).decode(): float(m.group(2)) for m in STAGE_LINE.finditer(page)}
    return {
        "mode": "join", "jobids": workload.jobids, "squeue_jobs": workload.squeue_jobs,
        "process_uids": len(uids), "scrapes": scrapes,
        "first": first.seconds, "first_cpu": first_cpu,
        "median": statistics.median(times), "max": max(times), "cpu": cpu, "rss": rss,
        "series": done[-1].series,
        "job_info": count_lines(page, "cluster_job_info"),
        "user_info": count_lines(page, "cluster_user_info"),
        "queries": len(prom.queries), "distinct_queries": len(set(prom.queries)),
        "stages": stages,
        "ok": float(all(s.ok for s in [first, *done])
                    and count_lines(page, "cluster_user_info") == len(uids)),
    }  # fmt: skip


def join_line(workload: JoinWorkload, r: Dict[str, Any]) -> str:
    stages = " ".join(f"{k.replace('retrieve_', '')}={v:.3f}" for k, v in r["stages"].items())
    return (
        f"join   {workload.label} uids {r['process_uids']:>6,}  first {r['first']:6.3f}s "
        f"(cpu {r['first_cpu']:6.3f}s)  median {r['median']:6.3f}s  max {r['max']:6.3f}s  "
        f"cpu/scrape {r['cpu']:6.3f}s  peak RSS {r['rss']:6.1f} MB  series {r['series']:>7,} "
        f"(job_info {r['job_info']:,}, user_info {r['user_info']:,})  "
        f"queries {r['queries']} ({r['distinct_queries']} distinct)  "
        f"scrape_ok {r['ok']:.0f}\n       last scrape's stages: {stages}"
    )


# -- the rules in Prometheus --------------------------------------------------------------


def get_json(url: str, timeout: float = 120.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def query(prom: str, promql: str) -> List[Dict[str, Any]]:
    answer = get_json(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    result: List[Dict[str, Any]] = answer["data"]["result"]
    return result


def scalar(prom: str, promql: str) -> float:
    result = query(prom, promql)
    return float(result[0]["value"][1]) if result else 0.0


def timed_query(prom: str, promql: str) -> Tuple[float, int]:
    """Wall seconds of one query over the HTTP API (gzip, as the exporter asks); samples."""
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        body = response.read()
    seconds = time.perf_counter() - started
    if response.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return seconds, body.count(b'"value":[')


def metric_values(text: str, name: str) -> List[Tuple[Dict[str, str], float]]:
    """The samples of ``name`` in an exposition page: (labels, value)."""
    out = []
    for row in text.splitlines():
        if row.startswith((name + "{", name + " ")):
            head, _, value = row.rpartition(" ")
            out.append((dict(LABEL.findall(head[len(name) :])), float(value)))
    return out


def proc_status(pid: int) -> Dict[str, float]:
    """VmRSS and VmHWM in MB."""
    status = {}
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = row.partition(":")
        if key in ("VmRSS", "VmHWM"):
            status[key] = int(value.split()[0]) / 1024
    return status


@dataclass
class Truth:
    """The generated rates: the simulate spec, and the totals the rules should record."""

    spec: Dict[str, Any]
    #: kind -> part ("job", "unknown_job", "proc") -> total rate.
    parts: Dict[str, Dict[str, float]]
    series: int


def lustre_truth(cluster: JoinCluster, seed: int = 11) -> Truth:
    """Read and write bytes (integers, per second) on OSTS OSTs for every jobid,
    ``open`` operations (2-50 a second) on one MDT for every second jobid."""
    rng = random.Random(seed)
    listed = set(cluster.jobs)
    parts: Dict[str, Dict[str, float]] = {k: {} for k in KINDS}
    jobs = []
    series = 0
    for n, jobid in enumerate(cluster.ids):
        job: Dict[str, Any] = {"jobid": jobid, "read": rng.randint(1_000, 100_000_000),
                               "write": rng.randint(1_000, 100_000_000)}  # fmt: skip
        series += 2 * OSTS
        if n % 2:
            job["mdt_ops"] = {"open": rng.randint(2, 50)}
            series += MDTS
        part = "proc" if "." in jobid else "job" if jobid in listed else "unknown_job"
        for kind in KINDS:
            rate = job["mdt_ops"]["open"] if kind == "metadata" and "mdt_ops" in job else 0
            value = job[kind] if kind != "metadata" else rate
            parts[kind][part] = parts[kind].get(part, 0) + value
        jobs.append(job)
    spec = {"schema": "hp", "filesystems": {"scratch": {"osts": OSTS, "mdts": MDTS}},
            "jobs": jobs}  # fmt: skip
    return Truth(spec, parts, series)


def prometheus_config(interval: int, rules: Optional[Path], lustre: str, exporter: str) -> str:
    """JSON, which Prometheus reads as YAML."""
    timeout = f"{max(1, interval - 1)}s"
    return json.dumps({
        "global": {"scrape_interval": f"{interval}s", "scrape_timeout": timeout,
                   "evaluation_interval": f"{interval}s"},
        "rule_files": [str(rules)] if rules else [],
        "scrape_configs": [
            {"job_name": "lustre", "static_configs": [{"targets": [lustre]}]},
            {"job_name": "cluster", "static_configs": [{"targets": [exporter]}]},
        ],
    }, indent=1)  # fmt: skip


def wait_until(check: Any, timeout: float, what: str, poll: float = 2.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(poll)
    raise RuntimeError(f"timed out waiting for {what}")


def rule_key(rule: Dict[str, Any]) -> str:
    reason = (rule.get("labels") or {}).get("reason")
    return f"{rule['name']}{{reason={reason}}}" if reason else rule["name"]


def watch_rules(prom: str, since: float, evaluations: int, interval: int) -> Dict[str, Any]:
    """Each group's and each rule's evaluation time over ``evaluations`` evaluations that
    started after ``since`` (a Unix time). Prometheus evaluates the groups concurrently:
    ``group`` is the slowest group of each round, ``group_sum`` all groups' time."""
    seen: Dict[str, Any] = {"by_group": {}, "rules": {}, "errors": {}, "health": {}}
    last: Dict[str, str] = {}
    end = time.monotonic() + (evaluations + 3) * interval + 120

    names: List[str] = []

    def rounds() -> int:
        # Every group counts, also one not evaluated yet: the groups start apart.
        counts = [len(seen["by_group"].get(name, ())) for name in names]
        return min(counts) if counts else 0

    while (not names or rounds() < evaluations) and time.monotonic() < end:
        groups = get_json(f"{prom}/api/v1/rules")["data"]["groups"]
        names[:] = [group["name"] for group in groups]
        for group in groups:
            stamp = group["lastEvaluation"]
            if stamp == last.get(group["name"]) or _unix(stamp) <= since:
                continue
            last[group["name"]] = stamp
            seen["by_group"].setdefault(group["name"], []).append(group["evaluationTime"])
            for rule in group["rules"]:
                key = rule_key(rule)
                seen["rules"].setdefault(key, []).append(rule["evaluationTime"])
                seen["health"][key] = rule["health"]
                if rule.get("lastError"):
                    seen["errors"][key] = rule["lastError"]
        time.sleep(1.0)
    columns = list(zip(*seen["by_group"].values()))
    seen["group"] = [max(times) for times in columns]
    seen["group_sum"] = [sum(times) for times in columns]
    return seen


def _unix(stamp: str) -> float:
    """An RFC 3339 time as Prometheus writes it (nanoseconds, Z or an offset) -> Unix time."""
    from datetime import datetime

    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", stamp)
    if not match:
        return 0.0
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    base = datetime.fromisoformat(match.group(1) + zone).timestamp()
    return base + float(match.group(2) or 0)


def check_totals(prom: str, truth: Truth) -> Tuple[List[str], bool]:
    """Recorded sums against the generated rates, per kind and part."""
    lines, ok = [], True
    for kind in KINDS:
        job, proc, lost = RECORDED[kind]
        recorded = {
            "job": scalar(prom, f"sum({job})"),
            "proc": scalar(prom, f"sum({proc})"),
            "unknown_job": scalar(prom, f'sum({lost}{{reason="unknown_job"}})'),
            "other unattributed": scalar(prom, f'sum({lost}{{reason!="unknown_job"}})'),
        }
        want = truth.parts[kind]
        total_want = sum(want.values())
        total = sum(recorded.values())
        error = abs(total - total_want) / total_want
        ok = ok and error <= 1e-6
        each = "  ".join(
            f"{part} {recorded[part]:.6g}/{want.get(part, 0.0):.6g}"
            for part in ("job", "proc", "unknown_job")
        )
        lines.append(
            f"  {kind:8} recorded job+proc+unattributed {total:.9g}  generated {total_want:.9g}  "
            f"relative error {error:.1e}  (recorded/generated: {each}; other unattributed "
            f"{recorded['other unattributed']:.6g})"
        )
    return lines, ok


def measure_tsdb(
    mode: str, jobids: int, interval: int, evaluations: int, binary: str, tmp: Path,
    extra: List[str],
) -> Dict[str, Any]:  # fmt: skip
    """Prometheus scraping the simulated Lustre exporter and the exporter in ``mode``:
    join (its rules loaded) or direct (no rules; the exporter asks the three queries)."""
    root = tmp / f"tsdb-{mode}{jobids}"
    cluster = join_cluster(root, jobids, Workload(jobids).squeue_jobs)
    truth = lustre_truth(cluster)
    (root / "spec.json").write_text(json.dumps(truth.spec))
    rules = None
    if mode == "join":
        rules = root / "rules.yml"
        rules.write_text(subprocess.run(
            [sys.executable, "-m", "prometheus_cluster_exporter", "rules",
             f"--timerange={TIMERANGE}"],
            capture_output=True, check=True, text=True).stdout)  # fmt: skip
    port = free_port()
    prom = f"http://127.0.0.1:{port}"
    started: List[Any] = []
    seen: Dict[str, Any] = {"group": [], "group_sum": [], "by_group": {}, "rules": {},
                            "errors": {}, "health": {}}  # fmt: skip
    try:
        simulate = Process(
            [sys.executable, "-m", "prometheus_cluster_exporter", "simulate",
             f"--spec={root / 'spec.json'}", "--web.listen-address=127.0.0.1:0"],
            root / "simulate.log",
        )  # fmt: skip
        started.append(simulate)
        lustre = simulate.wait_for_log(r"Listening on http://(127\.0\.0\.1:\d+)", 60).group(1)
        env = dict(os.environ, PATH=f"{cluster.bin}:{os.environ['PATH']}")
        exporter = Exporter(
            [*(["--mode=join"] if mode == "join" else []), f"--promserver={prom}",
             f"--timeout={max(1, interval - 3)}", f"--timerange={TIMERANGE}", *extra],
            env, root / "exporter.log",
        )  # fmt: skip
        started.append(exporter)
        config = root / "prometheus.yml"
        config.write_text(prometheus_config(interval, rules, lustre, exporter.url[7:]))
        server = Process(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={root / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            root / "prometheus.log",
        )  # fmt: skip
        started.append(server)
        server.wait_for_log("Server is ready to receive web requests", 60)
        pid = server.proc.pid
        # Ready: every Lustre read series has a rate (two scrapes), the exporter scraped.
        wanted = jobids * OSTS
        wait_until(lambda: scalar(prom, f"count(irate(lustre_job_read_bytes_total[{TIMERANGE}]))")
                   >= wanted and scalar(prom, 'sum(up{job="cluster"})') == 1,
                   6 * interval + 120, "the Lustre rates and the exporter's series")  # fmt: skip
        ready = time.time()
        cpu0, xcpu0, t0 = cpu_seconds(pid), cpu_seconds(exporter.proc.pid), time.monotonic()
        if mode == "join":
            seen = watch_rules(prom, ready, evaluations, interval)
        else:
            time.sleep(evaluations * interval)
        elapsed = time.monotonic() - t0
        cpu = (cpu_seconds(pid) - cpu0) / elapsed * interval
        exporter_cpu = (cpu_seconds(exporter.proc.pid) - xcpu0) / elapsed * interval
        page = fetch_page(f"{prom}/metrics").decode()
        memory = proc_status(pid)
        # Direct mode's questions and the join exporter's, to the same Prometheus.
        plan = JoinPlan.build(LustreSeries(window=TIMERANGE), DEFAULT_FORMATS, "5m")
        series = plan.series
        asked = {"direct read": series.read, "direct write": series.write,
                 "direct metadata": series.metadata_query, "join uids": plan.uids_query()}  # fmt: skip
        answers = {}
        for name, promql in asked.items():
            runs = [timed_query(prom, promql) for _ in range(3)]
            answers[name] = (statistics.median(s for s, _ in runs), runs[0][1])
        totals, totals_ok = check_totals(prom, truth)
        scrapes = {
            r["metric"]["job"]: float(r["value"][1])
            for r in query(prom, "avg_over_time(scrape_duration_seconds[2m])")
        }
        samples = {
            r["metric"]["job"]: float(r["value"][1]) for r in query(prom, "scrape_samples_scraped")
        }
        recorded = scalar(
            prom,
            "count({__name__=~'cluster_(job|proc|unattributed)_.+', "
            "__name__!~'cluster_(job|user)_info'})",
        )
        info = scalar(prom, "count({__name__=~'cluster_(job|user)_info'})")
    finally:
        for process in reversed(started):
            process.stop()

    def values(name: str) -> Dict[str, float]:
        return {labels.get("quantile", ""): v for labels, v in metric_values(page, name)}

    per_rule = {k: statistics.median(v) for k, v in seen["rules"].items()}
    return {
        "mode": mode, "jobids": jobids, "lustre_series": truth.series, "interval": interval,
        "squeue_jobs": len(cluster.jobs), "process_uids": len(cluster.uids),
        "rules": len(per_rule), "evaluations": len(seen["group"]),
        "watched_seconds": elapsed,
        "group_seconds": seen["group"],
        "group_median": statistics.median(seen["group"]) if seen["group"] else float("nan"),
        "group_sum_median": statistics.median(seen["group_sum"]) if seen.get("group_sum") else float("nan"),
        "groups": {name: statistics.median(v) for name, v in seen.get("by_group", {}).items()},
        "group_last_duration": max((v for _, v in metric_values(
            page, "prometheus_rule_group_last_duration_seconds")), default=None),
        "rule_eval_quantiles": values("prometheus_rule_evaluation_duration_seconds"),
        "group_quantiles": values("prometheus_rule_group_duration_seconds"),
        "iterations_missed": sum(v for _, v in metric_values(
            page, "prometheus_rule_group_iterations_missed_total")),
        "evaluation_failures": sum(v for _, v in metric_values(
            page, "prometheus_rule_evaluation_failures_total")),
        "head_series": values("prometheus_tsdb_head_series").get(""),
        "attributed_series": recorded, "info_series": info,
        "rss": memory.get("VmRSS"), "peak_rss": memory.get("VmHWM"),
        "cpu_per_interval": cpu, "exporter_cpu_per_interval": exporter_cpu,
        "per_rule": per_rule, "errors": seen["errors"], "health": seen["health"],
        "queries": {k: {"seconds": s, "samples": n} for k, (s, n) in answers.items()},
        "scrape_seconds": scrapes, "scrape_samples": samples,
        "totals": totals, "totals_ok": totals_ok,
    }  # fmt: skip


def tsdb_report(r: Dict[str, Any]) -> str:
    head = (
        f"tsdb {r['mode']:6} jobids {r['jobids']:,} ({r['lustre_series']:,} Lustre series, "
        f"{r['squeue_jobs']:,} squeue jobs, {r['process_uids']:,} process uids), "
        f"every {r['interval']} s, watched {r['watched_seconds']:.0f} s"
    )
    out = [head]
    if r["mode"] == "join":
        top = sorted(r["per_rule"].items(), key=lambda kv: -kv[1])
        out += [
            f"  {r['rules']} rules in {len(r['groups'])} groups, {r['evaluations']} evaluations: "
            f"slowest group median {r['group_median']:.3f}s (all groups "
            f"{r['group_sum_median']:.3f}s), each: "
            + " ".join(f"{s:.3f}" for s in r["group_seconds"])
            + "; by group: "
            + " ".join(f"{name} {s:.3f}s" for name, s in r["groups"].items())
            + f"; last_duration {r['group_last_duration'] or float('nan'):.3f}s; missed "
            f"iterations {r['iterations_missed']:.0f}, failures {r['evaluation_failures']:.0f}",
            "  prometheus_rule_group_duration_seconds: "
            + " ".join(f"q{k}={v:.3f}s" for k, v in r["group_quantiles"].items()),
            "  prometheus_rule_evaluation_duration_seconds: "
            + " ".join(f"q{k}={v:.4f}s" for k, v in r["rule_eval_quantiles"].items()),
            "  rules by median evaluation time:",
            *(f"    {s:7.3f}s  {k}" for k, s in top),
        ]
    out += [
        f"  Prometheus: RSS {r['rss']:.0f} MB (peak {r['peak_rss']:.0f} MB), head series "
        f"{r['head_series']:,.0f} (attributed {r['attributed_series']:,.0f}, info "
        f"{r['info_series']:,.0f}), CPU {r['cpu_per_interval']:.2f} s per {r['interval']} s; "
        f"the exporter's CPU {r['exporter_cpu_per_interval']:.2f} s per {r['interval']} s",
        "  scrape duration (avg 2m): "
        + "  ".join(
            f"{k} {v:.3f}s ({r['scrape_samples'].get(k, 0):,.0f} samples)"
            for k, v in r["scrape_seconds"].items()
        ),
        "  this Prometheus asked over its HTTP API (median of 3, gzip):",
        *(
            f"    {k:16} {v['seconds']:6.3f}s  {v['samples']:>7,} samples"
            for k, v in r["queries"].items()
        ),
        "  recorded against generated (per second):",
        *r["totals"],
    ]
    if r["errors"]:
        out.append("  rule errors: " + json.dumps(r["errors"], indent=1))
    bad = {k: v for k, v in r["health"].items() if v != "ok"}
    if bad:
        out.append(f"  rule health not ok: {bad}")
    return "\n".join(out)


# -- main ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobids", type=int, action="append",
                        help="exporter workload(s) (default 50000, 500000, and 500000 with "
                             "--squeue-jobs 20000)")  # fmt: skip
    parser.add_argument("--squeue-jobs", type=int, default=0,
                        help="squeue jobs of the --jobids workloads (default: bench/scale.py's)")  # fmt: skip
    parser.add_argument("--scrapes", type=int, default=10,
                        help="timed scrapes (direct mode above 100,000 jobids: a third, at least 3)")  # fmt: skip
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-direct", action="store_true",
                        help="skip direct mode's figures (both parts)")  # fmt: skip
    parser.add_argument("--no-exporter", action="store_true", help="skip part 1")
    parser.add_argument("--no-rules", action="store_true", help="skip part 2 (Prometheus)")
    parser.add_argument("--rules-jobids", type=int, default=50_000)
    parser.add_argument("--interval", type=int, default=15,
                        help="scrape and evaluation interval, seconds (default 15)")  # fmt: skip
    parser.add_argument("--evaluations", type=int, default=6,
                        help="rule group evaluations (intervals in direct mode) to watch")  # fmt: skip
    parser.add_argument("--prometheus", default="/usr/bin/prometheus")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("exporter_args", nargs="*", help="extra exporter flags (after --)")
    args = parser.parse_args()
    if args.jobids:
        loads = [JoinWorkload(j, args.squeue_jobs) for j in args.jobids]
    else:
        loads = [JoinWorkload(50_000), JoinWorkload(500_000), JoinWorkload(500_000, 20_000)]
    rows: List[Dict[str, Any]] = []
    tsdb: List[Dict[str, Any]] = []
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_exporter:
            for load in loads:
                rows.append(measure_join(load, args.scrapes, args.warmup, Path(tmp),
                                         args.exporter_args))  # fmt: skip
                print(join_line(load, rows[-1]), flush=True)
                ok = ok and rows[-1]["ok"] == 1
                direct = Workload(load.jobids)
                if args.no_direct or load.squeue_jobs != direct.squeue_jobs:
                    continue
                scrapes = max(3, args.scrapes // 3) if load.jobids > 100_000 else args.scrapes
                row = measure(direct, scrapes, args.warmup, Path(tmp), "cat", args.exporter_args)
                rows.append({"mode": "direct", **row})
                print(f"direct {line(direct, row)}", flush=True)
                ok = ok and row["ok"] == 1
        if not args.no_rules:
            for mode in ("join",) if args.no_direct else ("join", "direct"):
                tsdb.append(measure_tsdb(mode, args.rules_jobids, args.interval, args.evaluations,
                                         args.prometheus, Path(tmp), args.exporter_args))  # fmt: skip
                print(tsdb_report(tsdb[-1]), flush=True)
                ok = ok and tsdb[-1]["totals_ok"] and not tsdb[-1]["errors"]
    if args.json:
        args.json.write_text(json.dumps({"exporter": rows, "tsdb": tsdb}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
