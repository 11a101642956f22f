"""Keep-alive HTTP connections between demo services.

Opening a fresh TCP connection per call would leave thousands of sockets in TIME_WAIT after a long demo at a
high rate; real service clients pool their connections, and so do these.
"""

from __future__ import annotations

import http.client
import threading

Address = tuple[str, int]

_STALE_CONNECTION_ERRORS = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class ConnectionPool:
    """Idle keep-alive connections per address; a request takes one (or opens one) and gives it back."""

    def __init__(self, timeout_s: float = 10.0, max_idle_per_address: int = 64) -> None:
        self._timeout_s = timeout_s
        self._max_idle = max_idle_per_address
        self._idle: dict[Address, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def request(
        self, address: Address, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        """Send one request and read the whole response; returns (status, body). Raises OSError on failure."""
        for attempt in range(2):
            connection, reused = self._take(address)
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except _STALE_CONNECTION_ERRORS:
                connection.close()
                # The server may have closed an idle connection just before we used it; it read nothing.
                if reused and attempt == 0:
                    continue
                raise
            except BaseException:
                connection.close()
                raise
            if response.will_close:
                connection.close()
            else:
                self._give_back(address, connection)
            return response.status, data
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle = [connection for connections in self._idle.values() for connection in connections]
            self._idle.clear()
        for connection in idle:
            connection.close()

    def _take(self, address: Address) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            connections = self._idle.get(address)
            if connections:
                return connections.pop(), True
        return http.client.HTTPConnection(address[0], address[1], timeout=self._timeout_s), False

    def _give_back(self, address: Address, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            connections = self._idle.setdefault(address, [])
            if not self._closed and len(connections) < self._max_idle:
                connections.append(connection)
                return
        connection.close()
