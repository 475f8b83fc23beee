"""Session fixtures of the end-to-end suite: a real Slurm cluster with jobs, the
simulated Lustre exporter whose jobids are those jobs, and the query backends."""

from __future__ import annotations

import os
import pwd
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

import pytest

from tests.e2e import components as c

pytestmark = pytest.mark.e2e

# The test users created by slurm-cluster.sh: user -> primary group.
GROUP_OF = {
    "alice": "hpc-physics",
    "bob": "hpc-chem",
    "carol": "hpc-bio",
    "dave": "hpc-geo",
    "root": "root",
}
SCHEMAS = ("hp", "gsi", "lustrefs")

MIB = 1024 * 1024


@dataclass
class SlurmJobs:
    """Jobs submitted to the real cluster: jobid -> (account, user)."""

    owners: Dict[str, Tuple[str, str]] = field(default_factory=dict)
    names: Dict[str, str] = field(default_factory=dict)  # role -> jobid

    def submit(self, role: str, user: str, account: str, *extra: str) -> str:
        out = c.slurm(
            "sbatch",
            "--parsable",
            f"--uid={user}",
            f"--gid={GROUP_OF[user]}",
            "-A",
            account,
            "-o",
            "/dev/null",
            "--chdir=/tmp",
            "-J",
            f"e2e-{role}",
            *extra,
            "--wrap",
            "sleep 900",
        )
        jobid = out.strip().split(";")[0]
        self.owners[jobid] = (account, user)
        self.names[role] = jobid
        return jobid


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[None]:
    # Starting the cluster adds test users and starts its own munged and Slurm daemons
    # (never touching the host's /etc/slurm or munge): only where explicitly asked.
    if os.environ.get(c.E2E_SWITCH) != "1":
        c.unavailable(f"the Slurm cluster starts only with {c.E2E_SWITCH}=1")
    if os.geteuid() != 0:
        c.unavailable("the Slurm cluster needs root (sbatch --uid, munged, slurmd)")
    if shutil.which("slurmctld") is None or shutil.which("sbatch") is None:
        c.unavailable("Slurm is not installed (run tests/e2e/slurm-cluster.sh install)")
    was_running = c.cluster("status").returncode == 0
    started = c.cluster("start")
    if started.returncode != 0:
        pytest.fail(f"slurm-cluster.sh start failed:\n{started.stderr}")
    # The cluster's commands (and the exporter's squeue) read its own slurm.conf.
    os.environ["SLURM_CONF"] = c.cluster("conf").stdout.strip()
    try:
        yield
    finally:
        for user in ("alice", "bob", "carol", "dave"):
            c.slurm("scancel", "-u", user)
        if not was_running:
            c.cluster("stop")


@pytest.fixture(scope="session")
def slurm_jobs(slurm_cluster: None) -> SlurmJobs:
    jobs = SlurmJobs()
    jobs.submit("alice-physics", "alice", "physics")
    jobs.submit("alice-chemistry", "alice", "chemistry")  # one user, two accounts
    jobs.submit("bob-chemistry", "bob", "chemistry")
    jobs.submit("carol-pending", "carol", "biology", "--hold")  # stays PENDING
    jobs.submit("carol-idle", "carol", "biology")
    array = c.slurm(
        "sbatch",
        "--parsable",
        "--uid=bob",
        "--gid=hpc-chem",
        "-A",
        "chemistry",
        "-o",
        "/dev/null",
        "--chdir=/tmp",
        "-J",
        "e2e-array",
        "--array=1-2",
        "--wrap",
        "sleep 900",
    ).strip()

    def array_elements() -> List[str]:
        lines = c.slurm("squeue", "-h", "-j", array, "-o", "%A %K").split()
        pairs = list(zip(lines[::2], lines[1::2]))
        if len(pairs) == 2 and all(k.isdigit() for _, k in pairs):
            return [a for a, _ in sorted(pairs, key=lambda p: p[1])]
        return []

    elements = c.wait_until(array_elements, 30, "array elements to get their own job ids")
    for index, jobid in enumerate(elements, 1):
        jobs.owners[jobid] = ("chemistry", "bob")
        jobs.names[f"array-{index}"] = jobid
    return jobs


def uid(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


def build_spec(jobs: SlurmJobs) -> dict:
    """IO at known rates: jobs of every kind, processes, and ids nobody can be named for.

    Each job names the Lustre exporter schema it is served in (HP with zero-valued series,
    GSI without, lustrefs-exporter with extra labels); one simulator serves each schema.
    """
    n = jobs.names
    return {
        "filesystems": {"scratch": {"osts": 4, "mdts": 2}, "home": {"osts": 2, "mdts": 1}},
        "jobs": [
            {"jobid": n["alice-physics"], "read": 10 * MIB, "write": MIB, "read_ops": 160,
             "write_ops": 1024, "mdt_ops": {"open": 20, "close": 20, "getattr": 10},
             "ost_ops": {"punch": 8}},
            {"jobid": n["alice-chemistry"], "read": 3 * MIB, "write": 0, "mdt_ops": {"mkdir": 4},
             "schema": "gsi"},
            {"jobid": n["bob-chemistry"], "fs": "home", "read": 2 * MIB, "write": 4 * MIB,
             "read_ops": 32, "write_ops": 64, "mdt_ops": {"open": 6}, "schema": "lustrefs"},
            {"jobid": n["carol-pending"], "read": 1000, "schema": "gsi"},
            {"jobid": n["carol-idle"]},  # HP schema: zero-valued series only
            {"jobid": n["array-1"], "read": 512 * 1024, "write": 256 * 1024, "schema": "lustrefs"},
            {"jobid": n["array-2"], "read": 512 * 1024, "write": 256 * 1024},
            {"jobid": f"python3.{uid('alice')}", "read": 700000, "write": 100000,
             "read_ops": 50, "write_ops": 400, "mdt_ops": {"open": 30}},
            {"jobid": f"my.app.{uid('bob')}", "read": 123456, "write": 654321, "write_ops": 20,
             "schema": "gsi"},
            {"jobid": "rsync.0", "read": 4096, "write": 8192, "schema": "lustrefs"},
            # dave is a directory user: not in the enumeration, resolved by key.
            {"jobid": f"vim.{uid('dave')}", "read": 2222, "mdt_ops": {"stat": 2}},
            # Not attributable: unknown uid, no grammar, a job Slurm never had.
            {"jobid": "cp.59999", "read": 111, "read_ops": 3, "schema": "gsi"},
            {"jobid": "nodot", "read": 222, "read_ops": 2, "mdt_ops": {"open": 2}},
            {"jobid": "9999999", "read": 333, "write": 444, "write_ops": 7, "schema": "lustrefs"},
        ],
    }  # fmt: skip


def split_by_schema(spec: dict) -> Dict[str, dict]:
    return {
        schema: {
            "schema": schema,
            "filesystems": spec["filesystems"],
            "jobs": [j for j in spec["jobs"] if j.get("schema", "hp") == schema],
        }
        for schema in SCHEMAS
    }


Labels = Tuple[Tuple[str, str], ...]


def expected_series(
    spec: dict,
    jobs: SlurmJobs,
    fs_label: bool = False,
    operations: bool = False,
    by_operation: bool = False,
) -> Dict[str, Dict[Labels, float]]:
    """Ground truth, computed from the spec and the submitted jobs alone (with the read
    and write operations families if ``operations``, the metadata families by operation
    if ``by_operation``)."""
    fs_mdts = {fs: layout["mdts"] for fs, layout in spec["filesystems"].items()}
    users = {uid(u): u for u in GROUP_OF}
    out: Dict[str, Dict[Labels, float]] = {}

    def add(metric: str, labels: Dict[str, str], value: float) -> None:
        if value == 0:
            return
        key = tuple(sorted(labels.items()))
        series = out.setdefault(metric, {})
        series[key] = series.get(key, 0.0) + value

    for job in spec["jobs"]:
        jobid = job["jobid"]
        fs = job.get("fs", "scratch")
        name, _, uid_text = jobid.rpartition(".")
        if jobid in jobs.owners:
            account, user = jobs.owners[jobid]
            kind, owner = "job", {"account": account, "user": user}
        elif jobid.isdigit():
            kind, owner = "unattributed", {"reason": "unknown_job"}
        elif not name or not uid_text.isdigit():
            kind, owner = "unattributed", {"reason": "unparsable_jobid"}
        elif int(uid_text) not in users:
            kind, owner = "unattributed", {"reason": "unknown_uid"}
        else:
            user = users[int(uid_text)]
            owner = {"proc_name": name, "group_name": GROUP_OF[user], "user_name": user}
            kind = "proc"
        if fs_label:
            owner = {**owner, "fs": fs}
        add(f"cluster_{kind}_read_throughput_bytes", owner, job.get("read", 0))
        add(f"cluster_{kind}_write_throughput_bytes", owner, job.get("write", 0))
        if operations:
            add(f"cluster_{kind}_read_operations", owner, job.get("read_ops", 0))
            add(f"cluster_{kind}_write_operations", owner, job.get("write_ops", 0))
        mdts = fs_mdts[fs]
        # Per MDT, series under 1/s left out; rounded per jobid and MDT, or per jobid, MDT
        # and operation (as the query by operation rounds).
        rates = {op: rate / mdts for op, rate in job.get("mdt_ops", {}).items() if rate / mdts >= 1}
        metadata = f"cluster_{kind}_metadata_operations"
        for i in range(mdts):
            target = {**owner, "target": f"{fs}-MDT{i:04x}"}
            if by_operation:
                for operation, rate in rates.items():
                    add(metadata, {**target, "operation": operation}, round(rate))
            else:
                add(metadata, target, round(sum(rates.values())))
    return out


@pytest.fixture(scope="session")
def simulation(tmp_path_factory: pytest.TempPathFactory, slurm_jobs: SlurmJobs) -> Iterator[dict]:
    """One simulated Lustre exporter per schema, all serving ids of the real jobs."""
    spec = build_spec(slurm_jobs)
    started: List[c.Process] = []
    targets: List[str] = []
    spec_paths: Dict[str, Path] = {}
    try:
        for schema, part in split_by_schema(spec).items():
            proc, target, spec_path = c.start_simulator(tmp_path_factory.mktemp(schema), part)
            started.append(proc)
            targets.append(target)
            spec_paths[schema] = spec_path
        yield {
            "targets": targets,
            "spec": spec,
            "spec_paths": spec_paths,
            "expected": expected_series(spec, slurm_jobs),
            "expected_fs": expected_series(spec, slurm_jobs, fs_label=True),
            "expected_ops": expected_series(spec, slurm_jobs, operations=True),
            "expected_mdops": expected_series(spec, slurm_jobs, by_operation=True),
            "jobs": slurm_jobs,
        }
    finally:
        for proc in started:
            proc.stop()


@pytest.fixture(scope="session", params=["prometheus", "victoriametrics"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, simulation: dict
) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp(request.param)
    start = c.start_prometheus if request.param == "prometheus" else c.start_victoria_metrics
    proc, url = start(tmp, simulation["targets"])
    try:
        # Ready when every simulated jobid has a rate over two or more samples.
        wanted = len([j for j in simulation["spec"]["jobs"] if j.get("read")])
        c.wait_until(
            lambda: (
                len(
                    c.instant_query(
                        url, "sum by(jobid)(irate(lustre_job_read_bytes_total[5s]) > 0)"
                    )
                )
                >= wanted
            ),
            90,
            f"{request.param} to have rates for all jobids",
        )
        time.sleep(1.5)
        yield url
    finally:
        proc.stop()


GETENT_SSSD = Path(__file__).resolve().parent / "bin" / "getent-sssd"
StartExporter = Callable[..., str]


@pytest.fixture(scope="session")
def start_exporter(
    tmp_path_factory: pytest.TempPathFactory, backend: str
) -> Iterator[StartExporter]:
    """Start exporters against this backend; all are stopped at the end of the session.

    getent is the real one, seen through tests/e2e/bin/getent-sssd: the directory user
    dave is missing from the enumeration, as with SSSD's enumerate = false.
    """
    started: List[c.Process] = []

    def start(*args: str) -> str:
        tmp = tmp_path_factory.mktemp("exporter")
        proc, url = c.start_exporter(
            tmp, backend, "--timerange=5s", "--timeout=10", f"--getent.path={GETENT_SSSD}", *args
        )
        started.append(proc)
        return url

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


@pytest.fixture(scope="session")
def exporter(start_exporter: StartExporter) -> str:
    """The exporter with its default flags."""
    return start_exporter()


@pytest.fixture(scope="session")
def exporter_with_operations(start_exporter: StartExporter) -> str:
    """With the operations families, the metadata by operation and the counters, which
    the dashboard and the rules show."""
    return start_exporter(
        "--metrics.operations", "--metrics.metadata-by-operation", "--metrics.counters"
    )
