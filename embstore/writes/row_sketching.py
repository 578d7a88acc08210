"""Add or remove the rows' sketch of a store already loaded (``embstore sketch``, ``Store.set_sketch``).

The exact rows file is written again, with or without the sketch (``row_sketch``), and put in
place in one commit, if the store is still at the generation read. The rows themselves do not
change, so their generation stays and the approximate indexes and shards stay current.
"""

from __future__ import annotations

import json
import mmap
import os
from pathlib import Path

import numpy as np

from .. import row_sketch
from ..errors import QueryError, StoreChangedError
from ..storage.catalog import Catalog
from ..storage.file_names import NewFiles, index_file_path, leftover_files, new_index_file, own_paths, remove_files
from ..storage.index_files import (ROWS_OFFSET, can_sketch, fd_checksum, open_regular, rows_before_sketch_intact,
                                   rows_part_checksum, write_rows_file)
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


def write_sketch_again(path: Path) -> tuple[bool, str]:
    """Write the rows file of the store at ``path`` again, with a new sketch, from its rows, whose own
    SHA-256 (the record's ``rows_checksum``) must still match: repair's way to mend a damaged sketch
    without a reload. (whether it did, what it did or why not)."""
    catalog = Catalog.open(path)
    try:
        generation = catalog.generation()
        record = catalog.index_file(EXACT)
        dimension = int(catalog.meta().get("dimension") or 0)
        file = index_file_path(path, EXACT, record.file) if record is not None else None
        if file is None or not isinstance(record.params.get("rows_checksum"), str):
            return False, "the rows' sketch is damaged and its rows cannot be told intact: load the source again"
        fd = open_regular(file)
        try:
            if not rows_before_sketch_intact(fd, record.rows, dimension, record.params["rows_checksum"]) and \
                    fd_checksum(fd) != record.checksum:  # (a wrong record of the rows' own checksum)
                return False, "the rows before the sketch are damaged too: load the source again"
            with mmap.mmap(fd, ROWS_OFFSET + 4 * record.rows * dimension, prot=mmap.PROT_READ) as mapped:
                rows = np.ndarray((record.rows, dimension), dtype="<f4", buffer=mapped, offset=ROWS_OFFSET)
                new = NewFiles()
                with new.written():
                    tmp, final = new_index_file(path, EXACT)
                    written = write_rows_file(rows, new.claim(tmp, final), final, sketch=True)
                    del rows
                    if written.rows_checksum != rows_part_checksum(fd, record.rows, dimension):  # changed meanwhile
                        raise StoreChangedError(f"the rows file {file.name} changed while its sketch was written")
                    with catalog.commit_at(generation, "the sketch was being written again"):
                        catalog.record_index_file(record_written(
                            EXACT, written, params=record.params, generation=record.generation + 1,
                            rows_generation=record.rows_generation, recall=record.recall))
        finally:
            os.close(fd)
    finally:
        catalog.close()
    remove_files(own_paths(path, [(EXACT, record.file)]))
    return True, f"wrote the rows' sketch again from the intact rows ({written.path.name})"
