"""Run an external command with a hard deadline.

The command runs with an argument list (never a shell), ``LC_ALL=C`` and no standard
input, in a process group of its own. If it outlives the deadline the whole group is
killed with SIGKILL and reaped, so a hung ``squeue`` (slurmctld unreachable) or
``getent`` (LDAP server gone) can never block later scrapes.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from typing import Mapping, Optional, Sequence

from prometheus_cluster_exporter.errors import SourceError

log = logging.getLogger(__name__)

# After SIGKILL, how long to wait for the pipes to drain before giving up on them.
_REAP_SECONDS = 2.0


def command_env(extra: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    env.pop("LANGUAGE", None)
    if extra:
        env.update(extra)
    return env


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:  # pragma: no cover - the group changed owner; kill what we can
        proc.kill()


def run_command(
    argv: Sequence[str], deadline: float, *, name: str, ok_status: Sequence[int] = (0,)
) -> bytes:
    """Run ``argv`` and return its standard output.

    Raises SourceError when the command is missing, fails to start, exits with a status
    not in ``ok_status`` or is still running at ``deadline`` (a ``time.monotonic()``
    value).
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise SourceError(f"{name}: no time left before the scrape deadline")
    log.log(5, "running %s", list(argv))
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=command_env(),
            start_new_session=True,
            close_fds=True,
        )
    except FileNotFoundError as exc:
        raise SourceError(f"{name}: command not found: {argv[0]}") from exc
    except OSError as exc:
        raise SourceError(f"{name}: cannot run {argv[0]}: {exc.strerror or exc}") from exc

    try:
        out, err = proc.communicate(timeout=remaining)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        try:
            proc.communicate(timeout=_REAP_SECONDS)
        except subprocess.TimeoutExpired:
            # A grandchild left the group and still holds our pipes: stop reading.
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            proc.wait()
        raise SourceError(
            f"{name}: {argv[0]} did not finish within {remaining:.1f}s; killed its process group"
        ) from None
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise

    if proc.returncode not in ok_status:
        detail = err.decode("utf-8", "replace").strip().splitlines()
        reason = detail[0][:200] if detail else "no error output"
        if proc.returncode < 0:
            status = f"was killed by signal {-proc.returncode}"
        else:
            status = f"exited with status {proc.returncode}"
        raise SourceError(f"{name}: {argv[0]} {status}: {reason}")
    return out
