"""A real HTTP receiver on loopback for alert webhooks: records every JSON body POSTed to it and answers with
scripted statuses (then 200), optionally slowly."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver:
    """``url`` to POST to; ``bodies`` received (answered 2xx), ``attempts`` every request seen."""

    def __init__(self, statuses: list[int] | None = None, delay_s: float = 0.0) -> None:
        self.statuses = list(statuses or [])
        self.delay_s = delay_s
        self.bodies: list[dict[str, Any]] = []
        self.attempts: list[float] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                time.sleep(receiver.delay_s)
                with receiver.lock:
                    receiver.attempts.append(time.monotonic())
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    if 200 <= status < 300:
                        receiver.bodies.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def received(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.bodies)

    def wait_for(self, count: int, timeout_s: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while len(self.received()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"webhook got {len(self.received())} of {count} bodies")
            time.sleep(0.02)
        return self.received()


@contextmanager
def webhook_receiver(statuses: list[int] | None = None, delay_s: float = 0.0) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(statuses, delay_s)
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
