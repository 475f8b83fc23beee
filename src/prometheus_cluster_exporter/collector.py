"""The collector: runs the sources concurrently, attributes, builds metric families.

Sample output (``curl -s localhost:9846/metrics``)::

    # HELP cluster_job_read_throughput_bytes Total IO read throughput of all jobs on the cluster per account in bytes per second.
    # TYPE cluster_job_read_throughput_bytes gauge
    cluster_job_read_throughput_bytes{account="physics",user="alice"} 1.048576e+08
    # HELP cluster_proc_write_throughput_bytes Total IO write throughput of process names on the cluster per group and user in bytes per second.
    # TYPE cluster_proc_write_throughput_bytes gauge
    cluster_proc_write_throughput_bytes{group_name="hpc",proc_name="rsync",user_name="bob"} 5.24288e+06
    # HELP cluster_exporter_scrape_ok Indicates if the scrape of the exporter was successful or not.
    # TYPE cluster_exporter_scrape_ok gauge
    cluster_exporter_scrape_ok 1.0

Only one collect runs at a time. A scrape that arrives while one is running is answered
at once with ``cluster_exporter_scrape_ok 0`` and the warning
``Collect is still active... - Skipping now``.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from prometheus_cluster_exporter import attribution as attr
from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.metrics import (
    JOB_METADATA,
    JOB_READ,
    JOB_WRITE,
    PROC_METADATA,
    PROC_READ,
    PROC_WRITE,
    SCRAPE_OK,
    STAGE_SECONDS,
    MetricSpec,
)
from prometheus_cluster_exporter.records import Parsed
from prometheus_cluster_exporter.sources import IdentitySource, JobSource, LustreSource

log = logging.getLogger(__name__)

SKIP_WARNING = "Collect is still active... - Skipping now"

# Source names as they appear in logs (and stage names they are timed under).
SQUEUE = "squeue"
PASSWD = "getent passwd"  # noqa: S105 - a source name, not a secret
GROUP = "getent group"
READ = "read query"
WRITE = "write query"
METADATA = "metadata query"

# Extra time allowed past the deadline before a source that ignores it is abandoned.
_GRACE_SECONDS = 1.0


@dataclass
class SourceOutcome:
    name: str
    seconds: float
    value: Any = None
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class ScrapeReport:
    """What the last completed collect did (for logs and the landing page)."""

    started: float
    seconds: float
    ok: bool
    sources: Dict[str, SourceOutcome] = field(default_factory=dict)
    series: int = 0


def _timed(func: Callable[[float], Any], deadline: float) -> Tuple[Any, Optional[str], float]:
    start = time.perf_counter()
    try:
        return func(deadline), None, time.perf_counter() - start
    except SourceError as exc:
        return None, str(exc), time.perf_counter() - start
    except Exception as exc:  # a bug or an unexpected answer must not lose the scrape
        log.debug("source raised", exc_info=True)
        return None, f"unexpected {type(exc).__name__}: {exc}", time.perf_counter() - start


class ClusterCollector(Collector):
    def __init__(
        self,
        lustre: LustreSource,
        jobs: JobSource,
        identities: IdentitySource,
        *,
        timeout: float,
    ) -> None:
        self.lustre = lustre
        self.job_source = jobs
        self.identities = identities
        self.timeout = timeout
        self._guard = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="source")
        self.last: Optional[ScrapeReport] = None

    def describe(self) -> List[Any]:
        # Registering must never run squeue or query Prometheus.
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if not self._guard.acquire(blocking=False):
            log.warning(SKIP_WARNING)
            yield _family(SCRAPE_OK, [((), 0.0)])
            return
        try:
            families = self._collect()
        finally:
            self._guard.release()
        yield from families

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    # -- one collect ---------------------------------------------------------------------

    def _run_sources(self, deadline: float) -> Dict[str, SourceOutcome]:
        calls: Dict[str, Callable[[float], Any]] = {
            SQUEUE: self.job_source.jobs,
            PASSWD: self.identities.users,
            GROUP: self.identities.groups,
            READ: self.lustre.read_rates,
            WRITE: self.lustre.write_rates,
            METADATA: self.lustre.metadata_rates,
        }
        futures: Dict[str, Future[Tuple[Any, Optional[str], float]]] = {
            name: self._pool.submit(_timed, func, deadline) for name, func in calls.items()
        }
        outcomes: Dict[str, SourceOutcome] = {}
        for name, future in futures.items():
            try:
                value, error, seconds = future.result(
                    timeout=max(0.0, deadline - time.monotonic()) + _GRACE_SECONDS
                )
            except FutureTimeout:
                value, error, seconds = None, "did not return by the scrape deadline", self.timeout
            outcomes[name] = SourceOutcome(name, seconds, value, error)
        return outcomes

    def _collect(self) -> List[GaugeMetricFamily]:
        log.debug("Collect started")
        started = time.time()
        t0 = time.perf_counter()
        deadline = time.monotonic() + self.timeout
        out = self._run_sources(deadline)

        scrape_ok = True
        for outcome in out.values():
            if not outcome.ok:
                scrape_ok = False
                log.error("source %s failed: %s", outcome.name, outcome.error)

        skipped_lines: Dict[str, int] = {
            o.name: o.value.skipped
            for o in out.values()
            if o.ok and isinstance(o.value, Parsed) and o.value.skipped
        }

        job_index = attr.index_jobs(out[SQUEUE].value.items) if out[SQUEUE].ok else None
        users = out[PASSWD].value.items if out[PASSWD].ok else None
        groups = out[GROUP].value.items if out[GROUP].ok else None

        families: List[GaugeMetricFamily] = []
        stages: List[Tuple[Tuple[str, ...], float]] = [
            (("retrieve_running_jobs",), out[SQUEUE].seconds),
            (("retrieve_user_name_info",), out[PASSWD].seconds),
            (("retrieve_group_name_info",), out[GROUP].seconds),
        ]
        reasons: Dict[str, int] = {}
        for stage, name, job_spec, proc_spec, with_target in (
            ("build_metadata_metrics", METADATA, JOB_METADATA, PROC_METADATA, True),
            ("build_read_throughput_metrics", READ, JOB_READ, PROC_READ, False),
            ("build_write_throughput_metrics", WRITE, JOB_WRITE, PROC_WRITE, False),
        ):
            outcome = out[name]
            build_start = time.perf_counter()
            if outcome.ok:
                rows: Iterable[Tuple[str, Tuple[str, ...], float]]
                if with_target:
                    rows = ((r.jobid, (r.target,), r.value) for r in outcome.value.items)
                else:
                    rows = ((r.jobid, (), r.value) for r in outcome.value.items)
                result = attr.attribute(rows, job_index, users, groups)
                if job_index is not None:
                    families.append(_family(job_spec, result.jobs.items()))
                if users is not None and groups is not None:
                    families.append(_family(proc_spec, result.procs.items()))
                for reason, jobid in result.skipped:
                    reasons[reason] = reasons.get(reason, 0) + 1
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug("%s: jobid %r not attributed: %s", name, jobid, reason)
            stages.append(((stage,), outcome.seconds + time.perf_counter() - build_start))

        problems = {r: n for r, n in reasons.items() if r in attr.INPUT_PROBLEMS}
        if skipped_lines or problems:
            parts = [f"{n} malformed from {src}" for src, n in skipped_lines.items()]
            parts += [f"{n} {reason}" for reason, n in sorted(problems.items())]
            log.warning(
                "skipped entries this scrape: %s (details with --log=DEBUG)", ", ".join(parts)
            )

        families.append(_family(STAGE_SECONDS, stages))
        families.append(_family(SCRAPE_OK, [((), 1.0 if scrape_ok else 0.0)]))
        elapsed = time.perf_counter() - t0
        self.last = ScrapeReport(
            started=started,
            seconds=elapsed,
            ok=scrape_ok,
            sources=out,
            series=sum(len(f.samples) for f in families),
        )
        log.debug("Collect finished in %.3fs (scrape_ok=%d)", elapsed, scrape_ok)
        return families


def _family(spec: MetricSpec, rows: Any) -> GaugeMetricFamily:
    family = GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
    for labels, value in rows:
        family.add_metric(labels, value)
    return family
