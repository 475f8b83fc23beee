#!/usr/bin/env python3
"""Load and soak of the real exporter process (figures, not pass/fail timing tests).

burst: while one collect is slow (squeue takes --slow seconds), fire --burst concurrent
       scrapes. All must be answered, only one collect may run, and the exporter's
       thread count must stay bounded.
soak:  --soak sequential scrapes against fast fakes; RSS growth from the end of the
       warm-up to the end must stay under 10 MB, and no thread/socket/child may pile up.

    python bench/load.py                    # full size: 200 concurrent, 5,000 scrapes
    python bench/load.py --burst 50 --soak 300  # the reduced size CI runs

Exit status 1 if a check fails. Uses the fakes of tests/ (fake Prometheus API on
127.0.0.1, fake squeue/getent on PATH).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import (
    Exporter,
    FakeCluster,
    FakePrometheus,
    Scrape,
    child_pids,
    exporter_env,
    rss_kib,
    socket_count,
    thread_count,
)

RSS_GROWTH_LIMIT_KIB = 10 * 1024
THREAD_LIMIT = 20


def fetch(url: str) -> tuple[int, float | None]:
    with urllib.request.urlopen(url, timeout=60) as response:
        scrape = Scrape(response.read().decode())
        return response.status, scrape.value("cluster_exporter_scrape_ok")


def burst(tmp: Path, prom: FakePrometheus, size: int, slow: float) -> bool:
    cluster = FakeCluster(tmp / "burst")
    cluster.load_fixtures()
    cluster.set("squeue", "sleep", str(slow))
    exporter = Exporter([f"--promserver={prom.url}", "--timeout=30"], exporter_env(cluster.root),
                        tmp / "burst.log")  # fmt: skip
    try:
        url = exporter.url + "/metrics"
        first: list[tuple[int, float | None]] = []
        runner = threading.Thread(target=lambda: first.append(fetch(url)))
        runner.start()
        while not cluster.pids("squeue"):
            time.sleep(0.01)
        peak_threads = thread_count(exporter.proc.pid)
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak_threads
            while not stop.is_set():
                peak_threads = max(peak_threads, thread_count(exporter.proc.pid))
                time.sleep(0.005)

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=size) as pool:
            results = list(pool.map(lambda _: fetch(url), range(size)))
        burst_seconds = time.monotonic() - started
        runner.join()
        stop.set()
        sampler.join()
        answered = sum(1 for status, _ in results if status == 200)
        skipped = sum(1 for _, ok in results if ok == 0)
        # The listing calls: a top jobs' details call (squeue -j) is no collect of its own.
        collects = len([c for c in cluster.calls("squeue") if "-j" not in c["argv"]])
        print(f"burst: {size} concurrent scrapes during a {slow:g}s collect")
        print(f"  answered          {answered}/{size} in {burst_seconds:.2f}s")
        print(f"  scrape_ok 0       {skipped} (skipped by the guard)")
        print(f"  collects run      {collects} (first scrape: scrape_ok {first[0][1]})")
        print(f"  peak threads      {peak_threads} (limit {THREAD_LIMIT})")
        return (answered == size and skipped == size and collects == 1
                and first[0][1] == 1 and peak_threads <= THREAD_LIMIT)  # fmt: skip
    finally:
        exporter.stop()


def fast_fakes(directory: Path) -> Path:
    """Shell fakes that only print their fixture: spawning them costs little, so the soak
    measures the exporter rather than Python start-up in the fakes."""
    directory.mkdir(parents=True, exist_ok=True)
    scripts = {
        "squeue": 'exec cat "$FAKE_CLUSTER_DIR/squeue.out"',
        "getent": 'exec cat "$FAKE_CLUSTER_DIR/getent-$1.out"',
    }
    for name, body in scripts.items():
        path = directory / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return directory


def soak(tmp: Path, prom: FakePrometheus, count: int) -> bool:
    cluster = FakeCluster(tmp / "soak")
    cluster.load_fixtures()
    env = exporter_env(cluster.root)
    env["PATH"] = f"{fast_fakes(tmp / 'fast-bin')}:{env['PATH']}"
    exporter = Exporter([f"--promserver={prom.url}"], env, tmp / "soak.log")
    try:
        url = exporter.url + "/metrics"
        pid = exporter.proc.pid
        warmup = min(100, count // 10)
        for _ in range(warmup):
            fetch(url)
        rss_start, sockets_start = rss_kib(pid), socket_count(pid)
        started = time.monotonic()
        failures = 0
        for _ in range(count):
            status, ok = fetch(url)
            failures += status != 200 or ok != 1
        seconds = time.monotonic() - started
        rss_end = rss_kib(pid)
        growth = rss_end - rss_start
        print(f"soak: {count} sequential scrapes after {warmup} warm-up scrapes")
        print(f"  duration          {seconds:.1f}s ({count / seconds:.0f} scrapes/s)")
        print(f"  failed scrapes    {failures}")
        print(f"  RSS               {rss_start / 1024:.1f} MB -> {rss_end / 1024:.1f} MB "
              f"(growth {growth / 1024:+.2f} MB, limit {RSS_GROWTH_LIMIT_KIB / 1024:.0f} MB)")  # fmt: skip
        print(f"  threads           {thread_count(pid)}")
        print(f"  sockets           {sockets_start} -> {socket_count(pid)}")
        print(f"  child processes   {len(child_pids(pid))}")
        return (failures == 0 and growth < RSS_GROWTH_LIMIT_KIB
                and thread_count(pid) <= THREAD_LIMIT and not child_pids(pid)
                and socket_count(pid) <= sockets_start + 3)  # fmt: skip
    finally:
        exporter.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=200, help="concurrent scrapes (200)")
    parser.add_argument("--slow", type=float, default=3.0, help="seconds squeue takes (3)")
    parser.add_argument("--soak", type=int, default=5000, help="sequential scrapes (5000)")
    args = parser.parse_args()
    prom = FakePrometheus()
    prom.load_fixtures()
    prom.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ok_burst = burst(Path(tmp), prom, args.burst, args.slow)
            ok_soak = soak(Path(tmp), prom, args.soak)
    finally:
        prom.stop()
    print("result: " + ("ok" if ok_burst and ok_soak else "FAILED"))
    return 0 if ok_burst and ok_soak else 1


if __name__ == "__main__":
    sys.exit(main())
