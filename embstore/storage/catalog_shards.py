"""The catalog's shard_files table: the files of a sharded store, read back validated.

A mixin of ``Catalog`` (it uses only ``self.conn``). A sharded store splits its word IDs
into ``shards`` contiguous ranges; per range, kind 'exact' names the file holding a copy of
its exact rows, and kind 'hnsw' (optional) a file holding an HNSW graph of them. Each
record carries the generation of the store's rows it holds, so a stale file is never
searched. Stores from before migration 0008 that cannot be upgraded here (read-only) have
no table and no shards.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from ..errors import CatalogMismatchError

SHARD_FILE_KINDS = ("exact", "hnsw")
MAX_SHARDS = 4096
COLUMNS = ("kind", "number", "shards", "start", "stop", "file", "bytes", "checksum", "fingerprint", "params",
           "rows_generation", "created_at")


@dataclass(frozen=True)
class ShardRecord:
    """One shard file as the catalog knows it: shard ``number`` of ``shards`` holds word IDs
    ``start .. stop`` (exclusive) as rows (kind 'exact') or as an HNSW graph (kind 'hnsw')."""

    kind: str
    number: int
    shards: int
    start: int
    stop: int
    file: str
    bytes: int
    checksum: str
    fingerprint: str | None
    params: dict
    rows_generation: int
    created_at: str

    @property
    def rows(self) -> int:
        return self.stop - self.start


def _whole(value: object, field: str, low: int = 0, high: int = 1 << 62) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    raise CatalogMismatchError(f"a shard record has {field} = {value!r:.40}, not a whole number from {low} to {high}")


def parse_shard_record(row: Sequence) -> ShardRecord:
    """A record from its row (in ``COLUMNS`` order), every field checked; CatalogMismatchError names a bad one."""
    kind, number, shards, start, stop, file, size, checksum, fingerprint, params, rows_generation, created_at = row
    if kind not in SHARD_FILE_KINDS:
        raise CatalogMismatchError(f"a shard record has kind {kind!r:.40}, not one of {', '.join(SHARD_FILE_KINDS)}")
    shards = _whole(shards, "shards", 1, MAX_SHARDS)
    number = _whole(number, "number", 0, shards - 1)
    start = _whole(start, "start")
    stop = _whole(stop, "stop", start)
    for name, value in (("file", file), ("checksum", checksum)):
        if not isinstance(value, str):
            raise CatalogMismatchError(f"a shard record has {name} = {value!r:.40}, not text")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise CatalogMismatchError(f"a shard record has fingerprint = {fingerprint!r:.40}, not text")
    try:
        parsed = json.loads(params) if isinstance(params, str) else None
    except (ValueError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict):
        raise CatalogMismatchError(f"a shard record has params = {str(params)[:40]!r}, not a JSON object")
    return ShardRecord(kind, number, shards, start, stop, file, _whole(size, "bytes"), checksum, fingerprint, parsed,
                       _whole(rows_generation, "rows_generation"), str(created_at))


class ShardRecords:
    if TYPE_CHECKING:
        conn: sqlite3.Connection

        def has_table(self, name: str) -> bool: ...

    def has_shard_table(self) -> bool:
        return self.has_table("shard_files")

    def shard_rows(self) -> list[tuple]:
        """Every shard record as stored, unparsed (in ``COLUMNS`` order), by kind and number."""
        if not self.has_shard_table():
            return []
        return self.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM shard_files ORDER BY kind, number").fetchall()

    def shard_file_names(self) -> set[str]:
        if not self.has_shard_table():
            return set()
        return {row[0] for row in self.conn.execute("SELECT file FROM shard_files") if isinstance(row[0], str)}

    def record_shards(self, kind: str, records: Sequence[ShardRecord]) -> list[tuple[str, int, str]]:
        """Replace every ``kind`` record by ``records``; returns the (kind, number, file) of the
        records replaced (their files are removed after the commit)."""
        old = [(row[0], row[1], row[5]) for row in self.shard_rows() if row[0] == kind]
        self.conn.execute("DELETE FROM shard_files WHERE kind = ?", (kind,))
        self.conn.executemany(
            f"INSERT INTO shard_files({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
            [(r.kind, r.number, r.shards, r.start, r.stop, r.file, r.bytes, r.checksum, r.fingerprint,
              json.dumps(r.params), r.rows_generation, r.created_at) for r in records])
        return [entry for entry in old if entry[2] not in {r.file for r in records}]

    def delete_shards(self) -> list[tuple[str, int, str]]:
        """Forget every shard record; returns their (kind, number, file), to remove after the commit."""
        old = [(row[0], row[1], row[5]) for row in self.shard_rows()]
        if self.has_shard_table():
            self.conn.execute("DELETE FROM shard_files")
        return old
