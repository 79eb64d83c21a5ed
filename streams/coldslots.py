"""The slots of closed tasks, on local disk instead of in memory.

A slot whose task is closed or cancelled is kept for two reasons only: a new report there within
the rebound horizon (7 days) opens a rebound of it, and a repeated report within the dedup horizon
is recognised. Almost nothing reads it again, yet in a busy district those slots are most of the
slots a worker holds: kept decoded in memory they made a worker's memory grow with the number of
tasks closed in the last week (about 1.4 KB each). Here they wait in a private SQLite database,
encoded as on the changelog, with the instant after which they can be forgotten.

The database is a cache of the changelog, which stays the record: it is a temporary file that
SQLite deletes when the connection closes (or the process dies), so a restarted worker restores
its partitions from the changelog as before, and no journal or fsync is paid for.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["ColdSlots"]

_CACHE_KIB = 8 * 1024
"""SQLite's page cache (its own memory): what stays resident of the cold slots."""


class ColdSlots:
    """Encoded slot states by partition and key, each with a float ``expires`` (Unix time after
    which it may be forgotten)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        # An empty name is a private temporary database: SQLite unlinks its file at once, so
        # nothing is left behind, even by a SIGKILL.
        self._db = sqlite3.connect("", isolation_level=None)
        for pragma in (
            f"temp_store_directory = '{_quoted(directory.resolve())}'",
            "journal_mode = OFF",
            "synchronous = OFF",
            f"cache_size = -{_CACHE_KIB}",
        ):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute(
            "CREATE TABLE slots (partition INTEGER NOT NULL, key BLOB NOT NULL, "
            "value BLOB NOT NULL, expires REAL NOT NULL, PRIMARY KEY (partition, key)) "
            "WITHOUT ROWID"
        )
        self._db.execute("CREATE INDEX slots_by_expiry ON slots (expires)")
        self._partitions: set[int] = set()

    def get(self, partition: int, key: bytes) -> bytes | None:
        row = self._db.execute(
            "SELECT value FROM slots WHERE partition = ? AND key = ?", (partition, key)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def find(self, key: bytes) -> bytes | None:
        """A slot held on any partition."""
        for partition in self._partitions:
            value = self.get(partition, key)
            if value is not None:
                return value
        return None

    def put(self, rows: Iterable[tuple[int, bytes, bytes, float]]) -> None:
        """Store ``(partition, key, value, expires)`` rows, replacing what the keys held."""
        rows = list(rows)
        self._partitions.update(row[0] for row in rows)
        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR REPLACE INTO slots VALUES (?, ?, ?, ?)", rows)
        self._db.execute("COMMIT")

    def delete(self, rows: Iterable[tuple[int, bytes]]) -> None:
        self._db.execute("BEGIN")
        self._db.executemany("DELETE FROM slots WHERE partition = ? AND key = ?", rows)
        self._db.execute("COMMIT")

    def expired(self, now: float, limit: int = 10_000) -> list[tuple[int, bytes]]:
        """Remove and return up to ``limit`` slots whose ``expires`` is before ``now``."""
        rows = [
            (int(partition), bytes(key))
            for partition, key in self._db.execute(
                "SELECT partition, key FROM slots WHERE expires < ? ORDER BY expires LIMIT ?",
                (now, limit),
            )
        ]
        self.delete(rows)
        return rows

    def drop(self, partitions: Sequence[int]) -> None:
        """Forget every slot of ``partitions``."""
        self._db.execute("BEGIN")
        self._db.executemany("DELETE FROM slots WHERE partition = ?", [(p,) for p in partitions])
        self._db.execute("COMMIT")
        self._partitions.difference_update(partitions)

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM slots").fetchone()[0])

    def close(self) -> None:
        self._db.close()


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
