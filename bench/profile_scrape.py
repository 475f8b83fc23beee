#!/usr/bin/env python3
"""Profile one scrape in-process (cProfile): collect + render + gzip, on the synthetic
cluster of bench/scale.py, with the sources' external calls replaced by the generated
bytes (so only the exporter's own work is measured).

    python bench/profile_scrape.py [--jobids 50000] [--top 15] [--top-jobs 10]
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scale import generate
from prometheus_cluster_exporter.collector import ClusterCollector
from prometheus_cluster_exporter.exposition import render
from prometheus_cluster_exporter.gcpause import gc_paused
from prometheus_cluster_exporter.records import Parsed
from prometheus_cluster_exporter.sources.httpbody import Body
from prometheus_cluster_exporter.sources.identity import (
    CachedIdentities,
    parse_group,
    parse_passwd,
)
from prometheus_cluster_exporter.sources.prometheus import (
    LustreQueries,
    PrometheusLustreSource,
)
from prometheus_cluster_exporter.sources.slurm import parse_squeue


class CannedClient:
    def __init__(self, answers: dict[str, bytes]) -> None:
        self.answers = answers

    def query(self, promql: str, deadline: float, what: str, at: Optional[float] = None) -> bytes:
        return self.answers[what.split(maxsplit=1)[0]]

    def query_body(
        self, promql: str, deadline: float, what: str, at: Optional[float] = None
    ) -> Body:
        return Body([self.query(promql, deadline, what, at)], "identity", 0, what)


class CannedSlurm:
    def __init__(self, output: bytes) -> None:
        self.output = output

    def jobs(self, deadline: float) -> Any:
        return parse_squeue(self.output)


class CannedDirectory:
    def __init__(self, passwd: bytes, group: bytes) -> None:
        self.passwd, self.group = passwd, group

    def users(self, deadline: float) -> Any:
        return parse_passwd(self.passwd)

    def groups(self, deadline: float) -> Any:
        return parse_group(self.group)

    def lookup_users(self, uids: Any, deadline: float) -> Any:
        return Parsed({})

    def lookup_groups(self, gids: Any, deadline: float) -> Any:
        return Parsed({})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobids", type=int, default=50_000)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--top-jobs", type=int, default=10, help="--metrics.top-jobs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cluster = generate(root, args.jobids, max(200, int(20_000 * args.jobids / 50_000)),
                           100_000, 20_000, 4)  # fmt: skip
        collector = ClusterCollector(
            PrometheusLustreSource(CannedClient(cluster.answers), LustreQueries.build()),  # type: ignore[arg-type]
            CannedSlurm((root / "squeue").read_bytes()),
            CachedIdentities(
                CannedDirectory((root / "passwd").read_bytes(), (root / "group").read_bytes()),
                ttl=300,
            ),
            timeout=600,
            top_jobs=args.top_jobs,
        )

        def scrape() -> int:
            families = collector.scrape()
            with gc_paused():
                body = render(families)
            return len(gzip.compress(body, compresslevel=1))

        scrape()  # warm the caches, as in a running exporter
        started = time.perf_counter()
        scrape()
        print(f"one scrape, in-process: {time.perf_counter() - started:.3f}s")
        profile = cProfile.Profile()
        profile.enable()
        scrape()
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.top)
        print(out.getvalue())
        collector.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
