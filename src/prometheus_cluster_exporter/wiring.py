"""Wiring: the sources a run mode uses, the collector over them, and the /metrics body.

``build_sources`` is the one place that knows the run modes' sources (the real cluster's
or the demo's); everything after it, the collector, the page and the status page, works
the same whatever the mode. Imports the sources, the collector and the renderer; nothing
imports this module but ``cli``.
"""

from __future__ import annotations

import platform
import shutil
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.registry import CollectorRegistry

from prometheus_cluster_exporter import __version__
from prometheus_cluster_exporter.collector import ClusterCollector
from prometheus_cluster_exporter.config import JOIN, Config
from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.exposition import render, render_gzip
from prometheus_cluster_exporter.gcpause import gc_paused
from prometheus_cluster_exporter.guard import GuardedCollector
from prometheus_cluster_exporter.jobid import JobidGrammar
from prometheus_cluster_exporter.joincollector import JoinCollector
from prometheus_cluster_exporter.joinrules import JoinPlan
from prometheus_cluster_exporter.metrics import BUILD_INFO, TIMEOUT_SECONDS, RowFamily
from prometheus_cluster_exporter.promql import LustreSeries
from prometheus_cluster_exporter.records import (
    IdentitySource,
    JobDetailsSource,
    JobLookup,
    JobSource,
    LustreSource,
    OwnerQueries,
)
from prometheus_cluster_exporter.sources.identity import CachedIdentities
from prometheus_cluster_exporter.upstream import redact_url


@dataclass(frozen=True)
class Sources:
    """The sources of one run mode, and what to tell about them."""

    lustre: LustreSource
    jobs: JobSource
    identities: IdentitySource
    job_lookup: Optional[JobLookup]
    #: What the exporter queries, for the log and the status page (no credentials).
    description: str
    #: (flag, executable) of every command the sources run, for --check-config.
    commands: Tuple[Tuple[str, str], ...] = ()
    #: (flag, check) for --check-config: each check raises SourceError by its deadline.
    probes: Tuple[Tuple[str, Callable[[float], None]], ...] = ()
    #: Join mode's questions to the TSDB (None in direct mode).
    owners: Optional[OwnerQueries] = None
    #: The built-in demo cluster, which shows the operations families, the metadata
    #: families by operation and the counters too.
    demo: bool = False
    #: Partition and name of the top jobs (None: only what the job listing gives).
    details: Optional[JobDetailsSource] = None

    def close(self) -> int:
        """Kill the commands still running (at shutdown); how many there were."""
        if not self.commands:
            return 0
        from prometheus_cluster_exporter.sources.command import kill_running

        return kill_running()


def build_sources(config: Config, demo: bool = False) -> Sources:
    """The built-in demo cluster, or the real cluster the configuration names."""
    if demo:
        from prometheus_cluster_exporter.sources.demo import demo_sources

        lustre, jobs, identities = demo_sources()
        return Sources(lustre, jobs, identities, None, "the built-in demo cluster", demo=True)
    return _cluster_sources(config)


def lustre_series(config: Config) -> LustreSeries:
    """The site's Lustre series, as the queries and the rules see them."""
    return LustreSeries(
        rate_function=config.rate_function,
        window=config.timerange,
        read_metric=config.read_metric,
        write_metric=config.write_metric,
        stats_metric=config.stats_metric,
        read_samples_metric=config.read_samples_metric,
        write_samples_metric=config.write_samples_metric,
        jobid_label=config.jobid_label,
        target_label=config.target_label,
        mdt_target_regex=config.mdt_target_regex,
        fs_label=config.fs_label,
        metadata_by_operation=config.metadata_by_operation,
    )


def join_plan(config: Config) -> JoinPlan:
    """What join mode's rules (and the exporter's own two queries) are built from."""
    return JoinPlan.build(
        lustre_series(config),
        config.jobid_formats,
        config.info_lookback,
        config.max_series,
        config.operations,
    )


def _cluster_sources(config: Config) -> Sources:
    from prometheus_cluster_exporter.sources.identity import GetentSource
    from prometheus_cluster_exporter.sources.jobdetails import SlurmJobDetails
    from prometheus_cluster_exporter.sources.prometheus import (
        LustreQueries,
        PrometheusClient,
        PrometheusLustreSource,
    )
    from prometheus_cluster_exporter.sources.promjoin import PrometheusOwnerQueries
    from prometheus_cluster_exporter.sources.slurm import CachedJobLookup, SacctSource, SqueueSource

    queries = LustreQueries.of(lustre_series(config))
    client = PrometheusClient(
        config.promserver or "",
        max_response_bytes=config.max_response_bytes,
        basic_auth=(
            (config.promserver_user, config.promserver_password())
            if config.promserver_user
            else None
        ),
        bearer_token_file=config.promserver_bearer_token_file,
        ca_file=config.promserver_ca_file,
        insecure_skip_verify=config.promserver_insecure,
        cert_file=config.promserver_cert_file,
        key_file=config.promserver_key_file,
    )
    cap = config.max_command_output_bytes
    commands = [("--slurm.squeue-path", config.squeue_path), ("--getent.path", config.getent_path)]
    job_lookup: Optional[JobLookup] = None
    if config.sacct:
        job_lookup = CachedJobLookup(SacctSource(config.sacct_path, cap))
        commands.append(("--slurm.sacct-path", config.sacct_path))
    lustre = PrometheusLustreSource(client, queries)
    owners = None
    if config.mode == JOIN:
        plan = join_plan(config)
        owners = PrometheusOwnerQueries(client, plan.uids_query(), plan.unknown_jobs_query())
    return Sources(
        lustre,
        SqueueSource(config.squeue_path, config.squeue_json, cap),
        GetentSource(config.getent_path, max_output=cap),
        job_lookup,
        f"Prometheus at {redact_url(config.promserver or '')}",
        tuple(commands),
        (("--promserver", lustre.probe),),
        owners,
        details=SlurmJobDetails(
            config.squeue_path, config.sacct_path if config.sacct else None, cap
        ),
    )


def build_collector(config: Config, sources: Sources) -> GuardedCollector:
    """A collector over the sources, with the configuration's attribution settings."""
    identities = CachedIdentities(sources.identities, ttl=config.getent_cache_ttl)
    if sources.owners is not None:
        return JoinCollector(
            sources.owners,
            sources.jobs,
            identities,
            timeout=config.timeout,
            job_lookup=sources.job_lookup,
            job_grace=config.effective_job_grace,
        )
    return ClusterCollector(
        sources.lustre,
        sources.jobs,
        identities,
        timeout=config.timeout,
        grammar=JobidGrammar(config.jobid_formats),
        job_lookup=sources.job_lookup,
        job_grace=config.effective_job_grace,
        fs_label=config.fs_label,
        max_series=config.max_series,
        operations=config.operations or sources.demo,
        top_jobs=config.top_jobs,
        job_details=sources.details,
        metadata_by_operation=config.metadata_by_operation or sources.demo,
        counters=config.counters or sources.demo,
        counters_max_gap=config.counters_max_gap,
        # The demo's answers are made up for any window, however short.
        counters_min_window=0.0 if sources.demo else config.effective_counters_min_window,
    )


BUILD = RowFamily(BUILD_INFO, [((__version__, platform.python_version()), 1.0)])


class MetricsPage:
    """The body of /metrics: the cluster metrics (fast renderer), the build info, the
    configured timeout and the exporter's own process_*/python_* metrics; ``page()``
    as text, ``page.gzip()`` compressed as it is rendered."""

    def __init__(self, collector: GuardedCollector, process_metrics: bool = True) -> None:
        self.collector = collector
        self.constant = [BUILD, RowFamily(TIMEOUT_SECONDS, [((), collector.timeout)])]
        self.own = CollectorRegistry(auto_describe=False)
        if process_metrics:
            ProcessCollector(registry=self.own)
            PlatformCollector(registry=self.own)
            GCCollector(registry=self.own)

    def __call__(self) -> bytes:
        # The pause spans collect and render and ends once the families are freed, so the
        # collection that follows does not walk the whole scrape's data.
        with gc_paused():
            body = render([*self.collector.scrape(), *self.constant])
        return body + generate_latest(self.own)

    def gzip(self) -> bytes:
        with gc_paused():
            families = [*self.collector.scrape(), *self.constant]
            return render_gzip(families, generate_latest(self.own))


def check_sources(sources: Sources, timeout: float) -> List[str]:
    """Problems with the sources (for --check-config): commands that are not there, a
    query API that does not answer a trivial query within ``timeout``."""
    problems = [
        f"{flag}: {path} not found or not executable"
        for flag, path in sources.commands
        if shutil.which(path) is None
    ]
    for flag, probe in sources.probes:
        try:
            probe(time.monotonic() + timeout)
        except SourceError as exc:
            problems.append(f"{flag}: {exc}")
    return problems
