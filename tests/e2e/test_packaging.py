"""Packaging for air-gapped hosts: the wheel installs into a clean virtual environment,
and the single-file build runs on the system Python with no virtual environment."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prometheus_cluster_exporter import __version__
from tests.e2e import components as c
from tests.helpers import Scrape

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")


def run(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)


def test_wheel_installs_into_a_clean_venv(tmp_path: Path) -> None:
    built = run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)
    )
    assert built.returncode == 0, built.stderr[-3000:]
    wheels = list(tmp_path.glob("prometheus_cluster_exporter-*.whl"))
    assert len(wheels) == 1
    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", str(venv)).returncode == 0
    installed = run(str(venv / "bin" / "pip"), "install", "-q", str(wheels[0]))
    assert installed.returncode == 0, installed.stderr[-3000:]
    command = venv / "bin" / "prometheus-cluster-exporter"
    version = run(str(command), "--version")
    assert version.stdout.strip() == f"prometheus-cluster-exporter {__version__}"
    once = run(str(command), "--demo", "--once")
    assert once.returncode == 0, once.stderr[-2000:]
    assert Scrape(once.stdout).value("cluster_exporter_scrape_ok") == 1
    # The deployment files travel with the source, the systemd unit points at the command.
    unit = (ROOT / "deploy" / "systemd" / "prometheus-cluster-exporter.service").read_text()
    assert "ExecStart=/usr/bin/prometheus-cluster-exporter $OPTIONS" in unit


def test_single_file_build_runs_on_the_system_python(tmp_path: Path) -> None:
    if not SYSTEM_PYTHON.exists():
        c.unavailable("no system Python at /usr/bin/python3")
    pyz = tmp_path / "prometheus-cluster-exporter.pyz"
    built = run(sys.executable, str(ROOT / "tools" / "build_pyz.py"), f"--output={pyz}")
    assert built.returncode == 0, built.stderr
    # -I: no user site, no environment: only what the file carries and the stdlib.
    version = run(str(SYSTEM_PYTHON), "-I", str(pyz), "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"prometheus-cluster-exporter {__version__}"
    once = run(str(SYSTEM_PYTHON), "-I", str(pyz), "--demo", "--once")
    assert once.returncode == 0, once.stderr[-2000:]
    s = Scrape(once.stdout)
    assert s.value("cluster_exporter_scrape_ok") == 1
    assert s.series("cluster_job_read_throughput_bytes")
    # It also runs directly, by its #! line.
    direct = run(str(pyz), "--version")
    assert direct.returncode == 0 and __version__ in direct.stdout
    assert shutil.which("python3") is not None
