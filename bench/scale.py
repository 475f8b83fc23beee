#!/usr/bin/env python3
"""Scrape cost at cluster scale, against the floor.

Generates a synthetic cluster, serves the three query answers from a fake Prometheus API
on 127.0.0.1 (gzip-compressed once at generation, level 6, as Prometheus answers a client
sending Accept-Encoding: gzip), runs fake squeue/getent executables printing generated
files, starts the real exporter process and reports, one line per workload:

- the FIRST scrape (the very first after the exporter listens, before any warm-up; it
  includes the getent enumeration), then median and max scrape wall time over repeated
  scrapes after a warm-up (scraped like Prometheus does: its Accept header, gzip);
- the exporter's CPU seconds per scrape, and CPU microseconds per input sample (all three
  answers) and per output series, to show whether cost stays linear;
- peak RSS (VmHWM) of the exporter over the whole run, first scrape included;
- the number of exposed series;
- the floor, measured two ways: the three answers fetched (gzip bodies, not decoded) plus
  squeue and getent passwd/group run, all concurrently, with no processing; "cat" with
  shell-script fakes that cat the files, "py" with Python-script fakes (#!sys.executable)
  that read and print them, as a site with Python wrappers would have; and the ratio of
  the median scrape to each floor.

The exit status is 0 only if every scrape (first, warm-up and timed) has scrape_ok 1.

Workloads: by default 5,000, 50,000 and 500,000 jobids, then the huge answer.

- Scale N jobids, per 50,000: half Slurm jobs (80 % of them known to squeue, the rest
  ended), half procname.uid; 20,000 jobs in squeue; 4 MDTs, each jobid doing metadata on
  1-4 of them. Other scales keep these ratios for jobs; the directory is fixed at 100,000
  passwd entries and 20,000 groups.
- Huge (--huge): ONE read answer of --huge-samples samples (default 1,600,000, about
  100 MB): 97 % numeric jobids squeue does not list, the rest squeue's jobs and
  procname.uid ids; two thirds of the values are 0 (idle ids), the others rates with up to
  3 decimals. Write and metadata answers are those of a 5,000-jobid cluster; 20,000 jobs
  in squeue, 100,000 passwd entries. Fewer scrapes, like the 500,000 scale.

Every answer has the exact shape Prometheus writes: compact JSON, one evaluation
timestamp with 3 decimals, values in Go's strconv 'f' -1 format.

    python bench/scale.py                        # the three scales, then the huge answer
    python bench/scale.py --jobids 50000 --scrapes 10 --json out.json
    python bench/scale.py --jobids 2000 --scrapes 3 --warmup 1   # the smoke size CI runs
    python bench/scale.py --huge --huge-samples 50000 --scrapes 3 --warmup 1
    python bench/scale.py --jobids 5000 --fakes python -- --getent.cache-ttl=0

With ``-- --metrics.metadata-by-operation`` the metadata answer is summed by operation
too (1-3 operations per jobid and MDT); asked for the top jobs' partition and name
(``squeue -j ... -o "%A|%P|%j"``), squeue prints them for all its jobs.

--fakes chooses which fakes the exporter runs with (default cat; both floors are always
measured). Arguments after -- go to the exporter. --json PATH writes one object per
workload: workload ("scale" or "huge"), jobids (huge: 5,000, those of the write and
metadata answers), huge_samples, fakes, squeue_jobs, users, samples (per answer),
input_samples, answer_mb (uncompressed JSON), answer_gz_mb, scrapes, first, first_cpu,
median, max, cpu (seconds), rss (MB), series, cpu_us_per_sample, cpu_us_per_series,
floor_cat, floor_py, ratio_cat, ratio_py, ok.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import Exporter, FakePrometheus

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
PROCS = [f"{p}{i}" for p in ("python", "rsync", "cp", "tar", "app.v", "dd", "ior", "mdtest")
         for i in range(25)]  # fmt: skip
TICKS = os.sysconf("SC_CLK_TCK")
KINDS = ("read", "write", "metadata")
MDT_OPERATIONS = ["open", "close", "getattr", "setattr", "unlink", "mkdir", "rename", "statfs"]
FAKES = ("cat", "python")
FIRST_UID = 10_000
USERS, GROUPS, MDTS = 100_000, 20_000, 4
HUGE_JOBIDS, HUGE_SQUEUE_JOBS = 5_000, 20_000
HUGE_UNKNOWN_SHARE = 0.97
HUGE_FIRST_UNKNOWN = 3_000_000  # above squeue's 2,000,000 + i: never listed
HUGE_IDLE_SHARE = 2 / 3  # values "0"; sets the size (~62 bytes a sample, ~100 MB)
PREFIX = b'{"status":"success","data":{"resultType":"vector","result":['
OK_LINE = re.compile(rb"^cluster_exporter_scrape_ok (\S+)", re.M)


@dataclass
class Cluster:
    root: Path
    #: Uncompressed JSON answers, by kind.
    answers: dict[str, bytes]
    #: The shell (cat) fakes of squeue and getent.
    bin: Path
    python_bin: Path
    gzipped: dict[str, bytes]
    samples: dict[str, int]

    def fakes(self, kind: str) -> Path:
        return self.python_bin if kind == "python" else self.bin


@dataclass(frozen=True)
class Workload:
    """A scale of ``jobids`` jobids, or (``huge_samples`` > 0) the huge read answer."""

    jobids: int
    huge_samples: int = 0

    @property
    def name(self) -> str:
        return "huge" if self.huge_samples else "scale"

    @property
    def label(self) -> str:
        if self.huge_samples:
            return f"huge {self.huge_samples:>9,}"
        return f"jobids {self.jobids:>7,}"

    @property
    def squeue_jobs(self) -> int:
        if self.huge_samples:
            return HUGE_SQUEUE_JOBS
        return max(200, int(20_000 * self.jobids / 50_000))


@dataclass
class Scrape:
    seconds: float
    series: int
    ok: bool


# -- answers ----------------------------------------------------------------------------


def go_float(value: float) -> str:
    """strconv.FormatFloat(value, 'f', -1, 64), for 1e-4 <= |value| < 1e16 or 0."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def eval_time() -> str:
    """An evaluation timestamp as Prometheus writes it, here always with 3 decimals."""
    millis = int(time.time() * 1000)
    millis += millis % 1000 == 0
    return f"{millis // 1000}.{millis % 1000:03d}"


def vector(samples: Iterable[tuple[str, str]]) -> bytes:
    """A compact instant-vector answer of (metric object's inner JSON, value) samples."""
    mid = f'}},"value":[{eval_time()},"'
    parts, rest = [], iter(samples)
    while chunk := list(itertools.islice(rest, 100_000)):
        parts.append(",".join([f'{{"metric":{{{m}{mid}{v}"]}}' for m, v in chunk]).encode())
    return b"".join([PREFIX, b",".join(parts), b"]}}"])


def scale_answers(
    rng: random.Random, ids: list[str], mdts: int, by_operation: bool = False
) -> dict[str, bytes]:
    """The three answers; with ``by_operation`` the metadata answer is summed by operation
    too (1-3 operations per jobid and MDT, as --metrics.metadata-by-operation asks)."""
    read = ((f'"jobid":"{j}"', go_float(rng.uniform(1e3, 1e9))) for j in ids)
    write = ((f'"jobid":"{j}"', go_float(rng.uniform(1e3, 1e9))) for j in ids)
    metadata = (
        (f'"jobid":"{j}","target":"scratch-MDT{m:04x}"', str(rng.randint(1, 5000)))
        for j in ids
        for m in rng.sample(range(mdts), rng.randint(1, mdts))
    )
    if by_operation:  # label names sorted, as Prometheus writes them
        metadata = (
            (f'"jobid":"{j}","operation":"{op}","target":"scratch-MDT{m:04x}"',
             str(rng.randint(1, 5000)))
            for j in ids
            for m in rng.sample(range(mdts), rng.randint(1, mdts))
            for op in rng.sample(MDT_OPERATIONS, rng.randint(1, 3))
        )  # fmt: skip
    return {"read": vector(read), "write": vector(write), "metadata": vector(metadata)}


def huge_values(rng: random.Random, count: int) -> list[str]:
    """Read rates: HUGE_IDLE_SHARE zeros, the rest log-uniform 1..1e7 with 3 decimals."""
    idle = round(1000 * HUGE_IDLE_SHARE)
    pool = ["0"] * idle + [go_float(round(10 ** rng.uniform(0, 7), 3)) for _ in range(1000 - idle)]
    return rng.choices(pool, k=count)


def huge_read(rng: random.Random, samples: int, jobs: list[str], active: int) -> bytes:
    """The huge read answer: known ids (squeue jobs, procname.uid) spread among unknown."""
    known_count = samples - round(samples * HUGE_UNKNOWN_SHARE)
    known = jobs[: known_count // 2]
    procs = {f"{rng.choice(PROCS)}.{FIRST_UID + rng.randrange(active * 4)}"
             for _ in range(2 * known_count)}  # fmt: skip
    known += sorted(procs)[: known_count - len(known)]
    rng.shuffle(known)
    unknown = [str(HUGE_FIRST_UNKNOWN + i) for i in range(samples - len(known))]
    stride = len(unknown) // max(1, len(known))
    ids: list[str] = []
    for k, jobid in enumerate(known):
        ids += unknown[k * stride : (k + 1) * stride]
        ids.append(jobid)
    ids += unknown[len(known) * stride :]
    values = huge_values(rng, len(ids))
    return vector((f'"jobid":"{j}"', v) for j, v in zip(ids, values))


# -- cluster ----------------------------------------------------------------------------


def write_directory(root: Path, users: int, groups: int) -> list[str]:
    """passwd and group files; the user names."""
    names = [f"user{i:06d}" for i in range(users)]
    with open(root / "passwd", "w") as out:
        out.write("root:x:0:0:root:/root:/bin/bash\n")
        for i, name in enumerate(names):
            out.write(f"{name}:x:{FIRST_UID + i}:{5000 + i % groups}::/home/{name}:/bin/bash\n")
    with open(root / "group", "w") as out:
        out.write("root:x:0:\n")
        out.writelines(f"grp{g:05d}:x:{5000 + g}:\n" for g in range(groups))
    return names


def write_squeue(root: Path, rng: random.Random, squeue_jobs: int, active: list[str]) -> list[str]:
    """The squeue files: "jobid account user" (squeue) and, as the top jobs' details are
    asked, "jobid|partition|name" (squeue-details); the job ids."""
    accounts = [f"acct{i:04d}" for i in range(max(10, squeue_jobs // 50))]
    jobs = [(str(2_000_000 + i), rng.choice(accounts), rng.choice(active))
            for i in range(squeue_jobs)]  # fmt: skip
    with open(root / "squeue", "w") as out:
        out.writelines(f"{j} {a} {u}\n" for j, a, u in jobs)
    partitions = ("batch", "gpu", "long", "debug")
    with open(root / "squeue-details", "w") as out:
        out.writelines(f"{j}|{partitions[i % 4]}|run-{i % 997} step {i % 13}\n"
                       for i, (j, _, _) in enumerate(jobs))  # fmt: skip
    return [j for j, _, _ in jobs]


def scale_ids(rng: random.Random, jobids: int, jobs: list[str], active: int) -> list[str]:
    """Jobids with IO: half jobs (most of them known to squeue), half processes."""
    slurm_ids = jobs[: int(jobids / 2 * 0.8)]
    slurm_ids += [str(1_000_000 + i) for i in range(jobids // 2 - len(slurm_ids))]  # ended
    proc_ids = {f"{rng.choice(PROCS)}.{FIRST_UID + rng.randrange(active * 4)}"
                for _ in range(jobids)}  # fmt: skip
    return slurm_ids + sorted(proc_ids)[: jobids - len(slurm_ids)]


def write_fakes(root: Path) -> tuple[Path, Path]:
    """squeue and getent printing the generated files: shell (cat) and Python scripts."""
    copy = (
        f"with open({str(root)!r} + '/' + name, 'rb') as f:\n"
        "    sys.stdout.buffer.write(f.read())\n"
    )
    scripts = {
        "bin": ("/bin/sh", {
            "squeue": f'case "$*" in *%j*) exec cat "{root}/squeue-details";; esac\n'
                      f'exec cat "{root}/squeue"\n',
            "getent": f'if [ "$#" -gt 1 ]; then exit 2; fi; exec cat "{root}/$1"\n',
        }),
        "bin-python": (sys.executable, {
            "squeue": "import sys\n"
                      "name = 'squeue-details' if '%j' in ' '.join(sys.argv) else 'squeue'\n"
                      f"{copy}",
            "getent": f"import sys\nif len(sys.argv) != 2:\n    sys.exit(2)\nname = sys.argv[1]\n{copy}",
        }),
    }  # fmt: skip
    for folder, (interpreter, bodies) in scripts.items():
        (root / folder).mkdir(exist_ok=True)
        for name, body in bodies.items():
            (root / folder / name).write_text(f"#!{interpreter}\n{body}")
            (root / folder / name).chmod(0o755)
    return root / "bin", root / "bin-python"


def generate(root: Path, jobids: int, squeue_jobs: int, users: int, groups: int, mdts: int,
             seed: int = 7, huge_samples: int = 0, by_operation: bool = False) -> Cluster:  # fmt: skip
    """The cluster's files, fakes and answers; with huge_samples, the huge read answer."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    names = write_directory(root, users, groups)
    # Slurm: the active users are a small part of the directory.
    active = names[: max(50, squeue_jobs // 10)]
    jobs = write_squeue(root, rng, squeue_jobs, active)
    answers = scale_answers(rng, scale_ids(rng, jobids, jobs, len(active)), mdts, by_operation)
    if huge_samples:
        answers["read"] = huge_read(rng, huge_samples, jobs, len(active))
    cat_bin, python_bin = write_fakes(root)
    return Cluster(
        root, answers, cat_bin, python_bin,
        gzipped={k: gzip.compress(b, compresslevel=6, mtime=0) for k, b in answers.items()},
        samples={k: b.count(b'"value":[') for k, b in answers.items()},
    )  # fmt: skip


def build(workload: Workload, tmp: Path, by_operation: bool = False) -> Cluster:
    root = tmp / f"{workload.name}{workload.huge_samples or workload.jobids}"
    return generate(root, workload.jobids, workload.squeue_jobs, USERS, GROUPS, MDTS,
                    huge_samples=workload.huge_samples, by_operation=by_operation)  # fmt: skip


# -- measuring --------------------------------------------------------------------------


def floor_seconds(prom_url: str, fakes: Path) -> float:
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
        futures = [pool.submit(fetch, k) for k in KINDS]
        futures.append(pool.submit(run, str(fakes / "squeue")))
        futures.append(pool.submit(run, str(fakes / "getent"), "passwd"))
        futures.append(pool.submit(run, str(fakes / "getent"), "group"))
        for future in futures:
            future.result()
    return time.perf_counter() - started


def floor(prom_url: str, fakes: Path, rounds: int) -> float:
    return statistics.median([floor_seconds(prom_url, fakes) for _ in range(rounds)])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scrape(url: str) -> Scrape:
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
    match = OK_LINE.search(text)
    return Scrape(seconds, series, match is not None and float(match.group(1)) == 1)


def serve(cluster: Cluster) -> FakePrometheus:
    prom = FakePrometheus()
    for kind, body in cluster.gzipped.items():
        prom.set(kind, body, headers={"Content-Encoding": "gzip"})
    # With -- --metrics.operations: the call counters' answers, shaped as the bytes'.
    for kind in ("read", "write"):
        prom.set(f"{kind}_ops", cluster.gzipped[kind], headers={"Content-Encoding": "gzip"})
    # With -- --metrics.counters: the increase answers, shaped as the rates'.
    for kind in KINDS:
        prom.set(f"{kind}_increase", cluster.gzipped[kind], headers={"Content-Encoding": "gzip"})
    prom.start()
    return prom


def timed(exporter: Exporter, scrapes: int, warmup: int) -> tuple[list[Scrape], float]:
    """The warm-up and timed scrapes; CPU seconds per timed scrape."""
    url = exporter.url + "/metrics"
    warm = [scrape(url) for _ in range(warmup)]
    cpu0 = cpu_seconds(exporter.proc.pid)
    runs = [scrape(url) for _ in range(scrapes)]
    return warm + runs, (cpu_seconds(exporter.proc.pid) - cpu0) / scrapes


def measure(
    workload: Workload, scrapes: int, warmup: int, tmp: Path, fakes: str, extra: list[str]
) -> dict[str, Any]:
    # With -- --metrics.metadata-by-operation, the metadata answer is by operation too.
    cluster = build(workload, tmp, "--metrics.metadata-by-operation" in extra)
    prom = serve(cluster)
    env = dict(os.environ, PATH=f"{cluster.fakes(fakes)}:{os.environ['PATH']}")
    exporter = Exporter([f"--promserver={prom.url}", "--timeout=120", *extra], env,
                        tmp / f"exporter-{cluster.root.name}.log")  # fmt: skip
    try:
        cpu0 = cpu_seconds(exporter.proc.pid)
        first = scrape(exporter.url + "/metrics")
        first_cpu = cpu_seconds(exporter.proc.pid) - cpu0
        done, cpu = timed(exporter, scrapes, warmup)
        floors = {k: floor(prom.url, cluster.fakes(k), max(3, scrapes // 2)) for k in FAKES}
        rss = peak_rss_mb(exporter.proc.pid)
    finally:
        exporter.stop()
        prom.stop()
    times = [s.seconds for s in done[warmup:]]
    return row(workload, cluster, fakes, {
        "scrapes": scrapes, "first": first.seconds, "first_cpu": first_cpu,
        "median": statistics.median(times), "max": max(times), "cpu": cpu, "rss": rss,
        "series": done[-1].series, "floors": floors,
        "ok": all(s.ok for s in [first, *done]),
    })  # fmt: skip


def row(workload: Workload, cluster: Cluster, fakes: str, m: dict[str, Any]) -> dict[str, Any]:
    """The JSON row of one workload."""
    inputs = sum(cluster.samples.values())
    floors, ok = m.pop("floors"), m.pop("ok")
    return {
        "workload": workload.name, "jobids": workload.jobids,
        "huge_samples": workload.huge_samples, "fakes": fakes,
        "squeue_jobs": workload.squeue_jobs, "users": USERS,
        "samples": cluster.samples, "input_samples": inputs,
        "answer_mb": sum(len(b) for b in cluster.answers.values()) / 1e6,
        "answer_gz_mb": sum(len(b) for b in cluster.gzipped.values()) / 1e6,
        **m,
        "cpu_us_per_sample": m["cpu"] * 1e6 / inputs,
        "cpu_us_per_series": m["cpu"] * 1e6 / max(1, m["series"]),
        "floor_cat": floors["cat"], "floor_py": floors["python"],
        "ratio_cat": m["median"] / floors["cat"], "ratio_py": m["median"] / floors["python"],
        "ok": float(ok),
    }  # fmt: skip


def line(workload: Workload, r: dict[str, Any]) -> str:
    return (
        f"{workload.label}  in {r['input_samples']:>9,} samples {r['answer_mb']:6.1f} MB "
        f"(gz {r['answer_gz_mb']:5.1f})  first {r['first']:6.3f}s  median {r['median']:6.3f}s  "
        f"max {r['max']:6.3f}s  cpu/scrape {r['cpu']:6.3f}s  "
        f"us/in {r['cpu_us_per_sample']:5.2f} us/out {r['cpu_us_per_series']:5.2f}  "
        f"peak RSS {r['rss']:6.1f} MB  series {r['series']:>9,}  "
        f"floor cat {r['floor_cat']:6.3f}s py {r['floor_py']:6.3f}s  "
        f"ratio cat {r['ratio_cat']:6.2f} py {r['ratio_py']:6.2f}  scrape_ok {r['ok']:.0f}"
    )


def growth(rows: list[dict[str, Any]]) -> str | None:
    """Smallest to largest scale: time and CPU growth against input growth."""
    scales = sorted((r for r in rows if r["workload"] == "scale"), key=lambda r: r["jobids"])
    if len(scales) < 2:
        return None
    small, large = scales[0], scales[-1]
    return (
        f"cost growth {small['jobids']:,} -> {large['jobids']:,} jobids: "
        f"median x{large['median'] / small['median']:.1f}, cpu x{large['cpu'] / small['cpu']:.1f} "
        f"for x{large['input_samples'] / small['input_samples']:.1f} input samples, "
        f"x{large['series'] / small['series']:.1f} series; us/in "
        f"{small['cpu_us_per_sample']:.2f} -> {large['cpu_us_per_sample']:.2f}, us/out "
        f"{small['cpu_us_per_series']:.2f} -> {large['cpu_us_per_series']:.2f}"
    )


def workloads(args: argparse.Namespace) -> list[Workload]:
    """--jobids and --huge as given; neither: the three scales, then the huge answer."""
    if not args.jobids and not args.huge:
        return [Workload(j) for j in (5_000, 50_000, 500_000)] + [
            Workload(HUGE_JOBIDS, args.huge_samples)
        ]
    huge = [Workload(HUGE_JOBIDS, args.huge_samples)] if args.huge else []
    return [Workload(j) for j in args.jobids or []] + huge


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobids", type=int, action="append",
                        help="scale(s) to run (default 5000, 50000, 500000, then --huge)")  # fmt: skip
    parser.add_argument("--huge", action="store_true", help="run the huge-answer workload")
    parser.add_argument("--huge-samples", type=int, default=1_600_000,
                        help="samples of the huge read answer (default 1,600,000)")  # fmt: skip
    parser.add_argument("--scrapes", type=int, default=10,
                        help="timed scrapes (a third, at least 3, above 100,000 jobids and huge)")  # fmt: skip
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--fakes", choices=FAKES, default="cat",
                        help="squeue/getent fakes the exporter runs with (default cat)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("exporter_args", nargs="*", help="extra exporter flags (after --)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workload in workloads(args):
            big = workload.huge_samples or workload.jobids > 100_000
            scrapes = max(3, args.scrapes // 3) if big else args.scrapes
            rows.append(measure(workload, scrapes, args.warmup, Path(tmp), args.fakes,
                                args.exporter_args))  # fmt: skip
            print(line(workload, rows[-1]), flush=True)
    summary = growth(rows)
    if summary:
        print(summary)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
