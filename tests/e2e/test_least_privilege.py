"""Least privilege: the exporter needs no root. The single-file build runs on the
system Python as the unprivileged user of the systemd unit, with no new privileges and
no capabilities (as the unit's NoNewPrivileges= and CapabilityBoundingSet= give it),
against the real Slurm, getent and query backend, and reports the ground truth."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e import components as c
from tests.e2e.conftest import GETENT_SSSD
from tests.e2e.test_ground_truth import matching_scrape

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "prometheus-cluster-exporter.service"


@pytest.fixture(scope="module")
def world_readable_build() -> Iterator[Path]:
    """The single-file build and the getent wrapper, where an unprivileged user can read."""
    directory = Path(tempfile.mkdtemp(prefix="pce-build-"))
    try:
        directory.chmod(0o755)
        subprocess.run(
            [sys.executable, str(ROOT / "tools" / "build_pyz.py"),
             f"--output={directory / 'prometheus-cluster-exporter.pyz'}"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        shutil.copy(GETENT_SSSD, directory / "getent-sssd")
        (directory / "getent-sssd").chmod(0o755)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def service_user() -> str:
    unit_user = re.search(r"^User=(\S+)", UNIT.read_text(), re.M)
    assert unit_user is not None
    for name in (unit_user.group(1), "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise AssertionError("no unprivileged user")


def status_field(pid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(name)


def test_runs_unprivileged_on_the_system_python(
    backend: str, simulation: dict, world_readable_build: Path, tmp_path: Path
) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        c.unavailable("needs root and setpriv to drop privileges")
    system_python = Path("/usr/bin/python3")
    if not system_python.exists():
        c.unavailable("no system Python at /usr/bin/python3")
    user = service_user()
    proc = c.Process(
        ["setpriv", f"--reuid={user}", f"--regid={pwd.getpwnam(user).pw_gid}", "--init-groups",
         "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all",
         str(system_python), "-I", str(world_readable_build / "prometheus-cluster-exporter.pyz"),
         f"--promserver={backend}", "--timerange=5s", "--timeout=10",
         f"--getent.path={world_readable_build / 'getent-sssd'}",
         "--web.listen-address=127.0.0.1:0"],
        tmp_path / "unprivileged.log",
    )  # fmt: skip
    try:
        url = proc.wait_for_log(r"Listening on (http://127\.0\.0\.1:\d+)").group(1)
        uid = pwd.getpwnam(user).pw_uid
        assert status_field(proc.pid, "Uid").split() == [str(uid)] * 4
        assert status_field(proc.pid, "NoNewPrivs") == "1"
        assert int(status_field(proc.pid, "CapEff"), 16) == 0
        assert int(status_field(proc.pid, "CapBnd"), 16) == 0
        matching_scrape(url, simulation["expected"])
    finally:
        proc.stop()


def test_systemd_unit_is_valid(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        c.unavailable("systemd-analyze is not installed")
    text = UNIT.read_text()
    for setting in (
        "User=prometheus",
        "Restart=always",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
    ):
        assert setting in text, setting  # fmt: skip
    # Verify a copy whose ExecStart points at an existing file (verify checks it).
    unit = tmp_path / "prometheus-cluster-exporter.service"
    unit.write_text(text.replace("/usr/bin/prometheus-cluster-exporter", sys.executable))
    ok = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                        text=True, timeout=60, check=False)  # fmt: skip
    assert ok.returncode == 0 and ok.stderr.strip() == "", ok.stderr  # not even a warning
    # And the check can fail: a bad value is reported.
    broken = tmp_path / "broken.service"
    broken.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSystem=sometimes"))
    bad = subprocess.run(["systemd-analyze", "verify", str(broken)], capture_output=True,
                         text=True, timeout=60, check=False)  # fmt: skip
    assert "protect system value" in bad.stderr
