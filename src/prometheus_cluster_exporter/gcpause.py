"""Pausing the cyclic garbage collector while a scrape builds and renders its data.

A scrape allocates hundreds of thousands of short-lived, acyclic objects (freed by
reference counting); the collector's repeated passes over them cost as much as the work
itself. The pause is process-wide. Imports nothing of the exporter's.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from typing import Iterator


class GcPause:
    """``with pause():`` disables the cyclic collector for the block.

    Nested and concurrent pauses are counted; collection resumes when the last one
    ends. If something else had already disabled it, it is left alone.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            owned = self._depth > 0 or gc.isenabled()
            if owned:
                self._depth += 1
                gc.disable()
        try:
            yield
        finally:
            if owned:
                with self._lock:
                    self._depth -= 1
                    if self._depth == 0:
                        gc.enable()


#: The process's one pause (the collect and the page share it).
gc_paused = GcPause()
