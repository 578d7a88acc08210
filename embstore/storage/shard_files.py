"""A sharded store's layout as one generation's catalog records it, and the opening of its files.

Knows the catalog's records and the files, not Ray: ``ShardLayout.read`` gives the shards of
the generation a snapshot holds (the exact files, and the HNSW graphs when they hold the
current rows); ``open_rows`` and ``open_graph`` open one shard's file with the same constant-
time checks as the store's own rows (size, header, rows, fingerprint), or the SHA-256 too.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import CatalogMismatchError, QueryError
from ..lazy_modules import faiss
from .catalog import Catalog
from .catalog_shards import MAX_SHARDS, ShardRecord, parse_shard_record
from .file_names import shard_file_path
from .index_files import ExactRows, open_exact_rows, open_index_file

EXACT, HNSW = "exact", "hnsw"


@dataclass(frozen=True)
class ShardLayout:
    """The shards of one generation: ``exact`` (one record per shard, in order) and ``graphs``
    (the HNSW records, or empty when there are none or they were built from older rows)."""

    exact: tuple[ShardRecord, ...]
    graphs: tuple[ShardRecord, ...]
    stale: tuple[ShardRecord, ...] = ()  # HNSW graphs recorded that hold older rows (never searched)

    @property
    def stale_graphs(self) -> bool:
        return bool(self.stale)

    @property
    def bytes(self) -> int:
        """The bytes of every file the layout records, stale graphs too."""
        return sum(r.bytes for r in self.exact + self.graphs + self.stale)

    def file_problems(self, store: Path) -> list[str]:
        """What a look at each recorded file finds wrong, in constant time: a name that is not this
        store's own, a missing file, a link or other non-regular file, a size other than recorded.
        (``check`` reads every byte.)"""
        problems = []
        for record in self.exact + self.graphs + self.stale:
            what = f"shard {record.number}'s {'rows' if record.kind == EXACT else 'graph'}"
            try:
                path = shard_file_path(store, record.kind, record.number, record.file)
            except CatalogMismatchError as exc:
                problems.append(f"{what}: {exc}")
                continue
            try:
                found = path.lstat()
            except FileNotFoundError:
                problems.append(f"{what} {record.file} is missing")
                continue
            if not stat.S_ISREG(found.st_mode):
                problems.append(f"{what} {record.file} is not a regular file")
            elif found.st_size != record.bytes:
                problems.append(f"{what} {record.file} is {found.st_size:,} bytes, not the {record.bytes:,} recorded")
        return problems

    @property
    def shards(self) -> int:
        return len(self.exact)

    @property
    def ranges(self) -> list[tuple[int, int]]:
        return [(r.start, r.stop) for r in self.exact]

    @classmethod
    def read(cls, catalog: Catalog, words: int, rows_generation: int) -> "ShardLayout | None":
        """The layout the catalog records, checked to cover IDs 0 .. words-1 with current rows;
        None if the store is not sharded. CatalogMismatchError says what disagrees."""
        records = [parse_shard_record(row) for row in catalog.shard_rows()]
        exact = [r for r in records if r.kind == EXACT]
        graphs = [r for r in records if r.kind == HNSW]
        if not exact:
            if graphs:
                raise CatalogMismatchError("the catalog records HNSW shard graphs but no shard rows")
            return None
        check_ranges(exact, words)
        if any(r.rows_generation != rows_generation for r in exact):
            raise CatalogMismatchError(f"the shard files hold rows of generation "
                                       f"{sorted({r.rows_generation for r in exact})}, the store "
                                       f"{rows_generation}")
        current = bool(graphs) and all(r.rows_generation == rows_generation for r in graphs)
        if current and [(r.start, r.stop) for r in graphs] != [(r.start, r.stop) for r in exact]:
            raise CatalogMismatchError("the shards' HNSW graphs cover other word-ID ranges than their rows")
        return cls(tuple(exact), tuple(graphs) if current else (), () if current else tuple(graphs))


def shard_ranges(count: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous word-ID ranges covering 0 .. count-1, as equal as can be."""
    if not isinstance(shards, int) or isinstance(shards, bool) or not 1 <= shards <= MAX_SHARDS:
        raise QueryError(f"a store splits into 1 to {MAX_SHARDS:,} shards, not {shards!r}")
    bounds = [count * s // shards for s in range(shards + 1)]
    return [(bounds[s], bounds[s + 1]) for s in range(shards)]


def check_ranges(records: list[ShardRecord], words: int) -> None:
    """The records are shards 0 .. N-1 of N, whose ranges follow on from each other over 0 .. words-1."""
    count = records[0].shards
    if [r.number for r in records] != list(range(count)) or any(r.shards != count for r in records):
        raise CatalogMismatchError(f"the shard records are numbered {[r.number for r in records][:10]} of "
                                   f"{sorted({r.shards for r in records})[:5]}, not 0 .. {count - 1} of {count}")
    position = 0
    for record in records:
        if record.start != position:
            raise CatalogMismatchError(f"shard {record.number} starts at word ID {record.start:,}, not {position:,}")
        position = record.stop
    if position != words:
        raise CatalogMismatchError(f"the shards cover word IDs 0 .. {position - 1:,}; the store has {words:,} words")


def open_rows(store: Path, record: ShardRecord, dimension: int, verify: bool = False) -> ExactRows:
    """Shard ``record``'s rows, memory-mapped after the constant-time checks (``verify``: SHA-256 too)."""
    path = shard_file_path(store, EXACT, record.number, record.file)
    return open_exact_rows(path, rows=record.rows, size=record.bytes, checksum=record.checksum if verify else None,
                           dimension=dimension, fingerprint=record.fingerprint)


def open_graph(store: Path, record: ShardRecord, dimension: int, verify: bool = False) -> faiss.Index:
    """Shard ``record``'s HNSW graph, read after its size (``verify``: and SHA-256) is checked."""
    path = shard_file_path(store, HNSW, record.number, record.file)
    return open_index_file(path, rows=record.rows, size=record.bytes, checksum=record.checksum if verify else None,
                           dimension=dimension, memory_map=True)
