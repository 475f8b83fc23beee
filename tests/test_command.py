"""run_command: deadlines kill the whole process group; failures become SourceError."""

from __future__ import annotations

import os
import signal
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Iterator, List

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


def _wait_gone(pids: List[int], timeout: float = 10.0) -> List[int]:
    """The pids still alive after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while any(map(pid_alive, pids)) and time.monotonic() < end:
        time.sleep(0.05)
    return [p for p in pids if pid_alive(p)]


@pytest.fixture
def pid_file(tmp_path: Path) -> Iterator[Path]:
    """A file where test children note their pids; any still alive are killed after."""
    path = tmp_path / "pids"
    yield path
    if path.exists():
        for pid in map(int, path.read_text().split()):
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def _endless(pid_file: Path, stream: str = "stdout", grandchild: bool = True) -> List[str]:
    """A child (with a sleeping grandchild) that writes to ``stream`` until killed."""
    script = (
        "import os, subprocess, sys\n"
        + ("g = subprocess.Popen(['sleep', '300']).pid\n" if grandchild else "g = ''\n")
        + f"open({str(pid_file)!r}, 'w').write(f'{{os.getpid()}} {{g}}')\n"
        f"out = sys.{stream}.buffer\n"
        "block = b'x' * 65536\n"
        "while True:\n"
        "    out.write(block)\n"
    )
    return [sys.executable, "-c", script]


def test_output_over_the_cap_kills_the_group_and_fails(pid_file: Path) -> None:
    limit = 1024 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(SourceError) as info:
            run_command(_endless(pid_file), time.monotonic() + 120, name="squeue", max_output=limit)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value) == f"squeue: output exceeds --max-command-output-bytes={limit}; killed"
    assert peak < limit + 4 * 1024 * 1024
    assert _wait_gone(list(map(int, pid_file.read_text().split()))) == []


def test_output_up_to_the_cap_is_returned() -> None:
    script = "import sys; sys.stdout.buffer.write(b'y' * 300000)"
    argv = [sys.executable, "-c", script]
    assert run_command(argv, time.monotonic() + 60, name="t", max_output=300000) == b"y" * 300000
    assert len(run_command(argv, time.monotonic() + 60, name="t", max_output=0)) == 300000
    with pytest.raises(SourceError, match="output exceeds --max-command-output-bytes=299999"):
        run_command(argv, time.monotonic() + 60, name="t", max_output=299999)


def test_standard_error_is_capped_and_its_first_line_kept() -> None:
    script = (
        "import sys\n"
        "sys.stderr.write('slurm_load_jobs error: Socket timed out\\n')\n"
        "sys.stderr.write('z' * (32 * 1024 * 1024))\n"
        "sys.exit(1)\n"
    )
    tracemalloc.start()
    try:
        with pytest.raises(SourceError) as info:
            run_command([sys.executable, "-c", script], time.monotonic() + 60, name="squeue")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value).endswith("exited with status 1: slurm_load_jobs error: Socket timed out")
    assert peak < 8 * 1024 * 1024


def test_endless_standard_error_is_stopped_at_the_deadline(pid_file: Path) -> None:
    start = time.monotonic()
    with pytest.raises(SourceError, match="did not finish"):
        run_command(_endless(pid_file, "stderr"), start + 1.0, name="t")
    assert time.monotonic() - start < 30
    assert _wait_gone(list(map(int, pid_file.read_text().split()))) == []


@pytest.mark.parametrize(
    "behaviour",
    [
        # Output every 0.1 s: the deadline bounds the whole call, not each read.
        "while True:\n    sys.stdout.write('1 a u\\n'); sys.stdout.flush(); time.sleep(0.1)\n",
        # Output closed, process running on: end of output is not the end of the child.
        "os.close(1); os.close(2)\ntime.sleep(300)\n",
    ],
    ids=["trickling-output", "closed-output-running-on"],
)
def test_a_child_still_running_at_the_deadline_is_killed(pid_file: Path, behaviour: str) -> None:
    script = (
        f"import os, sys, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n{behaviour}"
    )
    start = time.monotonic()
    with pytest.raises(SourceError, match="did not finish"):
        run_command([sys.executable, "-c", script], start + 1.5, name="t")
    assert time.monotonic() - start < 30
    assert _wait_gone([int(pid_file.read_text())]) == []


def test_grandchild_outside_the_group_holding_the_pipes_does_not_hang_us(
    pid_file: Path,
) -> None:
    # The child prints, starts a grandchild in a session of its own (out of reach of the
    # process-group kill) that inherits the pipes, and exits at once.
    script = (
        "import subprocess\n"
        "g = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(g.pid))\n"
        "print('1 a u', flush=True)\n"
    )
    start = time.monotonic()
    with pytest.raises(SourceError) as info:
        run_command([sys.executable, "-c", script], start + 1.5, name="t")
    assert time.monotonic() - start < 30
    assert "did not finish" in str(info.value)
    assert "kept its output open" in str(info.value)
