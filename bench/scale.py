#!/usr/bin/env python3
"""Scrape cost at cluster scale, against the floor.

Generates a synthetic cluster, serves the three query answers from a fake Prometheus API
on 127.0.0.1, runs fake squeue/getent executables (shell scripts printing generated
files), starts the real exporter process and reports, per scale:

- median and max scrape wall time over repeated scrapes after a warm-up (scraped like
  Prometheus does: its Accept header, gzip);
- the exporter's CPU seconds per scrape;
- peak RSS (VmHWM) of the exporter;
- the number of exposed series;
- the floor: the three answers fetched plus squeue and getent run, all concurrently,
  with no processing.

    python bench/scale.py                        # 5,000, 50,000 and 500,000 jobids
    python bench/scale.py --jobids 50000 --scrapes 10
    python bench/scale.py --jobids 2000 --scrapes 3   # the smoke size CI runs

Default scale per 50,000 jobids with IO: half Slurm jobs, half procname.uid; 20,000 jobs in
squeue; 100,000 passwd entries; 20,000 groups; 4 MDTs. Other scales keep these ratios
for jobs and fix the directory size.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import Exporter, FakePrometheus

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
PROCS = [f"{p}{i}" for p in ("python", "rsync", "cp", "tar", "app.v", "dd", "ior", "mdtest")
         for i in range(25)]  # fmt: skip
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Cluster:
    root: Path
    answers: dict[str, bytes]
    bin: Path


def vector(rows: list[tuple[dict[str, str], float]]) -> bytes:
    now = time.time()
    return json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": labels, "value": [now, repr(value)]} for labels, value in rows]}}
    ).encode()  # fmt: skip


def generate(root: Path, jobids: int, squeue_jobs: int, users: int, groups: int, mdts: int,
             seed: int = 7) -> Cluster:  # fmt: skip
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    accounts = [f"acct{i:04d}" for i in range(max(10, squeue_jobs // 50))]
    user_names = [f"user{i:06d}" for i in range(users)]
    first_uid = 10000
    # Directory.
    with open(root / "passwd", "w") as out:
        out.write("root:x:0:0:root:/root:/bin/bash\n")
        for i, name in enumerate(user_names):
            out.write(f"{name}:x:{first_uid + i}:{5000 + i % groups}::/home/{name}:/bin/bash\n")
    with open(root / "group", "w") as out:
        out.write("root:x:0:\n")
        for g in range(groups):
            out.write(f"grp{g:05d}:x:{5000 + g}:\n")
    # Slurm: the active users are a small part of the directory.
    active = user_names[: max(50, squeue_jobs // 10)]
    jobs = [(str(2_000_000 + i), rng.choice(accounts), rng.choice(active))
            for i in range(squeue_jobs)]  # fmt: skip
    with open(root / "squeue", "w") as out:
        out.writelines(f"{j} {a} {u}\n" for j, a, u in jobs)
    # Jobids with IO: half jobs (most of them known to squeue), half processes.
    slurm_ids = [j for j, _, _ in jobs[: int(jobids / 2 * 0.8)]]
    slurm_ids += [str(1_000_000 + i) for i in range(jobids // 2 - len(slurm_ids))]  # ended
    proc_ids = {f"{rng.choice(PROCS)}.{first_uid + rng.randrange(len(active) * 4)}"
                for _ in range(jobids)}  # fmt: skip
    all_ids = slurm_ids + sorted(proc_ids)[: jobids - len(slurm_ids)]
    read = [({"jobid": j}, rng.uniform(1e3, 1e9)) for j in all_ids]
    write = [({"jobid": j}, rng.uniform(1e3, 1e9)) for j in all_ids]
    metadata = []
    for j in all_ids:
        for m in rng.sample(range(mdts), rng.randint(1, mdts)):
            metadata.append(
                ({"jobid": j, "target": f"scratch-MDT{m:04x}"}, float(rng.randint(1, 5000)))
            )
    answers = {"read": vector(read), "write": vector(write), "metadata": vector(metadata)}
    fakes = root / "bin"
    fakes.mkdir(exist_ok=True)
    for name, body in {
        "squeue": f'exec cat "{root}/squeue"',
        "getent": f'if [ "$#" -gt 1 ]; then exit 2; fi; exec cat "{root}/$1"',
    }.items():
        (fakes / name).write_text(f"#!/bin/sh\n{body}\n")
        (fakes / name).chmod(0o755)
    return Cluster(root, answers, fakes)


def floor_seconds(prom_url: str, cluster: Cluster) -> float:
    """Everything a scrape must wait for, and nothing else, concurrently."""

    def fetch(kind: str) -> int:
        query = {"read": "read_bytes", "write": "write_bytes", "metadata": "stats"}[kind]
        request = urllib.request.Request(
            f"{prom_url}/api/v1/query?query={query}", headers={"Accept-Encoding": "gzip"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return len(response.read())

    def run(*argv: str) -> int:
        return len(subprocess.run(list(argv), capture_output=True, check=True).stdout)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(fetch, k) for k in ("read", "write", "metadata")]
        futures.append(pool.submit(run, str(cluster.bin / "squeue")))
        futures.append(pool.submit(run, str(cluster.bin / "getent"), "passwd"))
        futures.append(pool.submit(run, str(cluster.bin / "getent"), "group"))
        for future in futures:
            future.result()
    return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scrape(url: str) -> tuple[float, int]:
    request = urllib.request.Request(
        url, headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as response:
        body = response.read()
        encoding = response.headers.get("Content-Encoding")
    seconds = time.perf_counter() - started
    text = gzip.decompress(body) if encoding == "gzip" else body
    series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    return seconds, series


def measure(
    jobids: int, scrapes: int, warmup: int, tmp: Path, extra: list[str]
) -> dict[str, float]:
    scale = jobids / 50_000
    cluster = generate(tmp / f"c{jobids}", jobids, squeue_jobs=max(200, int(20_000 * scale)),
                       users=100_000, groups=20_000, mdts=4)  # fmt: skip
    prom = FakePrometheus()
    for kind, body in cluster.answers.items():
        prom.set(kind, body)
    prom.start()
    env = dict(os.environ, PATH=f"{cluster.bin}:{os.environ['PATH']}")
    exporter = Exporter([f"--promserver={prom.url}", "--timeout=120", *extra], env,
                        tmp / f"exporter-{jobids}.log")  # fmt: skip
    try:
        url = exporter.url + "/metrics"
        for _ in range(warmup):
            scrape(url)
        floors = [floor_seconds(prom.url, cluster) for _ in range(max(3, scrapes // 2))]
        cpu0 = cpu_seconds(exporter.proc.pid)
        times, series = [], 0
        for _ in range(scrapes):
            seconds, series = scrape(url)
            times.append(seconds)
        cpu = (cpu_seconds(exporter.proc.pid) - cpu0) / scrapes
        ok = (
            "cluster_exporter_scrape_ok 1"
            in urllib.request.urlopen(url, timeout=300).read().decode()
        )
        return {
            "jobids": jobids,
            "answer_mb": sum(len(b) for b in cluster.answers.values()) / 1e6,
            "median": statistics.median(times),
            "max": max(times),
            "cpu": cpu,
            "rss": peak_rss_mb(exporter.proc.pid),
            "series": series,
            "floor": statistics.median(floors),
            "ok": float(ok),
        }
    finally:
        exporter.stop()
        prom.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobids", type=int, action="append",
                        help="scale(s) to run (default 5000, 50000, 500000)")  # fmt: skip
    parser.add_argument("--scrapes", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("exporter_args", nargs="*", help="extra exporter flags (after --)")
    args = parser.parse_args()
    scales = args.jobids or [5_000, 50_000, 500_000]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for jobids in scales:
            scrapes = args.scrapes if jobids <= 100_000 else max(3, args.scrapes // 3)
            rows.append(measure(jobids, scrapes, args.warmup, Path(tmp), args.exporter_args))
            r = rows[-1]
            print(f"jobids {r['jobids']:>7,.0f}  answers {r['answer_mb']:6.1f} MB  "
                  f"median {r['median']:6.3f}s  max {r['max']:6.3f}s  cpu/scrape {r['cpu']:6.3f}s  "
                  f"peak RSS {r['rss']:6.1f} MB  series {r['series']:>7,.0f}  "
                  f"floor {r['floor']:6.3f}s  ratio {r['median'] / r['floor']:5.2f}  "
                  f"scrape_ok {r['ok']:.0f}", flush=True)  # fmt: skip
    if len(rows) > 1:
        small, large = rows[-2], rows[-1]
        growth = large["median"] / small["median"]
        print(f"cost growth {small['jobids']:,.0f} -> {large['jobids']:,.0f} jobids: "
              f"x{growth:.1f} for x{large['jobids'] / small['jobids']:.0f} input")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
