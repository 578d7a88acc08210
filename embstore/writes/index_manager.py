"""Approximate and compressed indexes: build, drop, choose the default, tune, record measurements.

A build reads the rows of one generation and works outside the write lock (minutes, for
hnsw at 400k words); it commits only if the rows are still of that generation, and
records that generation with the file, so a query can tell a stale index from a current
one. The other operations read what they change inside their own write transaction.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from ..errors import QueryError
from ..search import index_kinds
from ..storage.catalog import Catalog
from ..storage.catalog_indexes import IndexFileRecord
from ..storage.file_names import NewFiles, new_index_file, own_paths, remove_files
from ..storage.index_files import write_index_file
from ..storage.store_files import StoreFiles
from ..storage.store_meta import EXACT
from .loading import record_written


class IndexManager:
    """Index files of the generation ``files`` holds."""

    def __init__(self, files: StoreFiles, catalog: Catalog):
        """``files``: the generation it reads; ``catalog``: a connection of its own that writes."""
        self.files = files
        self.catalog = catalog
        self.path = files.path

    def _holds_rows(self, kind: str) -> bool:
        return kind != EXACT and kind == self.files.meta.storage

    def build(self, kind: str, rows: np.ndarray, *, make_default: bool = False,
              progress: Callable[[int, int], None] | None = None, **params: int | None) -> IndexFileRecord:
        """Build a ``kind`` index over ``rows`` (this generation's unit rows) and record it,
        replacing any earlier one. StoreChangedError if the rows changed meanwhile."""
        if self._holds_rows(kind):
            raise QueryError(f"the {kind} index holds this store's rows; it is not rebuilt from them")
        resolved = index_kinds.resolve_parameters(kind, params, rows.shape[0], self.files.dimension)
        built, seconds = index_kinds.build(kind, rows, resolved, progress)
        new = NewFiles()
        with new.written():
            tmp, final = new_index_file(self.path, kind)
            written = write_index_file(built, new.claim(tmp, final), final)
            del built
            with self.catalog.commit_at(None, f"the {kind} index was being built",
                                        rows_generation=self.files.meta.rows_generation):
                previous = next(((r[0], r[1], r[6]) for r in self.catalog.index_file_rows() if r[0] == kind), None)
                count = previous[2] if previous and isinstance(previous[2], int) and previous[2] >= 0 else 0
                record = record_written(kind, written, params={**resolved, "build_seconds": round(seconds, 3)},
                                        generation=count + 1,
                                        rows_generation=self.files.meta.rows_generation, recall=None)
                self.catalog.record_index_file(record)
                if make_default:
                    self.catalog.set_meta(default_index=kind)
        if previous is not None:  # (a damaged record's file name is removed only if it is this store's own)
            remove_files(own_paths(self.path, [previous[:2]]))
        return record

    def drop(self, kind: str) -> None:
        """Remove an approximate index (the rows cannot be dropped)."""
        if kind == EXACT or self._holds_rows(kind):
            raise QueryError(f"the {kind} index holds the store's rows and cannot be dropped")
        with self.catalog.commit_at(None, f"the {kind} index was being dropped"):
            record = self.catalog.index_file(kind)
            if record is None:
                raise QueryError(f"this store has no {kind} index")
            self.catalog.delete_index_file(kind)
            if self.catalog.meta().get("default_index") == kind:
                self.catalog.delete_meta("default_index")
        remove_files(own_paths(self.path, [(record.kind, record.file)]))

    def set_default(self, kind: str) -> None:
        """Make ``kind`` the index queries use when none is named ('exact' to reset)."""
        if kind != EXACT and kind not in index_kinds.KINDS:
            raise QueryError(f"unknown index kind {kind!r}; expected exact or one of {', '.join(index_kinds.KINDS)}")
        with self.catalog.commit_at(None, "the default index was being set"):
            if kind != EXACT and self.catalog.index_file(kind) is None:
                raise QueryError(f"this store has no {kind} index; build it with: embstore index build --kind {kind}")
            self.catalog.set_meta(default_index=kind)

    def tune(self, kind: str, **settings: int | None) -> IndexFileRecord:
        """Change how ``kind`` searches without a rebuild; the recall measured before is cleared."""
        if kind == EXACT or self._holds_rows(kind):
            raise QueryError(f"the {kind} index has no search-time settings")
        with self.catalog.commit_at(None, f"the {kind} index was being tuned"):
            record = self.catalog.index_file(kind)
            if record is None:
                raise QueryError(f"this store has no {kind} index; build it with: embstore index build --kind {kind}")
            params = index_kinds.tuned_parameters(kind, record.params, settings)
            record = dataclasses.replace(record, params=params, recall=None)
            self.catalog.record_index_file(record)
        return record

    def record_measurements(self, kind: str, figures: dict) -> bool:
        """Store measured recall and latency with the ``kind`` file they were measured on; False
        (nothing recorded) if that file has been replaced or tuned since this generation."""
        measured = self.files.records.get(kind)
        with self.catalog.commit_at(None, f"the {kind} index was being measured"):
            record = self.catalog.index_file(kind)
            if record is None or measured is None or (record.file, record.params) != (measured.file, measured.params):
                return False
            self.catalog.record_index_file(dataclasses.replace(record, recall=figures))
        return True
