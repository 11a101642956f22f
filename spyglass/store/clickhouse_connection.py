"""The three verbs the ClickHouse store needs from a ClickHouse, and the two ways to get them.

``ClickHouseConnection`` is deliberately tiny (run a statement, run a query into Arrow, insert Arrow) so that
the store never depends on a driver's wider surface. Both implementations are ``clickhouse-connect`` clients:
``http://`` / ``https://`` URLs reach a ClickHouse server, ``chdb://PATH`` URLs run the same engine in-process
on a directory (clickhouse-connect's chDB backend). Either way every statement is parsed and executed by
ClickHouse itself, and every value is bound server-side through ``{name:Type}`` placeholders, which
clickhouse-connect escapes for both backends: no value is ever spliced into SQL text by spyglass.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import pyarrow as pa

#: Database names spyglass accepts in a URL: they become identifiers, so no quoting games.
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
#: Every insert waits for its rows to be written (async inserts would make reads miss them for a while).
_INSERT_SETTINGS = {"async_insert": 0}


class ChdbMissingError(ImportError):
    """A ``chdb://`` URL without chdb installed: the in-process engine is an optional extra, so this names it
    (clickhouse-connect's own message names clickhouse-connect's extra instead)."""

    def __init__(self) -> None:
        super().__init__(
            "chdb:// runs ClickHouse inside spyglass and needs the chdb package: pip install 'spyglass[chdb]'",
            name="chdb",
        )


class ClickHouseConnection(Protocol):
    """What the ClickHouse store asks of a ClickHouse; parameters fill ``{name:Type}`` placeholders."""

    database: str

    def command(
        self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None
    ) -> None:
        """Run a statement that returns nothing worth reading (DDL, INSERT ... SELECT), with query settings."""
        ...

    def query_arrow(self, sql: str, parameters: dict[str, Any] | None = None) -> pa.Table:
        """Run a query and return its result as one Arrow table."""
        ...

    def insert_arrow(self, table: str, data: pa.Table, settings: dict[str, Any] | None = None) -> None:
        """Insert an Arrow table (columns matched by name) into ``table``, with query settings."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ClickHouseUrl:
    """A parsed ``--clickhouse-url``: either a server (``http``/``https``) or an in-process engine (``chdb``)."""

    scheme: str
    database: str
    host: str = ""
    port: int = 0
    username: str = "default"
    password: str = ""
    path: str = ""  # chdb only: the engine's data directory, or ":memory:"

    @property
    def in_process(self) -> bool:
        return self.scheme == "chdb"


def parse_url(url: str) -> ClickHouseUrl:
    """Parse ``http://user:pass@host:8123/database``, ``https://...`` or ``chdb://PATH[?database=NAME]``.

    The database defaults to ``default``, where the OpenTelemetry Collector's exporter writes by default.
    Raises ValueError naming what is wrong.
    """
    if url.startswith("chdb://"):
        rest, _, query = url[len("chdb://") :].partition("?")
        database = _single(parse_qs(query), "database") or "default"
        if not rest:
            raise ValueError("a chdb:// URL needs a data directory, e.g. chdb:///var/lib/spyglass/clickhouse")
        return ClickHouseUrl(scheme="chdb", database=_checked_database(database), path=unquote(rest))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"ClickHouse URL must start with http://, https:// or chdb://, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"ClickHouse URL has no host: {url!r}")
    database = unquote(parts.path.strip("/")) or _single(parse_qs(parts.query), "database") or "default"
    secure = parts.scheme == "https"
    return ClickHouseUrl(
        scheme=parts.scheme,
        database=_checked_database(database),
        host=parts.hostname,
        port=parts.port or (8443 if secure else 8123),
        username=unquote(parts.username) if parts.username else "default",
        password=unquote(parts.password) if parts.password else "",
    )


def _single(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _checked_database(name: str) -> str:
    if not _DATABASE_NAME.match(name):
        raise ValueError(f"ClickHouse database name must be letters, digits and _, got {name!r}")
    return name


class ClientConnection:
    """A ``ClickHouseConnection`` over one clickhouse-connect client (HTTP server or in-process chDB).

    Creates the database when absent. Calls on the in-process engine are serialized by a lock: the chDB
    client is one engine handle, and the store is called from the API's and the satellite's threads at once.
    """

    def __init__(self, url: str | ClickHouseUrl) -> None:
        import clickhouse_connect

        parsed = parse_url(url) if isinstance(url, str) else url
        if parsed.in_process and importlib.util.find_spec("chdb") is None:
            raise ChdbMissingError()
        self.url = parsed
        self.database = parsed.database
        self._lock: threading.Lock | None = threading.Lock() if parsed.in_process else None
        if parsed.in_process:
            client = clickhouse_connect.get_client(interface="chdb", path=parsed.path)
        else:
            client = clickhouse_connect.get_client(
                host=parsed.host,
                port=parsed.port,
                username=parsed.username,
                password=parsed.password,
                secure=parsed.scheme == "https",
                # Without a session the HTTP client may run queries from several threads at once.
                autogenerate_session_id=False,
            )
        self._client = client
        try:
            # The name was checked against _DATABASE_NAME, so it is a plain identifier.
            client.command(f"CREATE DATABASE IF NOT EXISTS `{parsed.database}`")
            client.database = parsed.database
        except BaseException:
            client.close()
            raise

    def _locked(self) -> threading.Lock | _NoLock:
        return self._lock if self._lock is not None else _NO_LOCK

    def command(
        self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None
    ) -> None:
        with self._locked():
            self._client.command(sql, parameters=parameters, settings=settings)

    def query_arrow(self, sql: str, parameters: dict[str, Any] | None = None) -> pa.Table:
        with self._locked():
            return self._client.query_arrow(sql, parameters=parameters, use_strings=True)

    def insert_arrow(self, table: str, data: pa.Table, settings: dict[str, Any] | None = None) -> None:
        with self._locked():
            self._client.insert_arrow(table, data, settings={**_INSERT_SETTINGS, **(settings or {})})

    def close(self) -> None:
        with self._locked():
            self._client.close()


class _NoLock:
    """A stand-in for a lock where the driver is already safe to share between threads."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_LOCK = _NoLock()


def connect(url: str) -> ClickHouseConnection:
    """Open a connection for a ``--clickhouse-url`` (see ``parse_url``)."""
    return ClientConnection(url)
