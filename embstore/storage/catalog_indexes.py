"""The catalog's index_files table: one record per FAISS file, read back validated.

A mixin of ``Catalog`` (it uses only ``self.conn``). A record names its file, but a file
name is turned into a path only by ``file_names.index_file_path``, which refuses any
name that is not one of this store's own.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import CatalogMismatchError

COLUMNS = ("kind", "file", "rows", "bytes", "checksum", "params", "generation", "created_at", "recall",
           "rows_generation")


@dataclass(frozen=True)
class IndexFileRecord:
    """One FAISS file as the catalog knows it. ``rows_generation``: the generation of the
    store's rows that the file holds (or was built from); ``generation`` counts the files
    this kind has had."""

    kind: str
    file: str
    rows: int
    bytes: int
    checksum: str
    params: dict
    generation: int
    created_at: str
    recall: dict | None
    rows_generation: int = 0


def _whole(value: object, field: str, kind: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 62:
        return value
    raise CatalogMismatchError(f"the catalog's record of the {kind!r} index has {field} = {value!r}, "
                               "not a whole number")


def _json_object(value: object, field: str, kind: object, optional: bool) -> dict | None:
    if value is None or value == "":
        if optional:
            return None
        return {}
    try:
        parsed = json.loads(value) if isinstance(value, str) else None
    except (ValueError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict):
        raise CatalogMismatchError(f"the catalog's record of the {kind!r} index has {field} = {str(value)[:60]!r}, "
                                   "not a JSON object")
    return parsed


def parse_record(row: sqlite3.Row | tuple) -> IndexFileRecord:
    """A record from its row (in ``COLUMNS`` order), every field checked; CatalogMismatchError names a bad one."""
    kind, file, rows, size, checksum, params, generation, created_at, recall, rows_generation = row
    if not isinstance(kind, str) or not isinstance(file, str) or not isinstance(checksum, str):
        raise CatalogMismatchError(f"the catalog's record of the {kind!r} index has a kind, file or checksum "
                                   "that is not text")
    if rows_generation is None:
        rows_generation = -1
    if not isinstance(rows_generation, int) or isinstance(rows_generation, bool):
        raise CatalogMismatchError(f"the catalog's record of the {kind!r} index has rows_generation = "
                                   f"{rows_generation!r}, not a whole number")
    return IndexFileRecord(
        kind=kind, file=file, rows=_whole(rows, "rows", kind), bytes=_whole(size, "bytes", kind), checksum=checksum,
        params=_json_object(params, "params", kind, optional=False), generation=_whole(generation or 0, "generation", kind),
        created_at=str(created_at), recall=_json_object(recall, "recall", kind, optional=True),
        rows_generation=rows_generation)


class IndexRecords:
    if TYPE_CHECKING:
        conn: sqlite3.Connection

    def _has_rows_generation(self) -> bool:
        return any(row[1] == "rows_generation" for row in self.conn.execute("PRAGMA table_info(index_files)"))

    def index_file_rows(self) -> list[tuple]:
        """Every record as stored, unparsed (in ``COLUMNS`` order)."""
        columns = list(COLUMNS)
        if not self._has_rows_generation():  # a read-only store from before migration 0004
            columns[-1] = "CASE WHEN stale THEN -1 ELSE (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'generation') END"
        return self.conn.execute(f"SELECT {', '.join(columns)} FROM index_files ORDER BY kind").fetchall()

    def index_files(self) -> list[IndexFileRecord]:
        """Every record, validated (CatalogMismatchError names the first bad field)."""
        return [parse_record(row) for row in self.index_file_rows()]

    def index_file(self, kind: str) -> IndexFileRecord | None:
        for record in self.index_files():
            if record.kind == kind:
                return record
        return None

    def record_index_file(self, record: IndexFileRecord) -> None:
        self.conn.execute(
            f"INSERT INTO index_files({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
            "ON CONFLICT(kind) DO UPDATE SET "
            + ", ".join(f"{column} = excluded.{column}" for column in COLUMNS[1:]),
            (record.kind, record.file, record.rows, record.bytes, record.checksum, json.dumps(record.params),
             record.generation, record.created_at, json.dumps(record.recall) if record.recall else None,
             record.rows_generation),
        )

    def delete_index_file(self, kind: str) -> None:
        self.conn.execute("DELETE FROM index_files WHERE kind IS ?", (kind,))  # IS: a damaged NULL kind too

    def delete_all_index_files(self) -> None:
        self.conn.execute("DELETE FROM index_files")

    def recorded_file_names(self) -> set[str]:
        """The file names the catalog references (index, n-gram and shard files), read without
        validating the records."""
        names = {row[0] for row in self.conn.execute("SELECT file FROM index_files") if isinstance(row[0], str)}
        return names | self.subword_file_names() | self.shard_file_names()
