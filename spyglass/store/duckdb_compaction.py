"""Compaction of the DuckDB store's file, which DuckDB never shrinks on DELETE: a checkpoint only puts the freed
blocks on a free list for the next writes (and truncates a free tail). When they are a large share of the file,
the live rows are copied into a fresh file that then replaces it: DuckDB's own way to give space back
(https://duckdb.org/docs/current/operations_manual/footprint_of_duckdb/reclaiming_space).

The copy reads one snapshot and holds no lock; writes committed meanwhile are recorded by the store and replayed
onto the copy, so only the last few of them, a checkpoint and the exchange of the files hold the writer. Readers
never wait for the copy: the exchange waits for the queries still reading the old file and holds new ones back
meanwhile (``SwappableConnection``), since DuckDB opens one database per file in a process and closing a
connection ends every cursor taken from it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable

import duckdb

#: The fresh file is written next to the store's own as ``<path>.compacting``, and renamed over it at the end:
#: a process that dies meanwhile leaves the store's file whole, and the next open removes the unfinished copy.
COMPACTING_SUFFIX = ".compacting"
#: The name the fresh file is attached under, in the store's own database, for the copy.
_ATTACHED_AS = "spyglass_compacting"
#: Tables not copied: the fresh file has its own version row, written when its tables were created.
_NOT_COPIED = ("schema_version",)


def remove_leftovers(path: str) -> None:
    """Delete what an unfinished compaction left (the file being copied into, its write-ahead log)."""
    for name in (path + COMPACTING_SUFFIX, path + COMPACTING_SUFFIX + ".wal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)


def _add_missing_columns(cur: duckdb.DuckDBPyConnection, main: str, table: str) -> None:
    """The columns ``table`` has in ``main`` (as of the copy's snapshot) but not yet in the fresh file, added
    there: a store may add columns as it goes (``attribute_slots``), and the copy takes every one."""
    columns = "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = ? AND table_name = ?"
    fresh = {name for name, _ in cur.execute(columns, [_ATTACHED_AS, table]).fetchall()}
    for name, kind in cur.execute(columns, [main, table]).fetchall():
        if name not in fresh:
            # Names and types from the catalog, quoted.
            cur.execute(f"ALTER TABLE {_ATTACHED_AS}.{_name(table)} ADD COLUMN {_name(name)} {kind}")


def _text(value: str) -> str:
    """A SQL string literal (ATTACH takes no bound parameter for its path)."""
    return "'" + value.replace("'", "''") + "'"


def _name(value: str) -> str:
    """A quoted SQL identifier."""
    return '"' + value.replace('"', '""') + '"'


def copy_live_rows(
    cur: duckdb.DuckDBPyConnection,
    fresh_path: str,
    write_lock: threading.Lock,
    on_snapshot: Callable[[], None],
) -> None:
    """Copy every row of every table (but ``schema_version``) of ``cur``'s database into ``fresh_path``, whose
    tables exist already, from one snapshot. The snapshot is taken under ``write_lock`` and ``on_snapshot`` is
    called there too, so the writes it has not seen are exactly those committed after ``on_snapshot`` (the
    store records them from then on). Row order is kept (``preserve_insertion_order``), so the zone maps on the
    time columns stay as tight as they were."""
    main = str(cur.execute("SELECT current_database()").fetchall()[0][0])
    tables = [
        str(row[0])
        for row in cur.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' ORDER BY table_name"
        ).fetchall()
        if row[0] not in _NOT_COPIED
    ]
    cur.execute(f"ATTACH {_text(fresh_path)} AS {_ATTACHED_AS}")
    try:
        with write_lock:
            cur.execute("BEGIN TRANSACTION")
            # DuckDB starts a database's snapshot at its first read in the transaction: this one.
            cur.execute("SELECT count(*) FROM schema_version").fetchall()
            on_snapshot()
        try:
            for table in tables:
                _add_missing_columns(cur, main, table)
                cur.execute(
                    f"INSERT INTO {_ATTACHED_AS}.{_name(table)} BY NAME "  # noqa: S608 (names from the catalog)
                    f"SELECT * FROM {_name(main)}.{_name(table)}"
                )
            cur.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                cur.execute("ROLLBACK")
            raise
    finally:
        cur.execute(f"DETACH {_ATTACHED_AS}")


def open_cursors(conn: duckdb.DuckDBPyConnection) -> int:
    """Cursors open on ``conn``'s database besides ``conn`` itself (DuckDB counts its connections)."""
    return int(conn.execute("SELECT * FROM duckdb_connection_count()").fetchall()[0][0]) - 1


class SwappableConnection:
    """The store's DuckDB connection, which a compaction replaces. Every cursor is taken through ``cursor``, so
    ``swap`` can hold new cursors back while the old connection's last ones finish, then close it (closing a
    connection ends the cursors taken from it) and open the new file."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self._conn = conn
        self._swapping = False
        self._changed = threading.Condition()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of the current connection; during a swap, of the next one (after at most the swap)."""
        with self._changed:
            while self._swapping:
                self._changed.wait()
            return self._conn.cursor()

    def execute(self, query: str, parameters: object = None) -> duckdb.DuckDBPyConnection:
        """One statement on the connection itself (tests, one-off statements); the store reads through cursors."""
        with self._changed:
            while self._swapping:
                self._changed.wait()
            conn = self._conn
        return conn.execute(query, parameters)

    def close(self) -> None:
        self._conn.close()

    def swap(self, reopen: Callable[[], duckdb.DuckDBPyConnection], wait_s: float) -> bool:
        """Wait up to ``wait_s`` for the cursors in use to close (new ones wait), then close the connection and
        take ``reopen()``'s; False, and nothing changed, when some cursor stayed open that long."""
        with self._changed:
            self._swapping = True
        try:
            deadline = time.monotonic() + wait_s
            while open_cursors(self._conn) > 0:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.001)
            self._conn.close()
            self._conn = reopen()
            return True
        finally:
            with self._changed:
                self._swapping = False
                self._changed.notify_all()
