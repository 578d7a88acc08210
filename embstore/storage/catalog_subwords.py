"""The catalog's subword_files table: the n-gram rows file of a fastText store, read back validated.

A mixin of ``Catalog`` (it uses only ``self.conn``). A store has at most one record,
named ``ngrams``; stores from before migration 0007 that this process cannot upgrade
(read-only) have no table and no record.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import CatalogMismatchError
from ..subwords.ngrams import HASH_NAME

NGRAMS = "ngrams"
COLUMNS = ("name", "file", "rows", "dimension", "bytes", "checksum", "fingerprint", "params", "created_at")
PARAM_KEYS = ("minn", "maxn", "bucket", "hash")


@dataclass(frozen=True)
class SubwordRecord:
    """The n-gram rows file as the catalog knows it; ``params`` has ``minn``, ``maxn``,
    ``bucket`` (= rows) and ``hash``, and what the model file said of itself."""

    file: str
    rows: int
    dimension: int
    bytes: int
    checksum: str
    fingerprint: str
    params: dict
    created_at: str

    @property
    def minn(self) -> int:
        return self.params["minn"]

    @property
    def maxn(self) -> int:
        return self.params["maxn"]


def _whole(value: object, what: str, low: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise CatalogMismatchError(f"the catalog's n-gram record has {what} = {value!r:.40}, not a whole number")
    return value


def parse_subword_record(row: tuple, dimension: int) -> SubwordRecord:
    """A record checked field by field (CatalogMismatchError names the first bad one)."""
    _, file, rows, record_dimension, size, checksum, fingerprint, params, created_at = row
    rows, size = _whole(rows, "rows"), _whole(size, "bytes")
    if _whole(record_dimension, "dimension", 1) != dimension:
        raise CatalogMismatchError(f"the catalog's n-gram record has dimension {record_dimension}; the store's "
                                   f"is {dimension}")
    try:
        params = json.loads(params) if isinstance(params, str) else None
    except ValueError:
        params = None
    if not isinstance(params, dict) or any(key not in params for key in PARAM_KEYS):
        raise CatalogMismatchError("the catalog's n-gram record has no valid params (minn, maxn, bucket, hash)")
    if params["hash"] != HASH_NAME:
        raise CatalogMismatchError(f"the catalog's n-gram record names the hash {str(params['hash'])[:40]!r}; this "
                                   f"embstore computes {HASH_NAME!r}")
    minn, maxn = _whole(params["minn"], "params.minn"), _whole(params["maxn"], "params.maxn")
    if maxn < minn or maxn > 1000 or _whole(params["bucket"], "params.bucket") != rows:
        raise CatalogMismatchError(f"the catalog's n-gram record has params {params} that do not fit its "
                                   f"{rows:,} rows")
    for name, value in (("checksum", checksum), ("fingerprint", fingerprint), ("file", file)):
        if not isinstance(value, str):
            raise CatalogMismatchError(f"the catalog's n-gram record has {name} = {value!r:.40}")
    return SubwordRecord(file, rows, record_dimension, size, checksum, fingerprint, params, str(created_at))


class SubwordRecords:
    if TYPE_CHECKING:
        conn: sqlite3.Connection

        def has_table(self, name: str) -> bool: ...

    def _has_subword_table(self) -> bool:
        return self.has_table("subword_files")

    def subword_row(self) -> tuple | None:
        """The n-gram record as stored, unparsed, or None."""
        if not self._has_subword_table():
            return None
        return self.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM subword_files WHERE name = ?",
                                 (NGRAMS,)).fetchone()

    def subword_file_names(self) -> set[str]:
        if not self._has_subword_table():
            return set()
        return {row[0] for row in self.conn.execute("SELECT file FROM subword_files") if isinstance(row[0], str)}

    def record_subwords(self, record: SubwordRecord) -> None:
        self.conn.execute(
            f"INSERT OR REPLACE INTO subword_files({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
            (NGRAMS, record.file, record.rows, record.dimension, record.bytes, record.checksum, record.fingerprint,
             json.dumps(record.params), record.created_at))

    def delete_subwords(self) -> list[str]:
        """Forget the n-gram record; returns the file names it named (to remove after the commit)."""
        names = sorted(self.subword_file_names())
        if self._has_subword_table():
            self.conn.execute("DELETE FROM subword_files")
        return names
