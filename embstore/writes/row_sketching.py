"""Add or remove the rows' sketch of a store already loaded (``embstore sketch``, ``Store.set_sketch``).

The exact rows file is written again, with or without the sketch (``row_sketch``), and put in
place in one commit, if the store is still at the generation read. The rows themselves do not
change, so their generation stays and the approximate indexes and shards stay current.
"""

from __future__ import annotations

import json

from .. import row_sketch
from ..errors import QueryError, StoreChangedError
from ..storage.catalog import Catalog
from ..storage.file_names import NewFiles, leftover_files, new_index_file, own_paths, remove_files
from ..storage.index_files import can_sketch, write_rows_file
from ..storage.store_files import StoreFiles
from ..storage.store_meta import EXACT
from .loading import record_written


def set_sketch(files: StoreFiles, catalog: Catalog, on: bool) -> bool:
    """Give the rows of the generation ``files`` holds a sketch (``on``) or take it away; False if
    they already are so. ``catalog``: a connection of its own that writes. StoreChangedError if
    another writer committed meanwhile."""
    if files.rows is None or files.meta.storage != EXACT:
        raise QueryError(f"{files.path} keeps only {files.meta.storage} codes; a sketch is made of exact rows")
    if not files.meta.raw_rows:
        raise QueryError(f"{files.path} holds unit rows (written before embstore 0.2); load its source again, "
                         "then add the sketch")
    if on and not can_sketch(files.dimension):
        raise QueryError(f"a sketch needs rows of at least {row_sketch.MIN_DIMENSION} dimensions; this store's have "
                         f"{files.dimension}, and one pass over them is fast already")
    if (files.sketch is not None) == on:
        return False
    files.rows_verified("writing the sketch" if on else "removing the sketch")
    old = files.records[EXACT]
    new = NewFiles()
    with new.written():
        tmp, final = new_index_file(files.path, EXACT)
        written = write_rows_file(files.rows, new.claim(tmp, final), final, sketch=on)
        doing = "the sketch was being written" if on else "the sketch was being removed"
        with catalog.commit_at(None, doing, rows_generation=old.rows_generation):  # index builds may commit meanwhile
            current = catalog.index_file(EXACT)
            if current is None or (current.file, current.checksum) != (old.file, old.checksum):
                raise StoreChangedError(f"the store {files.path} changed while {doing}; run it again")
            catalog.record_index_file(record_written(EXACT, written, params=old.params, generation=old.generation + 1,
                                                     rows_generation=old.rows_generation, recall=old.recall))
            try:
                options = json.loads(catalog.meta().get("load_options") or "{}")
            except ValueError:
                options = {}
            if isinstance(options, dict):  # so that a reload by repair gives the sketch back, or not
                options["sketch"] = on
                catalog.set_meta(load_options=json.dumps(options))
            leftovers = leftover_files(files.path, catalog.recorded_file_names())
    remove_files(own_paths(files.path, [(EXACT, old.file)]) + leftovers)
    return True
