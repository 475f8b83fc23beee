"""Ground truth: real Slurm, real getent, real Prometheus/VictoriaMetrics, simulated Lustre.

The simulated Lustre exporters' counters grow at known rates for the ids of real jobs;
every value this exporter reports must equal the known rate (within 2 %), nothing else
may appear, and job + process + unattributed must add up to the upstream total (per
operation with --metrics.metadata-by-operation).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest

from tests.e2e import components as c
from tests.e2e.conftest import StartExporter, expected_series
from tests.helpers import Scrape

pytestmark = pytest.mark.e2e

KINDS = ("job", "proc", "unattributed")
FAMILIES = tuple(
    f"cluster_{kind}_{what}"
    for kind in KINDS
    for what in ("read_throughput_bytes", "write_throughput_bytes", "metadata_operations")
)
OPERATIONS = tuple(
    f"cluster_{kind}_{what}_operations" for kind in KINDS for what in ("read", "write")
)
Labels = Tuple[Tuple[str, str], ...]
Expected = Dict[str, Dict[Labels, float]]


def scrape(url: str) -> Scrape:
    return Scrape(c.http_get(url + "/metrics", timeout=30).decode())


def differences(
    actual: Scrape, expected: Expected, families: Tuple[str, ...] = FAMILIES
) -> List[str]:
    problems = []
    for family in families:
        got = actual.series(family)
        want = expected.get(family, {})
        for labels in sorted(set(got) | set(want)):
            if labels not in want:
                problems.append(f"unexpected {family}{dict(labels)} = {got[labels]}")
            elif labels not in got:
                problems.append(f"missing {family}{dict(labels)} (want {want[labels]})")
            elif abs(got[labels] - want[labels]) > 0.02 * want[labels]:
                problems.append(f"{family}{dict(labels)} = {got[labels]}, want {want[labels]}")
    return problems


def matching_scrape(
    url: str, expected: Expected, scrape_ok: float = 1, families: Tuple[str, ...] = FAMILIES
) -> Scrape:
    last: List[Scrape] = []

    def attempt() -> bool:
        s = scrape(url)
        last[:] = [s]
        ok = s.value("cluster_exporter_scrape_ok") == scrape_ok
        return ok and not differences(s, expected, families)

    try:
        c.wait_until(attempt, 30, "the exporter to report the ground truth", interval=1.0)
    except AssertionError:
        problems = differences(last[0], expected, families) if last else ["no scrape"]
        ok = last[0].value("cluster_exporter_scrape_ok") if last else None
        raise AssertionError(
            f"exporter disagrees with ground truth (scrape_ok={ok}):\n" + "\n".join(problems)
        ) from None
    return last[0]


def assert_conservation(s: Scrape, spec: dict) -> None:
    """job + proc + unattributed == everything the simulators produce (read and write)."""
    for what in ("read", "write"):
        exported = math.fsum(
            v
            for kind in KINDS
            for v in s.series(f"cluster_{kind}_{what}_throughput_bytes").values()
        )
        produced = math.fsum(job.get(what, 0) for job in spec["jobs"])
        assert math.isclose(exported, produced, rel_tol=0.02), (what, exported, produced)


def test_every_value_matches_ground_truth(exporter: str, simulation: dict) -> None:
    s = matching_scrape(exporter, simulation["expected"])
    assert not [f for f in OPERATIONS if s.has(f)], "operations only with the flag"
    assert_conservation(s, simulation["spec"])
    # Spot checks that the fixture really covers what it claims to.
    assert s.value("cluster_job_read_throughput_bytes", account="chemistry", user="alice")
    assert s.value("cluster_job_read_throughput_bytes", account="physics", user="alice")
    assert s.value(
        "cluster_job_read_throughput_bytes", account="biology", user="carol"
    ) == pytest.approx(1000, rel=0.02)
    assert s.value(
        "cluster_proc_read_throughput_bytes",
        proc_name="vim",
        group_name="hpc-geo",
        user_name="dave",
    ) == pytest.approx(2222, rel=0.02), "a uid outside the enumeration must resolve by key"
    assert s.value("cluster_unattributed_read_throughput_bytes", reason="unknown_uid")
    assert "OST" not in json.dumps(list(s.series("cluster_job_metadata_operations")))


def test_squeue_json_gives_the_same_answer(start_exporter: StartExporter, simulation: dict) -> None:
    url = start_exporter("--slurm.squeue-json")
    s = matching_scrape(url, simulation["expected"])
    assert_conservation(s, simulation["spec"])


def test_fs_label(start_exporter: StartExporter, simulation: dict) -> None:
    url = start_exporter("--metrics.fs-label")
    s = matching_scrape(url, simulation["expected_fs"])
    assert s.value("cluster_job_read_throughput_bytes", account="chemistry", user="bob",
                   fs="home") == pytest.approx(2 * 1024 * 1024, rel=0.02)  # fmt: skip


def test_operations_are_attributed_like_bytes(
    start_exporter: StartExporter, simulation: dict
) -> None:
    """--metrics.operations: read and write calls per second of every owner and reason
    equal the known rates, from all three schemas, and add up like the bytes."""
    url = start_exporter("--metrics.operations")
    s = matching_scrape(url, simulation["expected_ops"], families=FAMILIES + OPERATIONS)
    for what in ("read", "write"):
        exported = math.fsum(
            v for kind in KINDS for v in s.series(f"cluster_{kind}_{what}_operations").values()
        )
        produced = math.fsum(job.get(f"{what}_ops", 0) for job in simulation["spec"]["jobs"])
        assert math.isclose(exported, produced, rel_tol=0.02), (what, exported, produced)
    # Average write size of alice's physics job: 1 MiB/s in 1,024 calls/s.
    size = s.value("cluster_job_write_throughput_bytes", account="physics", user="alice") / (
        s.value("cluster_job_write_operations", account="physics", user="alice") or 1
    )
    assert size == pytest.approx(1024, rel=0.02)
    names = {dict(k)["name"] for k in s.series("cluster_exporter_stage_execution_seconds")}
    assert {"build_read_operations_metrics", "build_write_operations_metrics"} <= names


METADATA = tuple(f"cluster_{kind}_metadata_operations" for kind in KINDS)


def without(series_of: Callable[[str], Dict[Labels, float]], label: str) -> Expected:
    """The metadata families' series with ``label`` summed away."""
    out: Expected = {}
    for family in METADATA:
        sums = out.setdefault(family, {})
        for labels, value in series_of(family).items():
            kept = tuple(pair for pair in labels if pair[0] != label)
            sums[kept] = sums.get(kept, 0.0) + value
    return out


@pytest.mark.parametrize("fs_label", [False, True], ids=["plain", "fs"])
def test_metadata_by_operation(
    start_exporter: StartExporter, simulation: dict, fs_label: bool
) -> None:
    """--metrics.metadata-by-operation: every owner's metadata operations per MDT and
    operation equal the known rates, from all three schemas; per operation they add up
    to what the simulators produce, and over the operations to the default's values
    (each operation is rounded: within 0.5 per operation)."""
    spec, jobs = simulation["spec"], simulation["jobs"]
    url = start_exporter("--metrics.metadata-by-operation",
                         *(("--metrics.fs-label",) if fs_label else ()))  # fmt: skip
    s = matching_scrape(url, expected_series(spec, jobs, fs_label, by_operation=True))
    on_fs = {"fs": "scratch"} if fs_label else {}
    alice = {"account": "physics", "user": "alice", "target": "scratch-MDT0001", **on_fs}
    assert s.value(METADATA[0], **alice, operation="getattr") == pytest.approx(5, rel=0.02)
    mdts = {fs: layout["mdts"] for fs, layout in spec["filesystems"].items()}
    produced: Dict[str, float] = {}
    for job in spec["jobs"]:
        for operation, rate in job.get("mdt_ops", {}).items():
            if rate / mdts[job.get("fs", "scratch")] >= 1:
                produced[operation] = produced.get(operation, 0.0) + rate
    exported: Dict[str, float] = {}
    for family in METADATA:
        for labels, value in s.series(family).items():
            operation = dict(labels)["operation"]
            exported[operation] = exported.get(operation, 0.0) + value
    assert exported.keys() == produced.keys()
    for operation, rate in produced.items():
        assert math.isclose(exported[operation], rate, rel_tol=0.02), (operation, exported)
    # Over the operations, the series of the default (whose expectation rounds the sum).
    plain = expected_series(spec, jobs, fs_label)
    summed, wanted = without(s.series, "operation"), without(lambda f: plain.get(f, {}), "")
    most = max(len(job.get("mdt_ops", {})) for job in spec["jobs"])
    for family in METADATA:
        assert summed[family].keys() == wanted[family].keys(), family
        for labels, value in wanted[family].items():
            assert abs(summed[family][labels] - value) <= 0.5 * most + 0.02 * value, labels


def test_sacct_without_accounting_fails_cleanly(
    start_exporter: StartExporter, simulation: dict, tmp_path: Path
) -> None:
    """The test cluster has no slurmdbd: sacct says so, the rest stays right."""
    url = start_exporter("--slurm.sacct")
    matching_scrape(url, simulation["expected"], scrape_ok=0)


def test_exposition_passes_promtool(exporter: str) -> None:
    if shutil.which("promtool") is None:
        c.unavailable("promtool is not installed (Debian package prometheus)")
    text = c.http_get(exporter + "/metrics", timeout=30)
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def with_job(expected: Expected, account: str, user: str, value: float) -> Expected:
    read = dict(expected.get("cluster_job_read_throughput_bytes", {}))
    read[(("account", account), ("user", user))] = value
    return {**expected, "cluster_job_read_throughput_bytes": read}


def test_job_that_ends_stays_attributed_while_its_io_is_in_the_window(
    exporter: str, simulation: dict
) -> None:
    """A job is cancelled while its IO still shows in the rate window; once squeue no
    longer lists it, the exporter still gives that IO to the job's account and user. When
    its IO stops, it disappears; the exporter stays healthy throughout."""
    jobs = simulation["jobs"]
    spec_path: Path = simulation["spec_paths"]["hp"]
    original = json.loads(spec_path.read_text())
    victim = jobs.submit("victim", "carol", "geology")

    def set_victim(**rates: float) -> None:
        spec = {**original, "jobs": [*original["jobs"], {"jobid": victim, **rates}]}
        spec_path.write_text(json.dumps(spec))

    try:
        set_victim(read=5000)
        expected = with_job(simulation["expected"], "geology", "carol", 5000.0)
        matching_scrape(exporter, expected)

        c.slurm("scancel", victim)
        c.wait_until(
            lambda: victim not in c.slurm("squeue", "-a", "-h", "-o", "%A").split(),
            60,
            "squeue to stop listing the cancelled job",
        )
        # Tail IO: still flowing after the job left squeue; still attributed.
        s = matching_scrape(exporter, expected)
        assert s.value("cluster_job_read_throughput_bytes", account="geology", user="carol")

        set_victim()  # IO stops; its counters stay, as Lustre keeps job stats a while
        s = matching_scrape(exporter, simulation["expected"])
        assert s.value("cluster_job_read_throughput_bytes", account="geology", user="carol") is None
    finally:
        spec_path.write_text(json.dumps(original))
        jobs.owners.pop(victim, None)
