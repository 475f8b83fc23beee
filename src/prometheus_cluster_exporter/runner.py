"""The source runner: calls sources concurrently and collects their outcomes by a deadline.

Each call runs on a thread of its own and must return or raise by the scrape deadline;
the runner waits for all of them together until the deadline plus one short grace
period (not one grace period per call). A call still running then is abandoned: its
outcome is an error, and the thread is left to finish on its own. While it runs, the
same source is not started again (its next outcome says so), so a source that ignores
its deadline costs one thread, never a growing number, and never blocks the others or a
later scrape.

An exception other than SourceError is a bug or an unexpected answer: its outcome is an
error carrying the traceback, which the collector logs at ERROR.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Dict, Generic, List, Mapping, Optional, TypeVar

from prometheus_cluster_exporter.errors import SourceError
from prometheus_cluster_exporter.records import Parsed

log = logging.getLogger(__name__)

T = TypeVar("T")

# Extra time allowed past the deadline before a call that ignores it is abandoned.
GRACE_SECONDS = 1.0
ABANDONED = "did not return by the scrape deadline"
STILL_RUNNING = "its call of an earlier scrape is still running; not started again"


@dataclass
class SourceOutcome(Generic[T]):
    """What one call returned (``value``) or why it failed (``error``), and how long it took.

    ``value`` is set exactly when ``error`` is None.
    """

    name: str
    seconds: float
    value: Optional[T] = None
    error: Optional[str] = None
    #: The traceback of an unexpected exception, for the log.
    trace: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def failed(self, error: str) -> SourceOutcome[T]:
        """This outcome turned into a failure (its value dropped), same name and time."""
        return SourceOutcome(self.name, self.seconds, None, error)


class _Call(threading.Thread, Generic[T]):
    def __init__(self, name: str, func: Callable[[float], T], deadline: float) -> None:
        super().__init__(name=f"source {name}", daemon=True)
        self.source = name
        self.func = func
        self.deadline = deadline
        self.outcome: Optional[SourceOutcome[T]] = None
        self.started = time.perf_counter()

    def run(self) -> None:
        start = self.started
        try:
            value = self.func(self.deadline)
            outcome = SourceOutcome(self.source, time.perf_counter() - start, value)
        except SourceError as exc:
            outcome = SourceOutcome(self.source, time.perf_counter() - start, None, str(exc))
        except Exception as exc:  # a bug or an unexpected answer must not lose the scrape
            outcome = SourceOutcome(
                self.source,
                time.perf_counter() - start,
                None,
                f"unexpected {type(exc).__name__}: {str(exc)[:300]}",
                traceback.format_exc(),
            )
        self.outcome = outcome


class Pending(Generic[T]):
    """A call started by a Batch; ``outcome`` is set once the batch has been waited for."""

    def __init__(self, name: str, call: Optional[_Call[T]]) -> None:
        self.name = name
        self.call = call
        self.outcome: SourceOutcome[T] = SourceOutcome(name, 0.0, None, STILL_RUNNING)

    def settle(self, wait_until: float) -> SourceOutcome[T]:
        call = self.call
        if call is not None:
            call.join(max(0.0, wait_until - time.monotonic()))
            if call.outcome is not None:
                self.outcome = call.outcome
            else:
                log.debug("source %s abandoned at the deadline", self.name)
                seconds = time.perf_counter() - call.started
                self.outcome = SourceOutcome(self.name, seconds, None, ABANDONED)
        return self.outcome


class Batch:
    """Calls started together under one deadline and waited for together::

    batch = runner.batch(deadline)
    jobs = batch.start("squeue", squeue.jobs)   # Pending[Parsed[List[SlurmJob]]]
    batch.wait()
    jobs.outcome.value
    """

    def __init__(self, runner: SourceRunner, deadline: float) -> None:
        self.runner = runner
        self.deadline = deadline
        self.pending: List[Pending[Any]] = []

    def start(self, name: str, func: Callable[[float], T]) -> Pending[T]:
        pending: Pending[T] = Pending(name, self.runner._start(name, func, self.deadline))
        self.pending.append(pending)
        return pending

    def wait(self) -> Dict[str, SourceOutcome[Any]]:
        """Every outcome, by name, in the order the calls were started."""
        wait_until = self.deadline + self.runner.grace
        return {p.name: p.settle(wait_until) for p in self.pending}


class SourceRunner:
    """Runs named calls concurrently under one deadline (see the module docstring)."""

    def __init__(self, grace: float = GRACE_SECONDS) -> None:
        self.grace = grace
        self._lock = threading.Lock()
        self._running: Dict[str, _Call[Any]] = {}

    def abandoned(self) -> int:
        """How many calls of earlier scrapes are still running."""
        with self._lock:
            return sum(1 for call in self._running.values() if call.is_alive())

    def batch(self, deadline: float) -> Batch:
        return Batch(self, deadline)

    def _start(self, name: str, func: Callable[[float], T], deadline: float) -> Optional[_Call[T]]:
        """The started call, or None while the same source's earlier call still runs."""
        with self._lock:
            earlier = self._running.get(name)
            if earlier is not None and earlier.is_alive():
                return None
            call: _Call[T] = _Call(name, func, deadline)
            self._running[name] = call
            call.start()
            return call


def log_outcomes(outcomes: Mapping[str, SourceOutcome[Any]], logger: logging.Logger) -> bool:
    """One ERROR line per failed source, one WARNING for all skipped entries; True if
    every source succeeded."""
    ok = True
    for outcome in outcomes.values():
        if not outcome.ok:
            ok = False
            if outcome.trace:
                logger.error("source %s failed: %s\n%s", outcome.name, outcome.error, outcome.trace)
            else:
                logger.error("source %s failed: %s", outcome.name, outcome.error)
    malformed = {
        o.name: o.value.skipped
        for o in outcomes.values()
        if isinstance(o.value, Parsed) and o.value.skipped
    }
    if malformed:
        parts = ", ".join(f"{n} from {src}" for src, n in malformed.items())
        logger.warning(
            "skipped malformed entries this scrape: %s (details with --log=DEBUG)", parts
        )
    return ok
