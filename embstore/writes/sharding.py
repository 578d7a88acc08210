"""Sharding a store: each word-ID range's rows in a file of its own, and HNSW graphs of them.

``Sharding.shard`` writes the files of one generation's rows outside the write lock and
commits only if the rows are still of that generation; the commit replaces the whole
layout (both kinds), so a store has one layout at a time (rows files of the current
generation, as many shards, are kept: ``shard --graphs`` after a change writes only graphs). ``write_exact_shards`` is also
what a word change calls to keep the shard rows equal to the store's rows in the same
commit. HNSW graphs are not rebuilt by changes: they keep the generation they were built
from, so they are known to be stale and never searched.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import EmbstoreError, QueryError, StoreChangedError
from ..search import index_kinds
from ..storage.catalog import Catalog
from ..storage.catalog_shards import ShardRecord
from ..storage.file_names import NewFiles, new_shard_file, own_shard_paths, remove_files
from ..storage.index_files import write_index_file, write_rows_file
from ..storage.shard_files import open_rows, shard_ranges
from ..storage.store_files import StoreFiles
from ..storage.store_meta import now


def write_exact_shards(store, rows: np.ndarray, shards: int, rows_generation: int, new: NewFiles,
                       progress: Callable[[int, int], None] | None = None) -> list[ShardRecord]:
    """Write ``rows`` split into ``shards`` exact rows files (claimed in ``new``); their records."""
    records = []
    ranges = shard_ranges(rows.shape[0], shards)
    for number, (start, stop) in enumerate(ranges):
        tmp, final = new_shard_file(store, "exact", number)
        written = write_rows_file(rows[start:stop], new.claim(tmp, final), final)
        records.append(ShardRecord("exact", number, shards, start, stop, final.name, written.bytes, written.checksum,
                                   written.fingerprint, {}, rows_generation, now()))
        if progress:
            progress(number + 1, len(ranges))
    return records


def write_graph_shards(store, unit_rows: np.ndarray, ranges: list[tuple[int, int]], rows_generation: int,
                       new: NewFiles, progress: Callable[[int, int], None] | None = None) -> list[ShardRecord]:
    """Build and write an HNSW graph of each range of ``unit_rows``; their records."""
    records = []
    for number, (start, stop) in enumerate(ranges):
        part = np.ascontiguousarray(unit_rows[start:stop], dtype=np.float32)
        params = index_kinds.resolve_parameters("hnsw", index_kinds.SHARD_GRAPH_SETTINGS, max(len(part), 1), unit_rows.shape[1])
        graph, seconds = index_kinds.build("hnsw", part, params)
        tmp, final = new_shard_file(store, "hnsw", number)
        written = write_index_file(graph, new.claim(tmp, final), final)
        del graph
        records.append(ShardRecord("hnsw", number, len(ranges), start, stop, final.name, written.bytes,
                                   written.checksum, None, {**params, "build_seconds": round(seconds, 3)},
                                   rows_generation, now()))
        if progress:
            progress(number + 1, len(ranges))
    return records


class Sharding:
    """The shard layout of the generation ``files`` holds."""

    def __init__(self, files: StoreFiles, catalog: Catalog):
        """``files``: the generation it reads; ``catalog``: a connection of its own that writes."""
        self.files = files
        self.catalog = catalog
        self.path = files.path

    def shard(self, shards: int, unit_rows: Callable[[], np.ndarray] | None = None,
              progress: Callable[[str, int, int], None] | None = None, reuse_rows: bool = True) -> list[ShardRecord]:
        """Split the rows into ``shards`` files (with ``unit_rows``, the store's unit rows, also
        an HNSW graph per shard) and make that the store's layout, replacing any other. The rows
        files of a current layout of as many shards are kept (``reuse_rows``) when they pass the
        constant-time checks of an open. StoreChangedError if the rows or the layout changed meanwhile."""
        files = self.files
        if files.rows is None:
            raise QueryError(f"{self.path} keeps only {files.meta.storage} codes; sharding needs exact rows: load "
                             "the source again without --storage")
        ranges = shard_ranges(files.size, shards)
        if any(stop == start for start, stop in ranges):
            raise QueryError(f"{files.size:,} words cannot make {shards} shards of at least one word each")
        rows_generation = files.meta.rows_generation
        kept = self._current_rows(shards) if reuse_rows else None
        new = NewFiles()
        with new.written():
            step = (lambda what: (lambda done, total: progress(what, done, total))) if progress else (lambda what: None)
            records = kept or write_exact_shards(self.path, files.rows, shards, rows_generation, new, step("rows"))
            graphs = write_graph_shards(self.path, unit_rows(), ranges, rows_generation, new, step("graphs")) \
                if unit_rows is not None else []
            with self.catalog.commit_at(None, "the store was being sharded", rows_generation=rows_generation):
                if kept and [row[5] for row in self.catalog.shard_rows() if row[0] == "exact"] != \
                        [r.file for r in kept]:
                    raise StoreChangedError(f"the shards of {self.path} changed while they were being written; "
                                            "run it again")
                old = self.catalog.delete_shards()
                self.catalog.record_shards("exact", records)
                self.catalog.record_shards("hnsw", graphs)
                self.catalog.set_meta(shards=shards)
        names = {r.file for r in records + graphs}
        remove_files(own_shard_paths(self.path, [entry for entry in old if entry[2] not in names]))
        return records + graphs

    def _current_rows(self, shards: int) -> list[ShardRecord] | None:
        """The records of this generation's rows files if they are ``shards`` whole shards."""
        try:
            layout = self.files.shard_layout()
            if layout is None or layout.shards != shards:
                return None
            for record in layout.exact:
                open_rows(self.path, record, self.files.dimension)  # size, header, fingerprint; then unmapped
        except EmbstoreError:
            return None
        return list(layout.exact)

    def drop(self) -> int:
        """Forget the layout and remove its files; returns the number of shards there were."""
        with self.catalog.commit_at(None, "the shards were being dropped"):
            old = self.catalog.delete_shards()
            self.catalog.delete_meta("shards")
        remove_files(own_shard_paths(self.path, old))
        return len({number for kind, number, _ in old if kind == "exact"})
