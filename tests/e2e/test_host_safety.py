"""The test suite cannot hurt a Slurm host: a plain pytest starts nothing, and the test
cluster script refuses to run beside a Slurm it did not start."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Set

import pytest

from tests.e2e import components as c

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
DAEMONS = ("slurmctld", "slurmd", "slurmstepd", "munged", "prometheus", "victoria-metrics")


def running(names: tuple[str, ...] = DAEMONS) -> Set[int]:
    """PIDs of processes with one of these command names (read from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if comm in names:
                found.add(int(entry.name))
    return found


def tree_digest(path: Path) -> Dict[str, str]:
    if not path.exists():
        return {}
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def test_a_plain_pytest_starts_nothing_and_writes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "slurm-state"
    before = running()
    etc = {d: tree_digest(Path(d)) for d in ("/etc/slurm", "/etc/munge")}
    users = Path("/etc/passwd").read_text()
    env = {k: v for k, v in os.environ.items() if k != c.E2E_SWITCH}
    env["E2E_SLURM_STATE"] = str(state)  # where a started cluster would put its state
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "tests/e2e"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" not in result.stdout and "skipped" in result.stdout, result.stdout[-2000:]
    assert f"run only with {c.E2E_SWITCH}=1" in result.stdout
    assert running() - before == set(), "a daemon was started"
    assert {d: tree_digest(Path(d)) for d in etc} == etc
    assert Path("/etc/passwd").read_text() == users
    assert not state.exists()


def test_the_cluster_script_refuses_to_run_beside_a_foreign_slurmd(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        c.unavailable("the cluster script needs root")
    fake = tmp_path / "slurmd"  # a process named slurmd that the script did not start
    shutil.copy("/bin/sleep", fake)
    proc = subprocess.Popen([str(fake), "120"])
    try:
        state = tmp_path / "state"
        users = Path("/etc/passwd").read_text()
        result = subprocess.run(
            ["bash", str(c.CLUSTER_SCRIPT), "start"],
            env={**os.environ, "E2E_SLURM_STATE": str(state)},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 3, result.stderr
        assert "refusing to start: running, not started by this script:" in result.stderr
        assert f"slurmd (PID {proc.pid})" in result.stderr
        assert proc.poll() is None  # left alone
        assert Path("/etc/passwd").read_text() == users
        assert not (state / "slurm.conf").exists()
    finally:
        proc.kill()
        proc.wait()


def test_the_cluster_script_refuses_a_slurm_conf_it_did_not_write(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        c.unavailable("the cluster script needs root")
    state = tmp_path / "state"
    state.mkdir()
    conf = state / "slurm.conf"
    conf.write_text("ClusterName=production\n")
    result = subprocess.run(
        ["bash", str(c.CLUSTER_SCRIPT), "start"],
        env={**os.environ, "E2E_SLURM_STATE": str(state), "E2E_SLURM_TAKE_OVER": "1"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "was not written by this script" in result.stderr
    assert conf.read_text() == "ClusterName=production\n"
