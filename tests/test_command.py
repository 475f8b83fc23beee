"""run_command: deadlines kill the whole process group; failures become SourceError."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.sources.command import run_command
from tests.helpers import pid_alive


def test_output_is_returned_and_locale_is_c() -> None:
    out = run_command(
        [sys.executable, "-c", "import os; print(os.environ['LC_ALL'])"],
        time.monotonic() + 10,
        name="t",
    )
    assert out == b"C\n"


def test_no_standard_input() -> None:
    out = run_command(
        [sys.executable, "-c", "import sys; print(repr(sys.stdin.read()))"],
        time.monotonic() + 10,
        name="t",
    )
    assert out == b"''\n"


def test_arguments_are_not_interpreted_by_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    out = run_command(["echo", f"$(touch {marker}); ;|&"], time.monotonic() + 10, name="t")
    assert out == f"$(touch {marker}); ;|&\n".encode()
    assert not marker.exists()


def test_hung_child_and_grandchild_are_killed_at_the_deadline(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "time.sleep(300)\n"
    )
    start = time.monotonic()
    with pytest.raises(SourceError) as info:
        run_command([sys.executable, "-c", script], start + 1.0, name="squeue")
    elapsed = time.monotonic() - start
    assert "did not finish" in str(info.value) and str(info.value).startswith("squeue: ")
    assert elapsed < 5.0
    for pid in map(int, pids.read_text().split()):
        deadline = time.monotonic() + 5
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(pid), f"pid {pid} survived the deadline"


def test_child_is_reaped_after_kill(tmp_path: Path) -> None:
    with pytest.raises(SourceError):
        run_command(["sleep", "30"], time.monotonic() + 0.3, name="t")
    # No zombie children of ours remain.
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    for child in children:
        stat = Path(f"/proc/{child}/stat").read_text()
        assert ") Z " not in stat


def test_non_zero_exit_names_status_and_stderr() -> None:
    with pytest.raises(SourceError) as info:
        run_command(
            [
                sys.executable,
                "-c",
                "import sys; sys.stderr.write('slurm_load_jobs error: "
                "Unable to contact slurm controller\\n'); sys.exit(1)",
            ],
            time.monotonic() + 10,
            name="squeue",
        )
    message = str(info.value)
    assert "exited with status 1" in message
    assert "Unable to contact slurm controller" in message


def test_missing_command() -> None:
    with pytest.raises(SourceError) as info:
        run_command(["/nonexistent/squeue"], time.monotonic() + 10, name="squeue")
    assert str(info.value) == "squeue: command not found: /nonexistent/squeue"


def test_deadline_already_passed() -> None:
    with pytest.raises(SourceError, match="no time left"):
        run_command(["true"], time.monotonic() - 1, name="t")
