"""Real components for the end-to-end tests: the Slurm cluster script, Prometheus,
VictoriaMetrics, the simulator and the exporter, each started on 127.0.0.1 and stopped
by PID."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pytest

HERE = Path(__file__).resolve().parent
CLUSTER_SCRIPT = HERE / "slurm-cluster.sh"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: Set to 1 to let the suite start (and afterwards stop) the Slurm test cluster.
E2E_SWITCH = "CLUSTER_EXPORTER_E2E"


def unavailable(reason: str) -> None:
    """Skip locally; in CI a missing component is a failure."""
    if IN_CI:
        pytest.fail(f"end-to-end component unavailable in CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A child process with its output in a log file; stop() ends it by PID."""

    def __init__(self, argv: List[str], log: Path, env: Optional[Dict[str, str]] = None) -> None:
        self.argv = argv
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            match = re.search(pattern, self.log())
            if match:
                return match
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited ({self.proc.returncode}):\n{self.log()}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.argv[0]}: {pattern!r} not logged in {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def http_get(url: str, timeout: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def instant_query(base: str, promql: str) -> List[Dict[str, Any]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    payload = json.loads(http_get(url))
    assert payload["status"] == "success", payload
    return list(payload["data"]["result"])


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        try:
            last = predicate()
            if last:
                return last
        except (OSError, ValueError, AssertionError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def ready(proc: Process, url: str, probe: str) -> tuple[Process, str]:
    """Wait until ``url + probe`` answers; stop the process if it never does."""
    try:
        wait_until(lambda: http_get(url + probe), 30, f"{proc.argv[0]} to answer {probe}")
    except BaseException:
        proc.stop()
        raise
    return proc, url


#: (job name, targets, scrape interval) of a further scrape job.
ScrapeJob = Tuple[str, List[str], str]


def scrape_config(
    targets: List[str],
    job: str = "lustre",
    interval: str = "1s",
    rule_files: List[str] = (),  # type: ignore[assignment]
    more_jobs: Sequence[ScrapeJob] = (),
) -> str:
    rules = "".join(f"  - '{f}'\n" for f in rule_files)
    # evaluation_interval only with rules: VictoriaMetrics refuses the key.
    evaluation = f"  evaluation_interval: {interval}\n" if rules else ""
    jobs = ""
    for name, listed, every in ((job, targets, interval), *more_jobs):
        jobs += (
            f"  - job_name: {name}\n    honor_timestamps: true\n"
            f"    scrape_interval: {every}\n    scrape_timeout: {every}\n"
            f"    static_configs:\n      - targets: [{', '.join(repr(t) for t in listed)}]\n"
        )
    return (
        f"global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n"
        + evaluation
        + (f"rule_files:\n{rules}" if rules else "")
        + "scrape_configs:\n"
        + jobs
    )


def start_prometheus(
    tmp: Path,
    targets: List[str],
    job: str = "lustre",
    interval: str = "1s",
    rule_files: List[str] = (),  # type: ignore[assignment]
    more_jobs: Sequence[ScrapeJob] = (),
    port: Optional[int] = None,
) -> tuple[Process, str]:
    if shutil.which("prometheus") is None:
        unavailable("prometheus is not installed (Debian package prometheus)")
    port = port or free_port()
    config = scrape_config(targets, job, interval, rule_files, more_jobs)
    (tmp / "prometheus.yml").write_text(config)
    proc = Process(
        ["prometheus", f"--config.file={tmp / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp / 'prom-data'}", f"--web.listen-address=127.0.0.1:{port}"],
        tmp / "prometheus.log",
    )  # fmt: skip
    return ready(proc, f"http://127.0.0.1:{port}", "/-/ready")


def start_victoria_metrics(
    tmp: Path,
    targets: List[str],
    more_jobs: Sequence[ScrapeJob] = (),
    port: Optional[int] = None,
) -> tuple[Process, str]:
    if shutil.which("victoria-metrics") is None:
        unavailable("victoria-metrics is not installed (Debian package victoria-metrics)")
    port = port or free_port()
    (tmp / "vm-scrape.yml").write_text(scrape_config(targets, more_jobs=more_jobs))
    proc = Process(
        [
            "victoria-metrics",
            f"-storageDataPath={tmp / 'vm-data'}",
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-promscrape.config={tmp / 'vm-scrape.yml'}",
            "-retentionPeriod=1d",
            "-search.latencyOffset=0s",
        ],
        tmp / "victoria-metrics.log",
    )
    return ready(proc, f"http://127.0.0.1:{port}", "/health")


def start_vmalert(tmp: Path, vm: str, rule_files: Sequence[str]) -> tuple[Process, str]:
    """vmalert evaluating ``rule_files`` against VictoriaMetrics ``vm`` every 2 s,
    writing the results back into it. Alerts go to a port nobody listens on (vmalert
    refuses alerting rules without a notifier)."""
    if shutil.which("vmalert") is None:
        unavailable("vmalert is not installed (Debian package victoria-metrics)")
    port = free_port()
    proc = Process(
        ["vmalert", *(f"-rule={f}" for f in rule_files), f"-datasource.url={vm}",
         f"-remoteWrite.url={vm}", f"-remoteRead.url={vm}",
         f"-httpListenAddr=127.0.0.1:{port}", "-evaluationInterval=2s",
         f"-notifier.url=http://127.0.0.1:{free_port()}"],
        tmp / "vmalert.log",
    )  # fmt: skip
    return ready(proc, f"http://127.0.0.1:{port}", "/-/healthy")


def exporter_command() -> List[str]:
    return [sys.executable, "-m", "prometheus_cluster_exporter"]


def start_simulator(tmp: Path, spec: Dict[str, Any]) -> tuple[Process, str, Path]:
    spec_path = tmp / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    proc = Process(
        [
            *exporter_command(),
            "simulate",
            f"--spec={spec_path}",
            "--web.listen-address=127.0.0.1:0",
        ],
        tmp / "simulator.log",
    )
    try:
        match = proc.wait_for_log(r"Listening on http://(127\.0\.0\.1:\d+)/metrics")
    except BaseException:
        proc.stop()
        raise
    return proc, match.group(1), spec_path


def start_exporter(
    tmp: Path, promserver: str, *args: str, name: str = "exporter"
) -> tuple[Process, str]:
    proc = Process(
        [
            *exporter_command(),
            f"--promserver={promserver}",
            "--web.listen-address=127.0.0.1:0",
            *args,
        ],
        tmp / f"{name}.log",
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        match = proc.wait_for_log(r"Listening on (http://127\.0\.0\.1:\d+)")
    except BaseException:
        proc.stop()
        raise
    return proc, match.group(1)


def cluster(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def slurm(*argv: str) -> str:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result.stdout
