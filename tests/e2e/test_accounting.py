"""--metrics.counters against real Slurm and real Prometheus: after T seconds every
counter is its known rate x T within 3 %, through a job that ends, a Lustre counter reset,
a missed collect and an exporter restart.

One run (the module's fixture) drives a simulated Lustre exporter at known rates for the
ids of real Slurm jobs, and a real Prometheus scrapes it twice a second and the exporter
every three seconds. increase() extrapolates each window from the samples inside it, so
where a rate changes (a job ends) a window can be off by up to a Lustre scrape interval
of IO: the job that ends runs 25 s or more, so that stays under 2 %. The test never scrapes the exporter itself (each of its scrapes would be a
collect, and shorter windows): the counters' values and instants are Prometheus's samples.

    exporter 1 starts                      (counts from its start)
    +30 s  the "ends" job ends             (rate 0, scancel: its owner keeps the bytes)
    +34 s  the "reset" job goes idle
    +38 s  ... Lustre drops its counters   (reset to 0) and it resumes
    +42 s  the exporter is stopped (SIGSTOP) for 10 s: Prometheus's scrapes fail
    +62 s  exporter 1 stops, right after a scrape; exporter 2 starts on the same port
    +85 s  the end
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlencode

import pytest

from prometheus_cluster_exporter.usagehtml import READ_COLOUR, WRITE_COLOUR
from tests.e2e import components as c
from tests.e2e import pngpixels
from tests.e2e.conftest import GETENT_SSSD, MIB, SlurmJobs, uid
from tests.e2e.pngpixels import count_colour
from tests.e2e.test_status_page_browser import chromium

pytestmark = pytest.mark.e2e

TOLERANCE = 0.03
EXPORTER_INTERVAL = 3  # seconds; three times the Lustre exporter's
KIB = 1024

#: Owner label values of each counter family in the checks below.
Owner = Tuple[Tuple[str, str], ...]


def owner(**labels: str) -> Owner:
    return tuple(sorted(labels.items()))


@dataclass
class Segment:
    """A job's IO at constant rates from ``start`` to ``end`` (Unix seconds)."""

    read: float
    write: float
    metadata: float
    start: float
    end: float = math.inf


@dataclass
class Run:
    """What the fixture did, and when."""

    prometheus: str
    #: (family kind, owner) -> the segments of IO it owns.
    truth: Dict[Tuple[str, Owner], List[Segment]] = field(default_factory=dict)
    #: Instants: "paused", "resumed", "stopped" (exporter 1), "restarted" (exporter 2 listening).
    at: Dict[str, float] = field(default_factory=dict)
    exporter_logs: List[str] = field(default_factory=list)

    def expected(self, kind: str, who: Owner, what: str, start: float, end: float) -> float:
        return math.fsum(
            getattr(seg, what) * max(0.0, min(end, seg.end) - max(start, seg.start))
            for seg in self.truth.get((kind, who), [])
        )


class Simulator:
    """The simulated Lustre exporter and its spec; ``change`` applies a new spec at once
    (the simulator re-reads it when asked for its metrics) and says when."""

    def __init__(self, tmp: Path, jobs: List[dict]) -> None:
        self.jobs = {job["jobid"]: job for job in jobs}
        spec = {"schema": "hp", "filesystems": {"scratch": {"osts": 4, "mdts": 2}}, "jobs": jobs}
        self.proc, self.target, self.path = c.start_simulator(tmp, spec)

    def change(self, jobid: str, **fields: object) -> float:
        self.jobs[jobid] = {**self.jobs[jobid], **fields}
        spec = json.loads(self.path.read_text())
        spec["jobs"] = list(self.jobs.values())
        before = time.time()
        self.path.write_text(json.dumps(spec))
        c.http_get(f"http://{self.target}/metrics")
        return (before + time.time()) / 2


class Exporter:
    def __init__(self, tmp: Path, prometheus: str, port: int, name: str) -> None:
        self.proc = c.Process(
            [*c.exporter_command(), f"--promserver={prometheus}",
             f"--web.listen-address=127.0.0.1:{port}", "--metrics.counters",
             "--timerange=2s", "--timeout=10", f"--getent.path={GETENT_SSSD}"],
            tmp / f"{name}.log",
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            self.proc.wait_for_log(r"Listening on http://127\.0\.0\.1:\d+")
        except BaseException:
            self.proc.stop()
            raise

    def stop(self) -> None:
        if self.proc.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # in case it is paused
        self.proc.stop()


def last_sample(prometheus: str) -> Optional[float]:
    """The instant of the newest sample Prometheus has of the exporter's counters."""
    found = c.instant_query(prometheus, 'timestamp(cluster_job_read_bytes_total{job="cluster"})')
    return max((float(r["value"][1]) for r in found), default=None)


def wait_for_samples(prometheus: str, count: int, after: float) -> float:
    """Wait for ``count`` new samples of the exporter after the instant ``after``; the last's."""
    seen: List[float] = []

    def newer() -> bool:
        newest = last_sample(prometheus)
        if newest is not None and newest > after and newest not in seen:
            seen.append(newest)
        return len(seen) >= count

    c.wait_until(newer, 20 + 2 * count * EXPORTER_INTERVAL, "samples of the exporter", 0.1)
    return seen[-1]


@pytest.fixture(scope="module")
def run(slurm_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("accounting")
    jobs = SlurmJobs()
    steady = jobs.submit("acct-steady", "alice", "physics")
    ends = jobs.submit("acct-ends", "carol", "biology")
    resets = jobs.submit("acct-reset", "bob", "chemistry")
    dd = f"dd.{uid('bob')}"
    spec_jobs = [
        {"jobid": steady, "read": 8 * MIB, "write": 2 * MIB, "mdt_ops": {"open": 40}},
        {"jobid": ends, "read": 4 * MIB, "write": MIB, "mdt_ops": {"close": 10}},
        {"jobid": resets, "read": 2 * MIB, "write": 6 * MIB, "mdt_ops": {"getattr": 6}},
        {"jobid": dd, "read": MIB, "write": 3 * MIB},
        {"jobid": "8888888", "read": 64 * KIB, "write": 32 * KIB, "mdt_ops": {"open": 2}},
    ]
    simulator = Simulator(tmp, spec_jobs)
    port = c.free_port()
    exporters: List[Exporter] = []
    prometheus: Optional[c.Process] = None
    try:
        prometheus, url = c.start_prometheus(
            tmp,
            [simulator.target],
            interval="500ms",
            more_jobs=[("cluster", [f"127.0.0.1:{port}"], f"{EXPORTER_INTERVAL}s")],
        )
        c.wait_until(
            lambda: (
                len(c.instant_query(url, "increase(lustre_job_read_bytes_total[3s]) > 0"))
                >= 4 * len(spec_jobs)
            ),
            60,
            "Prometheus to have two samples of every simulated series",
        )
        out = Run(url)
        exporters.append(Exporter(tmp, url, port, "exporter-1"))
        begun = time.time()
        wait_for_samples(url, 2, begun)

        def segment(kind: str, who: Owner, job: dict, start: float) -> Segment:
            mdt = sum(job.get("mdt_ops", {}).values())
            seg = Segment(job.get("read", 0), job.get("write", 0), mdt, start)
            out.truth.setdefault((kind, who), []).append(seg)
            return seg

        segment("job", owner(account="physics", user="alice"), spec_jobs[0], 0)
        ending = segment("job", owner(account="biology", user="carol"), spec_jobs[1], 0)
        resetting = segment("job", owner(account="chemistry", user="bob"), spec_jobs[2], 0)
        segment("proc", owner(proc_name="dd", group_name="hpc-chem", user_name="bob"),
                spec_jobs[3], 0)  # fmt: skip
        segment("unattributed", owner(reason="unknown_job"), spec_jobs[4], 0)

        time.sleep(max(0.0, begun + 30 - time.time()))
        ending.end = simulator.change(ends, read=0, write=0, mdt_ops={})
        c.slurm("scancel", ends)
        time.sleep(max(0.0, begun + 34 - time.time()))
        resetting.end = simulator.change(resets, read=0, write=0, mdt_ops={})
        time.sleep(max(0.0, begun + 38 - time.time()))
        again = simulator.change(resets, reset=1, **{k: spec_jobs[2][k] for k in
                                                     ("read", "write", "mdt_ops")})  # fmt: skip
        out.truth[("job", owner(account="chemistry", user="bob"))].append(
            Segment(resetting.read, resetting.write, resetting.metadata, again)
        )
        time.sleep(max(0.0, begun + 42 - time.time()))
        out.at["paused"] = time.time()
        os.kill(exporters[0].proc.pid, signal.SIGSTOP)
        time.sleep(10)
        os.kill(exporters[0].proc.pid, signal.SIGCONT)
        out.at["resumed"] = time.time()
        # Stop right after one of Prometheus's scrapes, so the restart costs only the time
        # to stop and start.
        newest = wait_for_samples(url, 3, out.at["resumed"])
        wait_for_samples(url, 1, newest)
        out.at["stopped"] = time.time()
        exporters[0].stop()
        out.exporter_logs.append(exporters[0].proc.log())
        exporters.append(Exporter(tmp, url, port, "exporter-2"))
        out.at["restarted"] = time.time()
        out.at["end"] = wait_for_samples(url, 7, out.at["restarted"])
        yield out
    finally:
        for exporter in exporters:
            exporter.stop()
        if prometheus is not None:
            prometheus.stop()
        simulator.proc.stop()
        for jobid in jobs.owners:
            c.slurm("scancel", jobid)


FAMILIES = {
    "read": "cluster_{kind}_read_bytes_total",
    "write": "cluster_{kind}_write_bytes_total",
    "metadata": "cluster_{kind}_metadata_ops_total",
}
OWNER_LABELS = {
    "job": ("account", "user"),
    "proc": ("proc_name", "group_name", "user_name"),
    "unattributed": ("reason",),
}


def samples(run: Run, kind: str, what: str) -> Dict[Owner, List[Tuple[float, float]]]:
    """Every sample Prometheus has of a family, summed per owner (over MDTs) at each instant."""
    family = FAMILIES[what].format(kind=kind)
    found = c.instant_query(run.prometheus, f'{family}{{job="cluster"}}[10m]')
    out: Dict[Owner, Dict[float, float]] = {}
    for series in found:
        who = owner(**{k: series["metric"][k] for k in OWNER_LABELS[kind]})
        for stamp, value in series["values"]:
            at = out.setdefault(who, {})
            at[float(stamp)] = at.get(float(stamp), 0.0) + float(value)
    return {who: sorted(values.items()) for who, values in out.items()}


def query_at(prometheus: str, promql: str, at: float) -> List[dict]:
    url = f"{prometheus}/api/v1/query?" + urlencode({"query": promql, "time": str(at)})
    payload = json.loads(c.http_get(url))
    assert payload["status"] == "success", payload
    return list(payload["data"]["result"])


def off_by(got: float, want: float) -> float:
    return abs(got - want) / want


def counted_instants(run: Run) -> List[float]:
    """The instants of exporter 1's samples whose collect counted: the steady job's total
    grew since the sample one scrape before (a scrape after a longer gap may show what
    another collect counted in between, at another instant)."""
    steady = samples(run, "job", "read")[owner(account="physics", user="alice")]
    return [
        t for (before, v0), (t, v) in zip(steady, steady[1:])
        if v > v0 and t - before < EXPORTER_INTERVAL + 1.5 and t < run.at["stopped"]
    ]  # fmt: skip


def test_each_counter_is_its_rate_times_the_time_through_an_ended_job_a_reset_and_a_gap(
    run: Run,
) -> None:
    """Exporter 1's samples: from its first counted collect to its last, every counter grew
    by its known rate x the time between them (the job that ended: up to its end; the reset
    one: while active); and the first collect counted after the missed ones covers the
    whole gap."""
    counted = counted_instants(run)
    t1, t2 = counted[0], counted[-1]
    before = max(t for t in counted if t < run.at["paused"])
    after = min(t for t in counted if t > run.at["resumed"])
    assert t1 < before < after < t2 and t2 - t1 > 45, counted
    spans = ((t1, t2, ""), (before, after, " over the missed collects"))
    problems = []
    checked = 0
    for kind, who in run.truth:
        for what in FAMILIES:
            if not any(getattr(seg, what) for seg in run.truth[(kind, who)]):
                continue
            values = dict(samples(run, kind, what).get(who, []))
            for start, end, span in spans:
                want = run.expected(kind, who, what, start, end)
                got = values[end] - values.get(start, 0.0)
                if want and off_by(got, want) > TOLERANCE:
                    problems.append(f"{kind} {dict(who)} {what}{span}: {got:.0f}, want {want:.0f}")
            checked += 1
    assert checked == 14, checked
    assert not problems, "\n".join(problems) + "\n" + run.exporter_logs[0][-3000:]


def test_an_exporter_restart_is_an_ordinary_counter_reset(run: Run) -> None:
    """Prometheus's increase() over the whole run, across the restart: each counter's known
    rate x the time within 3 %; only the IO between the old process's last scrape and the
    new one's start is missing."""
    start = math.ceil(samples(run, "job", "read")[owner(account="physics", user="alice")][0][0]) + 1
    end = math.floor(run.at["end"])
    problems = []
    for kind, who in run.truth:
        for what, template in FAMILIES.items():
            want = run.expected(kind, who, what, start, end)
            if not want:
                continue
            family = template.format(kind=kind)
            matchers = ",".join(f'{k}="{v}"' for k, v in who)
            query = f'sum(increase({family}{{job="cluster",{matchers}}}[{end - start}s]))'
            result = query_at(run.prometheus, query, end)
            got = float(result[0]["value"][1]) if result else 0.0
            if off_by(got, want) > TOLERANCE:
                problems.append(f"{kind} {dict(who)} {what}: {got:.0f}, want {want:.0f}")
    assert not problems, "\n".join(problems)


# -- the usage report ---------------------------------------------------------------------


def report(run: Run, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*c.exporter_command(), "report", f"--promserver={run.prometheus}", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def period(run: Run) -> Tuple[int, int, List[str]]:
    """The whole run, across the restart, in whole seconds; and its flags."""
    steady = samples(run, "job", "read")[owner(account="physics", user="alice")]
    start, end = math.ceil(steady[0][0]) + 1, math.floor(run.at["end"])

    def iso(at: int) -> str:
        return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    return start, end, [f"--from={iso(start)}", f"--to={iso(end)}", '--selector=job="cluster"']


def test_the_report_gives_each_owner_its_known_total(run: Run, tmp_path: Path) -> None:
    start, end, flags = period(run)
    done = report(run, tmp_path, *flags, "--format=json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["seconds"] == end - start
    got: Dict[Tuple[str, Owner], Dict[str, int]] = {}
    for account in document["accounts"]:
        for user in account["users"]:
            got[("job", owner(account=account["account"], user=user["user"]))] = user
    for user in document["outside_jobs"]:
        got[("proc", owner(proc_name="dd", group_name="hpc-chem", user_name=user["user"]))] = user
    for reason in document["unattributed"]:
        got[("unattributed", owner(reason=reason["reason"]))] = reason
    assert set(got) == set(run.truth)
    problems = []
    for key in run.truth:
        for what, field_name in (("read", "read_bytes"), ("write", "write_bytes"),
                                 ("metadata", "metadata_ops")):  # fmt: skip
            want = run.expected(*key, what, start, end)
            value = got[key][field_name]
            assert isinstance(value, int)
            if (want or value) and off_by(value, want or 1) > TOLERANCE:
                problems.append(f"{key} {field_name}: {value}, want {want:.0f}")
    assert not problems, "\n".join(problems)
    # Biggest first: physics moved the most bytes.
    assert document["accounts"][0]["account"] == "physics"
    text = report(run, tmp_path, *flags)
    assert text.returncode == 0 and "physics" in text.stdout and " MB" in text.stdout, text


def test_the_html_report_in_headless_chromium(run: Run, tmp_path: Path) -> None:
    """The page alone (no network), rendered: the table and a chart whose read and written
    bars have the areas of the bytes."""
    start, end, flags = period(run)
    page = tmp_path / "usage.html"
    done = report(run, tmp_path, *flags, "--format=html", f"--output={page}")
    assert done.returncode == 0 and done.stdout == "", done.stderr
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'id="chart"' in dom.stdout and 'id="usage"' in dom.stdout
    for name in ("physics", "chemistry", "biology", "alice", "bob", "carol", "unknown_job"):
        assert name in dom.stdout, name
    shot = tmp_path / "usage.png"
    taken = chromium(tmp_path, "--window-size=1200,1000", f"--screenshot={shot}", page.as_uri())
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    width, height, channels, pixels = pngpixels.decode(shot.read_bytes())
    assert (width, height) == (1200, 1000)
    read_px = count_colour(pixels, channels, READ_COLOUR)
    write_px = count_colour(pixels, channels, WRITE_COLOUR)
    legend = min(read_px, write_px, 14 * 14)  # each legend square, at the page's scale
    assert read_px > 2000 and write_px > 2000, (read_px, write_px)
    jobs = [key for key in run.truth if key[0] == "job"]
    read = math.fsum(run.expected(*key, "read", start, end) for key in jobs)
    write = math.fsum(run.expected(*key, "write", start, end) for key in jobs)
    ratio = (read_px - legend) / (write_px - legend)
    assert ratio == pytest.approx(read / write, rel=0.15), (read_px, write_px, read, write)
