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
from typing import Any, Callable, Dict, Mapping, Optional

from prometheus_cluster_exporter.errors import SourceError

log = logging.getLogger(__name__)

# Extra time allowed past the deadline before a call that ignores it is abandoned.
GRACE_SECONDS = 1.0
ABANDONED = "did not return by the scrape deadline"
STILL_RUNNING = "its call of an earlier scrape is still running; not started again"


@dataclass
class SourceOutcome:
    """What one call returned (``value``) or why it failed (``error``), and how long it took."""

    name: str
    seconds: float
    value: Any = None
    error: Optional[str] = None
    #: The traceback of an unexpected exception, for the log.
    trace: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None


class _Call(threading.Thread):
    def __init__(self, name: str, func: Callable[[float], Any], deadline: float) -> None:
        super().__init__(name=f"source {name}", daemon=True)
        self.source = name
        self.func = func
        self.deadline = deadline
        self.outcome: Optional[SourceOutcome] = None
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


class SourceRunner:
    """Runs named calls concurrently under one deadline (see the module docstring)."""

    def __init__(self, grace: float = GRACE_SECONDS) -> None:
        self.grace = grace
        self._lock = threading.Lock()
        self._running: Dict[str, _Call] = {}

    def abandoned(self) -> int:
        """How many calls of earlier scrapes are still running."""
        with self._lock:
            return sum(1 for call in self._running.values() if call.is_alive())

    def run(
        self, calls: Mapping[str, Callable[[float], Any]], deadline: float
    ) -> Dict[str, SourceOutcome]:
        outcomes: Dict[str, SourceOutcome] = {}
        started: Dict[str, _Call] = {}
        with self._lock:
            for name, func in calls.items():
                earlier = self._running.get(name)
                if earlier is not None and earlier.is_alive():
                    outcomes[name] = SourceOutcome(name, 0.0, None, STILL_RUNNING)
                    continue
                call = self._running[name] = started[name] = _Call(name, func, deadline)
                call.start()
        wait_until = deadline + self.grace
        for name, call in started.items():
            call.join(max(0.0, wait_until - time.monotonic()))
            outcome = call.outcome
            if outcome is None:
                log.debug("source %s abandoned at the deadline", name)
                outcome = SourceOutcome(name, time.perf_counter() - call.started, None, ABANDONED)
            outcomes[name] = outcome
        return {name: outcomes[name] for name in calls}
