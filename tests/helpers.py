"""Test helpers: a fake Prometheus HTTP API, the real exporter as a child process, and
exposition parsing."""

from __future__ import annotations

import email.utils
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

# Metric names the tests look at.
JOB_READ = "cluster_job_read_throughput_bytes"
JOB_WRITE = "cluster_job_write_throughput_bytes"
PROC_READ = "cluster_proc_read_throughput_bytes"
PROC_WRITE = "cluster_proc_write_throughput_bytes"
JOB_META = "cluster_job_metadata_operations"
PROC_META = "cluster_proc_metadata_operations"
LOST_READ = "cluster_unattributed_read_throughput_bytes"
LOST_WRITE = "cluster_unattributed_write_throughput_bytes"
LOST_META = "cluster_unattributed_metadata_operations"
OK = "cluster_exporter_scrape_ok"
FOLDED = "cluster_exporter_folded_owners"


def key(**labels: str) -> Tuple[Tuple[str, str], ...]:
    """A label set as Scrape.series() keys it."""
    return tuple(sorted(labels.items()))


HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
FAKE_BIN = HERE / "bin"


@dataclass
class Answer:
    body: bytes
    status: int = 200
    delay: float = 0.0
    content_type: str = "application/json"
    #: Seconds between single bytes of the whole response (status line, headers, body).
    trickle: float = 0.0
    headers: Dict[str, str] = field(default_factory=dict)


@dataclass
class FakePrometheus:
    """A Prometheus HTTP API on 127.0.0.1 answering /api/v1/query from fixtures.

    The answer is chosen by the metric the query names: ``read``, ``write`` or
    ``metadata``; ``vector(1)`` (--check-config's probe) is ``probe``; join mode's
    questions are ``uids`` and ``unknown_jobs``; --metrics.operations asks ``read_ops`` and
    ``write_ops``; --metrics.counters ``read_increase``, ``write_increase`` and
    ``metadata_increase``. Every query string received is recorded.
    """

    answers: Dict[str, Answer] = field(default_factory=dict)
    queries: List[str] = field(default_factory=list)
    #: Every request's query parameters (query, time, timeout).
    params: List[Dict[str, str]] = field(default_factory=list)
    headers: List[Dict[str, str]] = field(default_factory=list)
    #: Seconds the server's clock (its Date header) is ahead of this host's.
    clock_shift: float = 0.0
    server: Optional[ThreadingHTTPServer] = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def load_probe(self) -> None:
        self.set("probe", {"status": "success", "data": {"resultType": "vector",
                 "result": [{"metric": {}, "value": [1.0, "1"]}]}})  # fmt: skip

    def set(
        self,
        kind: str,
        body: bytes | dict,
        status: int = 200,
        delay: float = 0.0,
        trickle: float = 0.0,
        headers: Optional[Dict[str, str]] = None,
    ) -> None:
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        self.answers[kind] = Answer(body, status, delay, trickle=trickle, headers=headers or {})

    def load_fixtures(self) -> None:
        for kind in ("read", "write", "metadata"):
            self.set(kind, (FIXTURES / f"prometheus-{kind}.json").read_bytes())
        self.load_probe()

    def answer(self, query: str) -> Answer:
        """The answer to ``query``: the one set for its kind, else an empty vector."""
        return self.answers.get(kind_of(query)) or Answer(
            b'{"status":"success","data":{"resultType":"vector","result":[]}}'
        )

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != "/api/v1/query":
                    self.send_error(404)
                    return
                params = {k: v[0] for k, v in parse_qs(parts.query).items()}
                query = params.get("query", "")
                fake.queries.append(query)
                fake.params.append(params)
                fake.headers.append(dict(self.headers.items()))
                answer = fake.answer(query)
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    if answer.trickle:
                        self._trickle(answer)
                        return
                    self.send_response(answer.status)
                    self.send_header("Content-Type", answer.content_type)
                    self.send_header("Content-Length", str(len(answer.body)))
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _trickle(self, answer: Answer) -> None:
                head = (
                    f"HTTP/1.1 {answer.status} OK\r\nContent-Type: {answer.content_type}\r\n"
                    f"Content-Length: {len(answer.body)}\r\nConnection: close\r\n\r\n"
                ).encode()
                end = time.monotonic() + 120
                for byte in head + answer.body:
                    if time.monotonic() > end:
                        return
                    self.wfile.write(bytes((byte,)))
                    self.wfile.flush()
                    time.sleep(answer.trickle)

            def date_time_string(self, timestamp: Optional[float] = None) -> str:
                return email.utils.formatdate(time.time() + fake.clock_shift, usegmt=True)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def kind_of(query: str) -> str:
    if query == "vector(1)":
        return "probe"
    if "increase(" in query:  # --metrics.counters
        if "read_bytes" in query:
            return "read_increase"
        if "write_bytes" in query:
            return "write_increase"
        return "metadata_increase"
    if query.startswith("group by (uid)"):
        return "uids"
    if query.startswith("group by (jobid)"):
        return "unknown_jobs"
    if "read_samples" in query:
        return "read_ops"
    if "write_samples" in query:
        return "write_ops"
    if "read_bytes" in query:
        return "read"
    if "write_bytes" in query:
        return "write"
    return "metadata"


class FakeCluster:
    """State folder of the fake squeue/getent in tests/bin (see tests/bin/_fake.py)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def load_fixtures(self) -> None:
        for name in (
            "squeue.out",
            "getent-passwd.out",
            "getent-group.out",
            "getent-passwd.keyed",
            "getent-group.keyed",
            "sacct.out",
        ):
            shutil.copy(FIXTURES / name, self.root / name)

    def set(self, name: str, suffix: str, value: str | bytes | None) -> None:
        path = self.root / f"{name}.{suffix}"
        if value is None:
            path.unlink(missing_ok=True)
        elif isinstance(value, bytes):
            path.write_bytes(value)
        else:
            path.write_text(value)

    def calls(self, command: str) -> List[dict]:
        path = self.root / f"{command}.calls"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def pids(self, name: str) -> List[int]:
        path = self.root / f"{name}.pids"
        if not path.exists():
            return []
        return [int(p) for line in path.read_text().splitlines() for p in line.split()]


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


class Exporter:
    """The real exporter CLI as a child process, listening on 127.0.0.1 (random port)."""

    def __init__(self, args: List[str], env: Dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prometheus_cluster_exporter",
                "--web.listen-address=127.0.0.1:0",
                *args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            self.url = self._wait_listening()
        except BaseException:
            self.stop()
            raise

    def _wait_listening(self, timeout: float = 20.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            match = re.search(r"Listening on (https?://127\.0\.0\.1:\d+)", self.log())
            if match:
                return match.group(1)
            if self.proc.poll() is not None:
                raise RuntimeError(f"exporter exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise RuntimeError(f"exporter did not start listening:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str = "/metrics", timeout: float = 60.0) -> Tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def scrape(self, timeout: float = 60.0) -> Scrape:
        status, text = self.get("/metrics", timeout)
        assert status == 200, text
        return Scrape(text)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class Scrape:
    """A parsed exposition: ``value(name, **labels)`` and ``series(name)``.

    The parser names a counter's family without its ``_total``, which a gauge may be named
    too (``cluster_job_metadata_operations`` and ``..._total``): counters are found by the
    name they are exposed under (``counters``), and ``families`` keeps the gauge."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families: Dict[str, Metric] = {}
        self.counters: Dict[str, Metric] = {}
        for family in text_string_to_metric_families(text):
            if family.type == "counter":
                self.counters[f"{family.name}_total"] = family
                self.families.setdefault(family.name, family)
            else:
                self.families[family.name] = family

    def family(self, name: str) -> Optional[Metric]:
        return self.counters.get(name) or self.families.get(name)

    def series(self, name: str) -> Dict[Tuple[Tuple[str, str], ...], float]:
        family = self.family(name)
        if family is None:
            return {}
        return {tuple(sorted(s.labels.items())): s.value for s in family.samples}

    def value(self, name: str, **labels: str) -> Optional[float]:
        return self.series(name).get(tuple(sorted(labels.items())))

    def has(self, name: str) -> bool:
        return self.family(name) is not None


def exporter_env(cluster_dir: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{FAKE_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["FAKE_CLUSTER_DIR"] = str(cluster_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def child_pids(pid: int) -> List[int]:
    """Live (non-zombie) children of a process, over all of its threads."""
    found: List[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    for task in task_dir.iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return [c for c in found if pid_alive(c)]


def thread_count(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


def socket_count(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd).startswith("socket:"):
                count += 1
        except FileNotFoundError:
            continue
    return count


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")
