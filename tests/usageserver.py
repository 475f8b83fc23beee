"""A Prometheus query API on 127.0.0.1 for the report command's tests: the fake of
``helpers``, answering each query by the counter it names (``increase(NAME...``) from
``results``; it records every request's parameters and headers."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from tests.helpers import Answer, FakePrometheus

Sample = Tuple[Dict[str, str], str]
_COUNTER = re.compile(r"increase\(([a-z_]+)")


def vector(samples: List[Sample]) -> bytes:
    result = [{"metric": labels, "value": [1717200000, value]} for labels, value in samples]
    return json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": result}}
    ).encode()


@dataclass
class UsageServer(FakePrometheus):
    #: counter name -> samples of its increase.
    results: Dict[str, List[Sample]] = field(default_factory=dict)
    #: A fixed answer (status, body) for every query instead of ``results``.
    fixed: Optional[Tuple[int, bytes]] = None
    #: Seconds before every answer.
    delay: float = 0.0

    def answer(self, query: str) -> Answer:
        if self.fixed is not None:
            return Answer(self.fixed[1], self.fixed[0], self.delay)
        found = _COUNTER.search(query)
        return Answer(
            vector(self.results.get(found.group(1) if found else "", [])), 200, self.delay
        )
