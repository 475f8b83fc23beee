"""A fixed pool of daemon threads for blocking calls, with a bound on the calls waiting.

The HTTP server runs its page functions here. The threads are daemon threads, so a call
that never returns (a collect stuck on a hung command) cannot keep the process alive
after shutdown.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable, Optional, Tuple, TypeVar

T = TypeVar("T")


class WorkerPool:
    """A fixed number of daemon threads for blocking calls; ``submit`` refuses (None) once
    ``workers + max_waiting`` calls are queued or running."""

    def __init__(self, workers: int, max_waiting: int, name: str = "worker") -> None:
        self._jobs: queue.SimpleQueue[Optional[Tuple[Future[Any], Callable[[], Any]]]]
        self._jobs = queue.SimpleQueue()
        self._limit = workers + max_waiting
        self._lock = threading.Lock()
        self.pending = 0
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, call: Callable[[], T]) -> Optional[Future[T]]:
        with self._lock:
            if self.pending >= self._limit:
                return None
            self.pending += 1
        future: Future[T] = Future()
        self._jobs.put((future, call))
        return future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, call = job
            try:
                # A call whose client left while it waited is skipped; it counted as
                # pending until now, so abandoned calls cannot grow the queue either.
                if future.set_running_or_notify_cancel():
                    try:
                        result = call()
                    except BaseException as exc:
                        future.set_exception(exc)
                    else:
                        future.set_result(result)
            finally:
                with self._lock:
                    self.pending -= 1

    def shutdown(self) -> None:
        """Let the threads end after their current call; does not wait for them."""
        for _ in self._threads:
            self._jobs.put(None)
