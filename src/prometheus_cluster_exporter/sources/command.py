"""Run an external command with one hard deadline and a cap on its output.

The command runs with an argument list (never a shell), ``LC_ALL=C`` and no standard
input, in a process group of its own. Both of its pipes are read together until the
deadline, which bounds the whole call rather than each read. If the command is still
running then, or prints more than ``max_output`` bytes, the whole group is killed with
SIGKILL and reaped, so a hung ``squeue`` (slurmctld unreachable), a ``getent`` stuck in
LDAP or a runaway wrapper can neither block later scrapes nor fill the memory.

Long lists of ids are passed in several calls (``batches``): the kernel limits one
argument to 128 KiB and the whole argument list to a quarter of the stack limit.
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from typing import IO, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, cast

from prometheus_cluster_exporter.errors import SourceError

log = logging.getLogger(__name__)

#: Default of ``--max-command-output-bytes``.
DEFAULT_MAX_OUTPUT = 256 * 1024 * 1024
# Standard error only ever gives the first line of an error message.
MAX_STDERR = 64 * 1024
_READ_SIZE = 256 * 1024
# After SIGKILL, how long to wait for the child to be reaped before leaving it.
_REAP_SECONDS = 2.0

_CAP = "cap"
_LATE = "late"


def command_env(extra: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    env.pop("LANGUAGE", None)
    if extra:
        env.update(extra)
    return env


def batches(items: Sequence[str], max_count: int, max_bytes: int) -> Iterator[List[str]]:
    """``items`` in order, in runs of at most ``max_count`` whose lengths plus one byte
    each (a separator or the terminating NUL) add up to at most ``max_bytes``."""
    run: List[str] = []
    size = 0
    for item in items:
        cost = len(item.encode()) + 1
        if run and (len(run) >= max_count or size + cost > max_bytes):
            yield run
            run, size = [], 0
        run.append(item)
        size += cost
    if run:
        yield run


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:  # pragma: no cover - the group changed owner; kill what we can
        proc.kill()


class _Running:
    """The commands still running, so that shutting down can stop their process groups."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: Set[subprocess.Popen[bytes]] = set()

    @contextmanager
    def tracked(self, proc: subprocess.Popen[bytes]) -> Iterator[None]:
        with self._lock:
            self._procs.add(proc)
        try:
            yield
        finally:
            with self._lock:
                self._procs.discard(proc)

    def kill_all(self) -> int:
        with self._lock:
            running = [proc for proc in self._procs if proc.returncode is None]
        for proc in running:
            _kill_group(proc)
        return len(running)


_RUNNING = _Running()


def kill_running() -> int:
    """Kill the process group of every command still running (on shutdown: a hung
    ``squeue`` must not outlive the exporter); how many there were."""
    return _RUNNING.kill_all()


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Wait briefly for a killed child. One stuck in the kernel is not waited for: the
    subprocess module reaps it when a later command starts."""
    try:
        proc.wait(timeout=_REAP_SECONDS)
    except subprocess.TimeoutExpired:
        log.warning("pid %d did not exit %.0fs after SIGKILL; not waiting", proc.pid, _REAP_SECONDS)


def _read_pipes(
    out_pipe: IO[bytes], err_pipe: IO[bytes], deadline: float, max_output: int
) -> Tuple[List[bytes], bytes, Optional[str]]:
    """Read both pipes until they are closed: (stdout chunks, start of stderr, None), or
    a reason to stop early: ``_CAP`` (stdout too long) or ``_LATE`` (the deadline)."""
    chunks: List[bytes] = []
    size = 0
    err = bytearray()
    out_fd = out_pipe.fileno()
    with selectors.DefaultSelector() as selector:
        for pipe in (out_pipe, err_pipe):
            os.set_blocking(pipe.fileno(), False)
            selector.register(pipe.fileno(), selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return chunks, bytes(err), _LATE
            for key, _ in selector.select(remaining):
                try:
                    chunk = os.read(key.fd, _READ_SIZE)
                except BlockingIOError:
                    continue
                if not chunk:
                    selector.unregister(key.fd)
                elif key.fd == out_fd:
                    size += len(chunk)
                    if max_output and size > max_output:
                        return [], bytes(err), _CAP
                    chunks.append(chunk)
                elif len(err) < MAX_STDERR:
                    err += chunk[: MAX_STDERR - len(err)]
    return chunks, bytes(err), None


def run_command(
    argv: Sequence[str],
    deadline: float,
    *,
    name: str,
    ok_status: Sequence[int] = (0,),
    max_output: int = DEFAULT_MAX_OUTPUT,
) -> bytes:
    """Run ``argv`` and return its standard output.

    Raises SourceError when the command is missing, fails to start, exits with a status
    not in ``ok_status``, prints more than ``max_output`` bytes (0: no limit) or has not
    finished, pipes closed and process exited, by ``deadline`` (a ``time.monotonic()``
    value).
    """
    budget = deadline - time.monotonic()
    if budget <= 0:
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

    with _RUNNING.tracked(proc):
        return _finish(proc, argv, name, ok_status, max_output, deadline, budget)


def _finish(
    proc: subprocess.Popen[bytes],
    argv: Sequence[str],
    name: str,
    ok_status: Sequence[int],
    max_output: int,
    deadline: float,
    budget: float,
) -> bytes:
    """Read a started command's output to its end; its standard output or SourceError."""
    out_pipe, err_pipe = cast(IO[bytes], proc.stdout), cast(IO[bytes], proc.stderr)
    try:
        chunks, err, stop = _read_pipes(out_pipe, err_pipe, deadline, max_output)
        if stop is None:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                stop = _LATE
    except BaseException:
        _kill_group(proc)
        _reap(proc)
        raise
    finally:
        # Whatever still holds the other ends (a grandchild that left the group) gets
        # EPIPE from now on; we never wait for it.
        out_pipe.close()
        err_pipe.close()

    if stop is not None:
        chunks = []  # not kept alive by the traceback
        _kill_group(proc)
        _reap(proc)
        if stop == _CAP:
            raise SourceError(
                f"{name}: output exceeds --max-command-output-bytes={max_output}; killed"
            )
        how = ""
        if proc.returncode is not None and proc.returncode != -signal.SIGKILL:
            how = " (it exited, but a process it started kept its output open)"
        raise SourceError(
            f"{name}: {argv[0]} did not finish within {budget:.1f}s{how}; killed its process group"
        )

    if proc.returncode not in ok_status:
        detail = err.decode("utf-8", "replace").strip().splitlines()
        reason = detail[0][:200] if detail else "no error output"
        if proc.returncode < 0:
            status = f"was killed by signal {-proc.returncode}"
        else:
            status = f"exited with status {proc.returncode}"
        raise SourceError(f"{name}: {argv[0]} {status}: {reason}")
    return b"".join(chunks)
