"""--slurm.sacct against real Slurm accounting: slurmdbd and MariaDB (slurm-accounting.sh),
with the grace memory off, so that only sacct can name the jobs that ended.

The accounting cluster runs in a network namespace of its own (slurmdbd listens on every
interface); for this module the test process joins it (setns), so the Prometheus, the
simulated Lustre exporter and the exporter it starts are on that namespace's loopback.
"""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
from typing import Dict, Iterator, List, Tuple

import pytest

from tests.e2e import components as c
from tests.e2e.conftest import GETENT_SSSD, MIB, SlurmJobs
from tests.helpers import Scrape

pytestmark = pytest.mark.e2e

SCRIPT = c.HERE / "slurm-accounting.sh"
CLONE_NEWNET = 0x40000000
#: Ids Slurm never had, asked of sacct in one scrape: several -j lists.
UNKNOWN_IDS = 9000
NEVER = "8999999"


def script(command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), command], capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


def setns(path: str) -> None:
    """Move this thread (pytest's) into the network namespace at ``path``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


def sacct_rows(ids: List[str]) -> Dict[str, Tuple[str, str, str]]:
    """JobIDRaw -> (account, user, state) as the accounting database has them."""
    out = c.slurm("sacct", "-X", "-n", "-P", "-a", "-j", ",".join(ids),
                "-o", "JobIDRaw,Account,User,State")  # fmt: skip
    rows = {}
    for line in out.splitlines():
        raw, account, user, state = line.split("|", 3)
        rows[raw] = (account, user, state)
    return rows


def ended_in_accounting(ids: List[str]) -> bool:
    rows = sacct_rows(ids)
    return all(i in rows and not rows[i][2].startswith(("RUNNING", "PENDING")) for i in ids)


@pytest.fixture(scope="module")
def accounting(slurm_cluster: None) -> Iterator[str]:
    """The accounting cluster, and this process in its network namespace."""
    started = script("start")
    if started.returncode != 0:
        pytest.fail(f"slurm-accounting.sh start failed:\n{started.stderr[-3000:]}")
    conf = script("conf").stdout.strip()
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    saved = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    try:
        setns(script("netns").stdout.strip())
        yield conf
    finally:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.setns(home, CLONE_NEWNET)
        os.close(home)
        if saved is not None:
            os.environ["SLURM_CONF"] = saved
        script("stop", timeout=600)


def expected_of(jobs: Dict[str, Tuple[str, str]], rates: Dict[str, dict]) -> Dict[str, dict]:
    """Family -> owner labels -> value, from the rates of the ids and their owners."""
    out: Dict[str, dict] = {}
    for jobid, rate in rates.items():
        account, user = jobs[jobid]
        key = (("account", account), ("user", user))
        for what, family in (("read", "cluster_job_read_throughput_bytes"),
                             ("write", "cluster_job_write_throughput_bytes")):  # fmt: skip
            series = out.setdefault(family, {})
            series[key] = series.get(key, 0.0) + rate[what]
        meta = out.setdefault("cluster_job_metadata_operations", {})
        for mdt in ("scratch-MDT0000", "scratch-MDT0001"):
            mkey = tuple(sorted((*key, ("target", mdt))))
            meta[mkey] = meta.get(mkey, 0.0) + rate["open"] / 2
    return out


@pytest.fixture(scope="module")
def ended(accounting: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Ended jobs of every shape with IO at known rates; the exporter, Prometheus and the
    simulator in the namespace."""
    owners: Dict[str, Tuple[str, str]] = {}
    jobs = SlurmJobs()
    plain = jobs.submit("plain", "bob", "chemistry")
    second = jobs.submit("second", "alice", "chemistry")  # alice's second account
    array = jobs.submit("array", "carol", "biology", "--array=1-3")
    het = jobs.submit("het", "dave", "biology", "-n1", ":", "-n1")

    def array_elements() -> List[str]:
        out = c.slurm("squeue", "-h", "-j", array, "-o", "%A %K").split()
        pairs = list(zip(out[::2], out[1::2]))
        return [a for a, k in pairs if k.isdigit()] if len(pairs) == 3 else []

    elements = c.wait_until(array_elements, 60, "the array's elements to get their ids")
    het_ids = c.wait_until(
        lambda: sorted(c.slurm("squeue", "-h", "-j", het, "-o", "%A").split(), key=int),
        60, "the het job's components"
    )  # fmt: skip
    owners[plain] = ("chemistry", "bob")
    owners[second] = ("chemistry", "alice")
    for element in elements:
        owners[element] = ("biology", "carol")
    owners[het] = ("biology", "dave")
    all_ids = [plain, second, *elements, *het_ids]
    for jobid in (plain, second, array, het):
        c.slurm("scancel", jobid)
    c.wait_until(
        lambda: not c.slurm("squeue", "-h", "-o", "%A").split(), 60, "squeue to forget them"
    )
    c.wait_until(lambda: ended_in_accounting(all_ids), 60, "accounting to have the ended jobs")
    rates = {
        plain: {"read": 4 * MIB, "write": MIB, "open": 20},
        second: {"read": 3 * MIB, "write": 2 * MIB, "open": 10},
        het: {"read": MIB, "write": 5 * MIB, "open": 4},
        **{e: {"read": 512 * 1024 * (i + 1), "write": 1000, "open": 2}
           for i, e in enumerate(elements)},
    }  # fmt: skip
    spec_jobs = [{"jobid": j, "read": r["read"], "write": r["write"], "mdt_ops": {"open": r["open"]}}
                 for j, r in rates.items()]  # fmt: skip
    spec_jobs.append({"jobid": NEVER, "read": 7777})
    spec_jobs += [{"jobid": str(7_000_000 + i), "read": 1} for i in range(UNKNOWN_IDS)]
    # The id Slurm gives the next job: IO under it before the job exists.
    future = str(max(int(i) for i in all_ids) + 1)
    spec_jobs.append({"jobid": future, "read": 2 * MIB, "write": 0})
    tmp = tmp_path_factory.mktemp("sacct-real")
    spec = {"schema": "gsi", "filesystems": {"scratch": {"osts": 2, "mdts": 2}}, "jobs": spec_jobs}
    simulator, target, _ = c.start_simulator(tmp, spec)
    started: List[c.Process] = [simulator]
    try:
        prometheus, url = c.start_prometheus(tmp, [target])
        started.append(prometheus)
        c.wait_until(
            lambda: len(c.instant_query(url, "irate(lustre_job_read_bytes_total[5s]) > 0"))
            >= 2 * len(spec_jobs),
            90, "Prometheus to have rates for every id",
        )  # fmt: skip
        exporter, exporter_url = c.start_exporter(
            tmp, url, "--slurm.sacct", "--slurm.job-grace-period=0", "--timerange=5s",
            "--timeout=30", f"--getent.path={GETENT_SSSD}", "--log.level=debug",
        )  # fmt: skip
        started.append(exporter)
        yield {
            "url": exporter_url,
            "exporter": exporter,
            "expected": expected_of(owners, rates),
            "future": future,
            "ids": all_ids,
        }
    finally:
        for proc in reversed(started):
            proc.stop()


def scrape(url: str) -> Scrape:
    return Scrape(c.http_get(url + "/metrics", timeout=60).decode())


def differences(s: Scrape, expected: Dict[str, dict]) -> List[str]:
    problems = []
    for family, want in expected.items():
        got = s.series(family)
        for labels, value in want.items():
            have = got.get(labels)
            if have is None or abs(have - value) > 0.02 * value:
                problems.append(f"{family}{dict(labels)} = {have}, want {value}")
    return problems


def test_sacct_names_every_kind_of_ended_job(ended: dict) -> None:
    """A plain job, a user's second account, each array element, a het job (under its
    leader's id): read, write and metadata to the right owner within 2 %."""
    last: List[Scrape] = []

    def matches() -> bool:
        last[:] = [scrape(ended["url"])]
        return not differences(last[0], ended["expected"])

    try:
        c.wait_until(matches, 60, "the ended jobs' owners", interval=2.0)
    except AssertionError:
        raise AssertionError("\n".join(differences(last[0], ended["expected"]))) from None
    s = last[0]
    assert s.value("cluster_exporter_scrape_ok") == 1
    unknown = s.value("cluster_unattributed_read_throughput_bytes", reason="unknown_job")
    # The id Slurm never had and the thousands of unknown ids (and the future job's IO).
    assert unknown is not None and unknown >= 7777 + UNKNOWN_IDS * 0.98
    stages = {dict(k)["name"] for k in s.series("cluster_exporter_stage_execution_seconds")}
    assert "retrieve_finished_jobs" in stages
    log = ended["exporter"].log()
    assert "sacct: skipping unexpected line" not in log, log[-3000:]
    assert not re.search(r"skipped malformed entries.*sacct", log), log[-3000:]
    assert "source sacct failed" not in log, log[-3000:]


def test_a_job_that_reaches_accounting_later_is_named_then(ended: dict) -> None:
    """IO under an id before the job exists stays unknown_job; once the job ran, ended and
    is in accounting, the next scrape names its owner (nothing cached as unknown)."""
    before = scrape(ended["url"])
    physics = {"account": "physics", "user": "alice"}
    assert before.value("cluster_job_read_throughput_bytes", **physics) is None
    jobid = SlurmJobs().submit("future", "alice", "physics")
    assert jobid == ended["future"], "another job took the id the simulator serves"
    c.slurm("scancel", jobid)
    c.wait_until(lambda: ended_in_accounting([jobid]), 60, "accounting to have the job")
    c.wait_until(lambda: jobid not in c.slurm("squeue", "-h", "-o", "%A").split(), 60, "squeue")

    def named() -> bool:
        value = scrape(ended["url"]).value("cluster_job_read_throughput_bytes", **physics)
        return value is not None and abs(value - 2 * MIB) <= 0.02 * 2 * MIB

    c.wait_until(named, 30, "the job's owner from sacct", interval=1.0)


def test_with_private_data_a_plain_user_needs_an_admin_level(ended: dict) -> None:
    """slurmdbd.conf has PrivateData=jobs (as many sites): another user's ended job is
    invisible to a plain user, sacct printing nothing and exiting 0 (what the README
    warns of); an operator sees it."""
    jobid = ended["ids"][0]  # bob's

    def as_dave() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", "dave", "--", "env", f"SLURM_CONF={os.environ['SLURM_CONF']}",
             "sacct", "-X", "-n", "-P", "-a", "-j", jobid, "-o", "JobIDRaw,Account,User"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip

    hidden = as_dave()
    assert (hidden.returncode, hidden.stdout) == (0, ""), hidden
    c.slurm("sacctmgr", "-i", "modify", "user", "dave", "set", "AdminLevel=Operator")
    try:
        shown = as_dave()
    finally:
        c.slurm("sacctmgr", "-i", "modify", "user", "dave", "set", "AdminLevel=None")
    assert shown.stdout == f"{jobid}|chemistry|bob\n", shown
