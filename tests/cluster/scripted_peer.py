"""A stand-in cluster member on loopback that answers from a script: slow, failing or dropping the connection
on cue, which a real satellite cannot be made to do. Records what it was sent."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    delay_s: float = 0.0
    #: Close the connection without answering, as a peer that closed a kept-alive connection does.
    drop: bool = False


@dataclass(frozen=True)
class Received:
    client_port: int
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedPeer:
    """Answers the n-th request with ``replies[n]``, and every later one with the last reply."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = replies
        self.received: list[Received] = []
        self._lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                reply = peer._record(
                    Received(self.client_address[1], self.path, dict(self.headers.items()), body)
                )
                if reply.drop:
                    self.close_connection = True
                    return
                time.sleep(reply.delay_s)
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _record(self, received: Received) -> Reply:
        with self._lock:
            self.received.append(received)
            return self.replies[min(len(self.received), len(self.replies)) - 1]


@contextmanager
def scripted_peer(*replies: Reply) -> Iterator[ScriptedPeer]:
    peer = ScriptedPeer(list(replies) or [Reply()])
    thread = threading.Thread(target=peer.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        peer.server.shutdown()
        peer.server.server_close()


def dead_url() -> str:
    """The address of a loopback port nothing listens on: connections to it are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"
