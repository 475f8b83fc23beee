"""A Prometheus query API on 127.0.0.1 for the report command's tests: it answers each
query by the counter it names (``increase(NAME...``) from ``results``, and records every
request's parameters and headers."""

from __future__ import annotations

import email.utils
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

Sample = Tuple[Dict[str, str], str]
_COUNTER = re.compile(r"increase\(([a-z_]+)")


def vector(samples: List[Sample]) -> bytes:
    result = [{"metric": labels, "value": [1717200000, value]} for labels, value in samples]
    return json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": result}}
    ).encode()


class UsageServer:
    def __init__(self) -> None:
        #: counter name -> samples of its increase.
        self.results: Dict[str, List[Sample]] = {}
        #: A fixed answer (status, body) for every query instead of ``results``.
        self.fixed: Optional[Tuple[int, bytes]] = None
        self.delay = 0.0
        #: Seconds the server's clock (its Date header) is ahead of this host's.
        self.clock_shift = 0.0
        self.params: List[Dict[str, str]] = []
        self.headers: List[Dict[str, str]] = []
        self.server: Optional[ThreadingHTTPServer] = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def queries(self) -> List[str]:
        return [params.get("query", "") for params in self.params]

    def answer(self, query: str) -> Tuple[int, bytes]:
        if self.fixed is not None:
            return self.fixed
        found = _COUNTER.search(query)
        return 200, vector(self.results.get(found.group(1) if found else "", []))

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != "/api/v1/query":
                    self.send_error(404)
                    return
                params = {k: v[0] for k, v in parse_qs(parts.query).items()}
                fake.params.append(params)
                fake.headers.append(dict(self.headers.items()))
                status, body = fake.answer(params.get("query", ""))
                if fake.delay:
                    time.sleep(fake.delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def date_time_string(self, timestamp: Optional[float] = None) -> str:
                return email.utils.formatdate(time.time() + fake.clock_shift, usegmt=True)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
