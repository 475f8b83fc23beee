"""Operator tools: --once, --check-config, the build info metric, the status page."""

from __future__ import annotations

import base64
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

import bcrypt

from prometheus_cluster_exporter import __version__
from tests.helpers import Exporter, FakeCluster, FakePrometheus, Scrape, exporter_env

Start = Callable[..., Exporter]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prometheus_cluster_exporter", *args],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip


def test_once_prints_the_metrics_and_exits_0(
    fake_prometheus: FakePrometheus, fake_cluster: FakeCluster
) -> None:
    result = run_cli(f"--promserver={fake_prometheus.url}", "--once",
                     env=exporter_env(fake_cluster.root))  # fmt: skip
    assert result.returncode == 0, result.stderr
    s = Scrape(result.stdout)
    assert s.value("cluster_exporter_scrape_ok") == 1
    assert s.value("cluster_job_read_throughput_bytes", account="chemistry", user="bob") == 2097152
    assert s.value("cluster_exporter_build_info", version=__version__,
                   python_version=platform.python_version()) == 1  # fmt: skip
    assert "process_cpu_seconds_total" not in result.stdout  # a textfile has no process metrics
    assert "Listening" not in result.stderr


FS_FAMILIES = [
    f"cluster_{who}_{what}"
    for who in ("job", "proc", "unattributed")
    for what in ("read_throughput_bytes", "write_throughput_bytes", "metadata_operations")
]


def test_demo_with_the_fs_label_names_the_filesystem_on_every_series() -> None:
    """--demo --metrics.fs-label --once: the demo's records carry their filesystem like
    the Prometheus source's (see test_fs_label), so no series has an empty fs."""
    result = run_cli("--demo", "--metrics.fs-label", "--once")
    assert result.returncode == 0, result.stderr
    # Only the gauges: the demo also exports counters (--metrics.counters).
    families = Scrape(result.stdout).families
    for name in FS_FAMILIES:
        assert families[name].type == "gauge", name
        samples = families[name].samples
        assert samples, name
        for sample in samples:
            assert sample.labels["fs"] == "scratch", (name, sample.labels)
            if "target" in sample.labels:
                assert sample.labels["target"].startswith("scratch-MDT")


def test_once_exits_1_when_a_source_fails(
    fake_prometheus: FakePrometheus, fake_cluster: FakeCluster
) -> None:
    fake_cluster.set("squeue", "rc", "1")
    result = run_cli(f"--promserver={fake_prometheus.url}", "--once",
                     env=exporter_env(fake_cluster.root))  # fmt: skip
    assert result.returncode == 1
    assert "cluster_exporter_scrape_ok 0.0" in result.stdout
    assert "source squeue failed" in result.stderr


def test_check_config(tmp_path: Path, fake_prometheus: FakePrometheus) -> None:
    ok = run_cli(f"--promserver={fake_prometheus.url}", "--check-config",
                 "--slurm.squeue-path=/bin/true", "--getent.path=/bin/true")  # fmt: skip
    assert ok.returncode == 0 and "configuration OK" in ok.stdout, ok.stderr
    assert "vector(1)" in fake_prometheus.queries  # the query API was asked
    missing = run_cli(f"--promserver={fake_prometheus.url}", "--check-config",
                      "--slurm.squeue-path=/nonexistent/squeue", "--getent.path=/bin/true")  # fmt: skip
    assert missing.returncode == 2
    assert "--slurm.squeue-path: /nonexistent/squeue not found" in missing.stderr
    down = run_cli("--promserver=http://127.0.0.1:1", "--check-config", "--timeout=5",
                   "--slurm.squeue-path=/bin/true", "--getent.path=/bin/true")  # fmt: skip
    assert down.returncode == 2
    assert down.stderr.startswith("prometheus-cluster-exporter: error: --promserver: ")
    assert down.stderr.count("\n") == 1, down.stderr
    bad_flag = run_cli("--promserver=http://prom:9090", "--check-config", "--timerange=9y")
    assert bad_flag.returncode == 2 and "--timerange" in bad_flag.stderr
    bad_web = tmp_path / "web.yml"
    bad_web.write_text("basic_auth_users: {a: plain}\n")
    web = run_cli("--demo", "--check-config", f"--web.config.file={bad_web}")
    assert web.returncode == 2 and "not a bcrypt hash" in web.stderr


def test_status_page(start_exporter: Start, fake_cluster: FakeCluster, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("status-Secret-token\n")
    exporter = start_exporter(f"--promserver.bearer-token-file={token}")
    status, page = exporter.get("/")
    assert status == 200 and "No scrape yet." in page
    exporter.scrape()
    status, page = exporter.get("/")
    assert status == 200
    assert f"Version {__version__}" in page
    assert '<a href="/metrics">Metrics</a>' in page
    assert 'scrape_ok <span class="ok">1</span>' in page
    for source in ("squeue", "getent passwd", "read query", "write query", "metadata query"):
        assert f"<td>{source}</td>" in page
    # Top consumers of the last scrape, largest first: chemistry/bob has the most IO.
    first_row = page.index("<td class=num>1</td>")
    assert "chemistry / bob" in page[first_row : first_row + 200]
    assert "Top 10 consumers" in page
    assert "status-Secret-token" not in page and "from a file" in page
    assert f"<td>{exporter.url}/metrics</td>" in page  # the address actually bound
    # A failing source shows with its error.
    fake_cluster.set("squeue", "rc", "1")
    fake_cluster.set("squeue", "err", "slurm_load_jobs error: Unable to contact slurm controller\n")
    exporter.scrape()
    _, page = exporter.get("/")
    assert 'scrape_ok <span class="fail">0</span>' in page
    assert "Unable to contact slurm controller" in page
    assert "<script" not in page and "http://" not in page.split("Query API")[0]


def _get(url: str, user: str, password: str) -> int:
    request = urllib.request.Request(url)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_sighup_re_reads_the_web_config_and_keeps_running(
    start_exporter: Start, tmp_path: Path
) -> None:
    web = tmp_path / "web.yml"

    def users(name: str) -> None:
        hashed = bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4)).decode()
        web.write_text(f"basic_auth_users:\n  {name}: '{hashed}'\n")

    users("alice")
    exporter = start_exporter(f"--web.config.file={web}")
    assert _get(exporter.url + "/", "alice", "secret") == 200
    users("bob")
    exporter.proc.send_signal(signal.SIGHUP)
    _wait_for(lambda: "re-read" in exporter.log(), "the reload log line")
    assert exporter.proc.poll() is None
    assert _get(exporter.url + "/", "bob", "secret") == 200
    assert _get(exporter.url + "/", "alice", "secret") == 401
    web.write_text("basic_auth_users: [not, a, mapping]\n")  # a broken file keeps the old one
    exporter.proc.send_signal(signal.SIGHUP)
    _wait_for(lambda: "keeping the web config in use" in exporter.log(), "the error line")
    assert _get(exporter.url + "/", "bob", "secret") == 200


def test_sighup_without_a_web_config_is_logged_not_fatal(start_exporter: Start) -> None:
    exporter = start_exporter()
    exporter.proc.send_signal(signal.SIGHUP)
    _wait_for(lambda: "Received SIGHUP" in exporter.log(), "the SIGHUP log line")
    assert exporter.proc.poll() is None
    assert exporter.scrape().value("cluster_exporter_scrape_ok") == 1


def test_simulate_is_in_the_help_and_fails_with_one_line(tmp_path: Path) -> None:
    assert "simulate --help" in run_cli("--help").stdout
    spec_help = run_cli("simulate", "--help")
    assert spec_help.returncode == 0 and '"filesystems"' in spec_help.stdout
    bad = tmp_path / "spec.json"
    bad.write_text("{not json")
    result = run_cli("simulate", f"--spec={bad}", "--web.listen-address=127.0.0.1:0")
    assert result.returncode == 2
    assert result.stderr.startswith("prometheus-cluster-exporter simulate: error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    good = tmp_path / "good.json"
    good.write_text('{"filesystems": {"scratch": {"osts": 1, "mdts": 1}}, "jobs": []}')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_cli("simulate", f"--spec={good}", f"--web.listen-address=127.0.0.1:{port}")
    assert busy.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr
    assert busy.stderr.count("\n") == 1, busy.stderr
