"""A synthetic Lustre jobstats exporter (``prometheus-cluster-exporter simulate``).

It serves ``lustre_job_read_bytes_total``, ``lustre_job_write_bytes_total`` and
``lustre_job_stats_total`` in the format of the HP/GSI lustre_exporter, with counters
that grow at known constant rates per jobid. Point a Prometheus at it to try dashboards,
to load-test a Prometheus, or to check this exporter against ground truth. It has
nothing to do with the exporter's own pipeline.

The spec is a JSON file, re-read whenever it changes (counters continue from where they
are, at the new rates; a job whose ``reset`` number changed starts again from 0, as
Lustre's counters of a jobid do once ``job_cleanup_interval`` dropped it)::

    {
      "schema": "hp",
      "filesystems": {"scratch": {"osts": 4, "mdts": 2}},
      "jobs": [
        {"jobid": "4242", "fs": "scratch", "read": 1048576, "write": 524288,
         "mdt_ops": {"open": 20, "close": 20}, "ost_ops": {"punch": 4}}
      ]
    }

Rates are per second for the whole job: bytes are spread evenly over the OSTs of the
filesystem, metadata operations over its MDTs. Schemas: ``hp`` emits zero-valued series
(as HP's exporter does), ``gsi`` leaves them out, ``lustrefs`` adds
``operation="read_bytes"``/``"write_bytes"`` and ``otel_scope_name`` to the byte counters
(as DDN's lustrefs-exporter does). Every schema serves the call counters
``lustre_job_read_samples_total`` and ``lustre_job_write_samples_total`` (``read_ops``,
``write_ops``), per OST as the bytes (lustrefs with ``otel_scope_name``). Samples carry timestamps, so with
``honor_timestamps`` the rates Prometheus computes are exact.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from prometheus_cluster_exporter.config import ConfigError, parse_listen_address
from prometheus_cluster_exporter.exposition import escape_label_value
from prometheus_cluster_exporter.http import ExporterServer

log = logging.getLogger(__name__)

SPEC_HELP = """spec file (JSON; re-read whenever it changes, counters continue at the new rates):

  {"schema": "hp",
   "filesystems": {"scratch": {"osts": 4, "mdts": 2}},
   "jobs": [{"jobid": "4242", "fs": "scratch", "read": 1048576, "write": 524288,
             "mdt_ops": {"open": 20, "close": 20}, "ost_ops": {"punch": 4}}]}

  schema       hp (zero-valued series too), gsi (without them) or lustrefs (DDN's labels)
  filesystems  name -> number of OSTs and MDTs
  jobs         jobid (as Lustre would name it: 4242, rsync.1001), its filesystem (default:
               the first), read and write bytes per second, read_ops and write_ops (read
               and write calls per second), metadata and OST operations per second by
               operation name; spread evenly over the OSTs and MDTs; reset: a number
               (default 0) that, when changed, sets the job's counters back to 0 (as
               Lustre does when job_cleanup_interval drops a jobid)
"""

SCHEMAS = ("hp", "gsi", "lustrefs")
Key = Tuple[str, Tuple[Tuple[str, str], ...]]  # (metric, labels)


@dataclass
class _Counter:
    base: float
    since: float
    rate: float
    reset: int = 0

    def value(self, now: float) -> float:
        return self.base + self.rate * (now - self.since)


def series_rates(spec: Dict[str, Any]) -> Dict[Key, float]:
    """Every counter of the spec and its rate per second."""
    schema = spec.get("schema", "hp")
    if schema not in SCHEMAS:
        raise ValueError(f"schema must be one of {SCHEMAS}, got {schema!r}")
    filesystems = spec.get("filesystems") or {"scratch": {"osts": 4, "mdts": 2}}
    rates: Dict[Key, float] = {}
    for job in spec.get("jobs", []):
        jobid = str(job["jobid"])
        fs = job.get("fs", next(iter(filesystems)))
        layout = filesystems[fs]
        osts = [f"{fs}-OST{i:04x}" for i in range(int(layout.get("osts", 4)))]
        mdts = [f"{fs}-MDT{i:04x}" for i in range(int(layout.get("mdts", 1)))]
        for metric, field, op in (
            ("lustre_job_read_bytes_total", "read", "read_bytes"),
            ("lustre_job_write_bytes_total", "write", "write_bytes"),
            ("lustre_job_read_samples_total", "read_ops", ""),
            ("lustre_job_write_samples_total", "write_ops", ""),
        ):
            rate = float(job.get(field, 0.0))
            for target in osts:
                labels = {"component": "ost", "jobid": jobid, "target": target}
                if schema == "lustrefs":
                    if op:
                        labels["operation"] = op
                    labels["otel_scope_name"] = "lustrefs-exporter"
                rates[(metric, tuple(sorted(labels.items())))] = rate / len(osts)
        for field, component, targets in (("mdt_ops", "mdt", mdts), ("ost_ops", "ost", osts)):
            for operation, rate in (job.get(field) or {}).items():
                for target in targets:
                    labels = {
                        "component": component,
                        "jobid": jobid,
                        "operation": operation,
                        "target": target,
                    }
                    key = ("lustre_job_stats_total", tuple(sorted(labels.items())))
                    rates[key] = float(rate) / len(targets)
    return rates


class Simulation:
    """Counters at constant rates; ``update`` changes the rates without resetting them."""

    def __init__(self, spec: Dict[str, Any], clock: Any = time.time) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.counters: Dict[Key, _Counter] = {}
        self.schema = "hp"
        self.update(spec)

    def update(self, spec: Dict[str, Any]) -> None:
        rates = series_rates(spec)
        resets = {str(job["jobid"]): int(job.get("reset", 0)) for job in spec.get("jobs", [])}
        now = self.clock()
        with self.lock:
            self.schema = spec.get("schema", "hp")
            for key, counter in self.counters.items():
                reset = resets.get(dict(key[1])["jobid"], counter.reset)
                counter.base = counter.value(now) if reset == counter.reset else 0.0
                counter.since, counter.reset = now, reset
                counter.rate = rates.pop(key, 0.0)
            for key, rate in rates.items():
                self.counters[key] = _Counter(0.0, now, rate, resets[dict(key[1])["jobid"]])

    def render(self) -> str:
        now = self.clock()
        stamp = int(now * 1000)
        now = stamp / 1000.0
        by_metric: Dict[str, List[str]] = {}
        with self.lock:
            for (metric, labels), counter in sorted(self.counters.items()):
                value = counter.value(now)
                if value == 0 and self.schema != "hp":
                    continue
                text = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels)
                by_metric.setdefault(metric, []).append(f"{metric}{{{text}}} {value!r} {stamp}")
        out: List[str] = []
        helps = {
            "lustre_job_read_bytes_total": "The total number of bytes that have been read.",
            "lustre_job_write_bytes_total": "The total number of bytes that have been written.",
            "lustre_job_stats_total": "Number of operations the filesystem has performed.",
            "lustre_job_read_samples_total": "Total number of reads that have been recorded.",
            "lustre_job_write_samples_total": "Total number of writes that have been recorded.",
        }
        for metric, lines in by_metric.items():
            out.append(f"# HELP {metric} {helps.get(metric, metric)}")
            out.append(f"# TYPE {metric} counter")
            out.extend(lines)
        return "\n".join(out) + "\n"


class _SpecFile:
    def __init__(self, path: Path, simulation: Simulation) -> None:
        self.path = path
        self.simulation = simulation
        self.mtime = path.stat().st_mtime_ns

    def refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
            if mtime == self.mtime:
                return
            spec = json.loads(self.path.read_text())
            self.simulation.update(spec)
            self.mtime = mtime
            log.info("spec %s reloaded", self.path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("spec %s not reloaded: %s", self.path, exc)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="prometheus-cluster-exporter simulate",
        description="Serve synthetic Lustre jobstats counters growing at known rates.",
        epilog=SPEC_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--spec", required=True, type=Path, help="JSON spec (see below)")
    parser.add_argument(
        "--web.listen-address",
        dest="listen",
        default="127.0.0.1:9169",
        help="[host]:port to listen on (default 127.0.0.1:9169)",
    )
    parser.add_argument("--log", default="INFO", type=str.upper)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log, logging.INFO),
        format="%(asctime)s %(levelname)s simulate: %(message)s",
    )
    try:
        host, port = parse_listen_address(args.listen)
        spec = json.loads(args.spec.read_text())
        simulation = Simulation(spec)
    except (ConfigError, OSError, ValueError, KeyError, TypeError) as exc:
        parser.exit(2, f"prometheus-cluster-exporter simulate: error: {exc}\n")
    spec_file = _SpecFile(args.spec, simulation)

    def metrics() -> bytes:
        spec_file.refresh()
        return simulation.render().encode()

    # The exporter's own server: the same deadlines and limits, /metrics in text format.
    try:
        server = ExporterServer(
            (host or "0.0.0.0", port),  # noqa: S104
            metrics,
            landing_page=lambda: '<a href="/metrics">simulated Lustre exporter</a>\n',
        )
    except OSError as exc:
        parser.exit(1, f"{parser.prog}: error: cannot listen on {args.listen}: "
                       f"{exc.strerror or exc}\n")  # fmt: skip
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    shown_host, shown_port = server.server_address[:2]
    log.info("Listening on http://%s:%s/metrics (pid %d)", shown_host, shown_port, os.getpid())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop.wait()
    server.shutdown()
    server.server_close()
    return 0
