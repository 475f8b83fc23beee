#!/usr/bin/env python3
"""Scrape cost under hostile upstream answers.

Runs the real exporter as a child process against a fake Prometheus API on 127.0.0.1
(fake squeue/getent as in bench/scale.py, a small generated cluster) and prints, per
scenario, one line: wall time and scrape_ok of each scrape, peak RSS (VmHWM) of the
exporter, and the first log line about the failing source.

- huge-answer: a read answer of about 100 MB (--samples, default 1,600,000) whose jobids
  are almost all 10-digit numbers squeue does not know; write and metadata answers small;
  exporter --timeout=15; two scrapes.
- gzip-bomb: a read answer with Content-Encoding gzip, about 1 MB compressed and 1 GiB
  decoded (JSON whitespace); exporter with default flags, then with
  --max-response-bytes=10000000; one scrape each.
- trickle: all three answers sent one byte every 0.2 s, exporter --timeout=5; two scrapes,
  then healthy answers are restored and one more scrape is timed.

A scrape without an answer within 120 s is reported as such and not waited for.

    python bench/hostile.py                                   # every scenario, full size
    python bench/hostile.py --scenario huge-answer --samples 50000
    python bench/hostile.py --scenario trickle
    python bench/hostile.py --scenario huge-answer --scenario gzip-bomb --src /tmp/old \\
        --json /tmp/old.json                                  # another source tree

--timeout sets the exporter's --timeout for huge-answer and trickle (default 15 and 5).
--src DIR runs the exporter with PYTHONPATH=DIR/src instead of the installed package.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import Exporter, FakePrometheus

from bench.scale import PROMETHEUS_ACCEPT, Cluster, generate, peak_rss_mb

SCENARIOS = ("huge-answer", "gzip-bomb", "trickle")
SCRAPE_LIMIT = 120.0
PREFIX = b'{"status":"success","data":{"resultType":"vector","result":['
SUFFIX = b"]}}"
FAILED = re.compile(r"source .*? failed.*|.*(?:Traceback|MemoryError|Killed).*")


def huge_answer(samples: int, known: List[str], seed: int = 11) -> bytes:
    """A read answer: one sample in 1,000 has a jobid squeue lists, the rest 10-digit ids."""
    rng = random.Random(seed)
    out = io.BytesIO()
    out.write(PREFIX)
    now = time.time()
    for start in range(0, samples, 100_000):
        rows = []
        for i in range(start, min(samples, start + 100_000)):
            jobid = known[i % len(known)] if i % 1000 == 0 else str(1_000_000_000 + i * 4099)
            value = rng.uniform(1e3, 1e9)
            rows.append(f'{{"metric":{{"jobid":"{jobid}"}},"value":[{now:.3f},"{value:.6g}"]}}')
        out.write((("," if start else "") + ",".join(rows)).encode())
    out.write(SUFFIX)
    return out.getvalue()


def gzip_bomb(decoded_mib: int) -> bytes:
    """Valid JSON (an empty result padded with spaces), gzip, built 1 MiB at a time."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * (1 << 20)
    parts = [compressor.compress(PREFIX)]
    parts += [compressor.compress(block) for _ in range(decoded_mib)]
    parts += [compressor.compress(SUFFIX), compressor.flush()]
    return b"".join(parts)


def scrape(url: str) -> Dict[str, Any]:
    """One scrape as Prometheus does it, given up on (not waited for) after SCRAPE_LIMIT."""
    result: Dict[str, Any] = {}

    def run() -> None:
        request = urllib.request.Request(
            url, headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}
        )
        try:
            with urllib.request.urlopen(request, timeout=SCRAPE_LIMIT) as response:
                body = response.read()
                if response.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
            match = re.search(r"^cluster_exporter_scrape_ok (\S+)", body.decode(), re.M)
            result["ok"] = int(float(match.group(1))) if match else None
        except Exception as exc:  # the figure to report, whatever it is
            result["error"] = f"{type(exc).__name__}: {exc}"[:120]

    started = time.perf_counter()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(SCRAPE_LIMIT)
    seconds = time.perf_counter() - started
    if thread.is_alive():
        return {"seconds": None, "ok": None, "error": f"no answer within {SCRAPE_LIMIT:g}s"}
    return {"seconds": seconds, "ok": result.get("ok"), "error": result.get("error")}


def rss(pid: int) -> float:
    try:
        return peak_rss_mb(pid)
    except OSError:
        return float("nan")


def session(name: str, cluster: Cluster, env: Dict[str, str], tmp: Path, answers: Dict[str, Any],
            flags: List[str], scrapes: int, restore: bool = False) -> Dict[str, Any]:  # fmt: skip
    """A fresh fake API and exporter; ``scrapes`` scrapes, then optionally one more after
    the cluster's healthy answers are restored."""
    prom = FakePrometheus()
    for kind, settings in answers.items():
        prom.set(kind, **settings)
    prom.start()
    log_path = tmp / f"{name.replace(' ', '_').replace('/', '_')}.log"
    exporter: Optional[Exporter] = None
    shots: List[Dict[str, Any]] = []
    try:
        exporter = Exporter([f"--promserver={prom.url}", *flags], env, log_path)
        for i in range(scrapes + int(restore)):
            if restore and i == scrapes:
                for kind, body in cluster.answers.items():
                    prom.set(kind, body)
            before = len(exporter.log())
            shot = scrape(exporter.url + "/metrics")
            time.sleep(0.2)  # let the log catch up
            found = FAILED.search(exporter.log()[before:])
            shot["log"] = found.group(0)[:160] if found else ""
            shot["rss"] = rss(exporter.proc.pid)
            shot["restored"] = restore and i == scrapes
            shots.append(shot)
        exit_code = exporter.proc.poll()
    finally:
        if exporter is not None:
            exporter.stop()
        prom.stop()
    return {"scenario": name, "flags": flags, "scrapes": shots, "exit": exit_code,
            "peak_rss_mb": max((s["rss"] for s in shots), default=float("nan"))}  # fmt: skip


def describe(row: Dict[str, Any]) -> str:
    parts = [f"{row['scenario']:<44}"]
    for i, shot in enumerate(row["scrapes"], 1):
        label = "restored" if shot["restored"] else f"scrape{i}"
        took = "  >limit" if shot["seconds"] is None else f"{shot['seconds']:7.2f}s"
        parts.append(f"{label} {took} ok={shot['ok'] if shot['ok'] is not None else '-'}")
    parts.append(f"peak RSS {row['peak_rss_mb']:7.1f} MB")
    if row["exit"] is not None:
        parts.append(f"exporter exited {row['exit']}")
    logs = [s["log"] or s["error"] for s in row["scrapes"] if s["log"] or s["error"]]
    parts.append(f"log: {logs[0] if logs else '(no failing source logged)'}")
    return "  ".join(parts)


def runs(scenario: str, args: argparse.Namespace, cluster: Cluster) -> Iterator[Tuple]:
    """(name, answers, exporter flags, scrapes, restore healthy answers) per exporter run."""
    small = {k: {"body": b} for k, b in cluster.answers.items()}
    if scenario == "huge-answer":
        known = (cluster.root / "squeue").read_text().split()[::3]
        body = huge_answer(args.samples, known)
        timeout = args.timeout or 15
        name = f"huge-answer {len(body) / 1e6:.0f}MB/{args.samples:,} --timeout={timeout:g}"
        yield name, {**small, "read": {"body": body}}, [f"--timeout={timeout:g}"], 2, False
    elif scenario == "gzip-bomb":
        bomb = gzip_bomb(args.bomb_mib)
        read = {"body": bomb, "headers": {"Content-Encoding": "gzip"}}
        for flags in ([], ["--max-response-bytes=10000000"]):
            name = f"gzip-bomb {len(bomb) / 1e6:.1f}MB->{args.bomb_mib}MiB {' '.join(flags)}"
            yield name.strip(), {**small, "read": read}, flags, 1, False
    else:
        timeout = args.timeout or 5
        answers = {k: {"body": b, "trickle": 0.2} for k, b in cluster.answers.items()}
        yield (
            f"trickle 0.2s/byte --timeout={timeout:g}",
            answers,
            [f"--timeout={timeout:g}"],
            2,
            True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", choices=SCENARIOS,
                        help="scenario(s) to run (default: all)")  # fmt: skip
    parser.add_argument("--samples", type=int, default=1_600_000, help="huge-answer samples")
    parser.add_argument("--timeout", type=float, help="exporter --timeout (default 15; 5 trickle)")
    parser.add_argument("--bomb-mib", type=int, default=1024, help="gzip-bomb decoded MiB")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--src", type=Path, help="run the exporter from DIR/src")
    args = parser.parse_args()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if args.src:
        env["PYTHONPATH"] = str(args.src.resolve() / "src")
    where = subprocess.run(
        [sys.executable, "-c", "import prometheus_cluster_exporter as p; print(p.__file__)"],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    print(f"exporter package: {where}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cluster = generate(tmp / "cluster", 2000, squeue_jobs=2000, users=5000, groups=500, mdts=4)
        env["PATH"] = f"{cluster.bin}{os.pathsep}{env['PATH']}"
        for scenario in args.scenario or SCENARIOS:
            for name, answers, flags, scrapes, restore in runs(scenario, args, cluster):
                rows.append(session(name, cluster, env, tmp, answers, flags, scrapes, restore))
                print(describe(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"exporter": where, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
