"""Changing words in place: add, append a file, delete, rename.

Each change reads one generation (``StoreFiles``), writes its new files outside the write
lock, and commits only if the store is still at that generation. Deleting renumbers IDs
densely in the old order: rows are compacted here, the catalog in one pass
(``Catalog.delete_words_renumbering``); both are O(N). Adding appends rows with the next
IDs and extends each current approximate index; any other change to the rows leaves
approximate indexes stale until they are rebuilt (``embstore index build``). A sharded
store's shard rows are written again with the rows, in the same commit; its shard graphs
go stale.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Sequence

import numpy as np

from ..errors import FormatError, QueryError, StoreError
from ..formats import EmbeddingReader
from ..search import index_kinds
from ..storage.catalog import Catalog
from ..storage.file_names import (NewFiles, is_store_file, leftover_files, new_index_file, own_paths,
                                  own_shard_paths, remove_files)
from ..row_norms import float64_norms, row_norms, usable_lengths
from ..storage.index_files import LENGTH_PROBLEM, write_index_file, write_rows_file
from ..storage.store_files import StoreFiles
from ..storage.store_meta import EXACT, changes_since_load
from ..vocabulary.vocabulary import Vocabulary, word_list, word_problem
from .loading import record_written
from .sharding import write_exact_shards


def check_new_word(word: object, source: str) -> str:
    """``word`` if it may be stored (``word_problem``), else QueryError naming it."""
    problem = word_problem(word)
    if problem:
        raise QueryError(f"{source}: word {word!r:.60} {problem}; a word has no white space or control characters")
    return word


class WordChanges:
    """Changes to the words of the generation ``files`` holds; each is one atomic commit."""

    def __init__(self, files: StoreFiles, vocabulary: Vocabulary, catalog: Catalog):
        """``files`` and ``vocabulary``: the generation the change reads; ``catalog``: a connection
        of its own that writes (the readers' snapshot is never released by a write)."""
        self.files = files
        self.vocabulary = vocabulary
        self.catalog = catalog
        self.path = files.path

    def _rows(self) -> np.ndarray:
        if self.files.rows is None:
            raise QueryError(f"{self.path} keeps only {self.files.meta.storage} codes; adding or deleting words "
                             "needs exact rows: load the source again without --storage")
        return self.files.rows

    def _commit(self, doing: str, new_rows: np.ndarray | None, change: Callable[[Catalog], None],
                counts: dict[str, int], appended: np.ndarray | None = None) -> None:
        """Write ``new_rows`` (the new exact rows, if the rows change) and the approximate
        indexes extended by ``appended``, then commit ``change`` if the store is still at this
        generation. Old files are removed after the commit."""
        files = self.files
        new = NewFiles()
        records = []
        shards = files.shard_layout().exact if new_rows is not None and files.catalog.shard_rows() else ()
        with new.written():
            rows_generation = files.meta.rows_generation + (new_rows is not None)
            if new_rows is not None:
                files.rows_verified("this change")
                old = files.records[EXACT]
                tmp, final = new_index_file(self.path, EXACT)
                written = write_rows_file(new_rows, new.claim(tmp, final), final, sketch=files.sketch is not None)
                records.append(record_written(EXACT, written, params=old.params, generation=old.generation + 1,
                                              rows_generation=rows_generation, recall=old.recall))
                for kind, record in files.records.items():
                    if kind == EXACT or appended is None or not files.is_current(kind):
                        continue
                    index = files.private_index(kind)  # a private copy that can grow
                    index_kinds.add_rows(kind, index, record.params, appended)
                    tmp, final = new_index_file(self.path, kind)
                    written = write_index_file(index, new.claim(tmp, final), final)
                    records.append(record_written(kind, written, params=record.params, recall=record.recall,
                                                  generation=record.generation + 1, rows_generation=rows_generation))
                if shards:  # a sharded store: its shard rows change with its rows, in the same commit
                    shards = write_exact_shards(self.path, new_rows, shards[0].shards, rows_generation, new)
            replaced = [files.records[r.kind] for r in records]
            catalog = self.catalog
            with catalog.commit_at(files.generation, doing):
                change(catalog)
                catalog.record_words_digest()
                for record in records:
                    catalog.record_index_file(record)
                old_shards = catalog.record_shards(EXACT, shards) if shards else []
                totals = changes_since_load(catalog.meta())
                catalog.set_meta(rows_generation=rows_generation, changes_since_load=json.dumps(
                    {key: totals[key] + counts.get(key, 0) for key in totals}))
                count, low, high = catalog.word_stats()
                expected = records[0].rows if new_rows is not None else files.size
                if count != expected or (count and (low, high) != (0, count - 1)):
                    raise StoreError(f"internal error: the change left {count} words for {expected} rows; "
                                     "nothing was changed")
                leftovers = leftover_files(self.path, catalog.recorded_file_names())
        remove_files(own_paths(self.path, [(r.kind, r.file) for r in replaced]) + own_shard_paths(self.path, old_shards)
                     + leftovers)

    def add_words(self, words: Sequence[str], vectors: np.ndarray, on_duplicate: str = "error",
                  source: str = "add") -> dict:
        """Add words with their vectors in one atomic change; see ``Store.add_words``."""
        if on_duplicate not in ("error", "skip", "replace"):
            raise QueryError("on_duplicate must be error, skip or replace")
        words = [check_new_word(w, source) for w in word_list(words, "add_words")]
        new_rows, unit_rows, norms = checked_rows(words, vectors, self.files.dimension, source)
        if not self.files.meta.raw_rows:  # a store from before 0.2 keeps unit rows
            new_rows = unit_rows
        existing = self.vocabulary.exact_ids(words)
        if existing and on_duplicate == "error":
            shown = ", ".join(repr(w) for w in list(existing)[:5])
            raise QueryError(f"{source}: {len(existing)} word(s) already in the store ({shown}); "
                             "choose on_duplicate='skip' or 'replace' (--on-duplicate)")
        new_positions: dict[str, int] = {}
        replaced: dict[int, int] = {}
        for position, word in enumerate(words):
            if word in existing:
                if on_duplicate == "replace":
                    replaced[existing[word]] = position
            elif word not in new_positions:
                new_positions[word] = position
        chosen = list(new_positions.values())
        if not chosen and not replaced:
            return {"added": 0, "replaced": 0, "skipped": len(words)}
        rows = self._rows()
        if replaced:
            rows = np.array(rows)
            for word_id, position in replaced.items():
                rows[word_id] = new_rows[position]
        appended = unit_rows[chosen]
        start = self.files.size

        def change(catalog: Catalog) -> None:
            ids = range(start, start + len(chosen))
            catalog.insert_words(ids, [words[p] for p in chosen], ids, norms[chosen].tolist())
            catalog.update_norms(list(replaced), [norms[p] for p in replaced.values()])

        self._commit("words were being added", np.concatenate([rows, new_rows[chosen]]), change,
                     {"added": len(chosen), "replaced": len(replaced)}, appended=None if replaced else appended)
        return {"added": len(chosen), "replaced": len(replaced), "skipped": len(words) - len(chosen) - len(replaced)}

    def append_file(self, source: str | os.PathLike, *, format: str | None = None, limit: int | None = None,
                    unicode_errors: str = "strict", on_duplicate: str = "skip") -> dict:
        """Add the words of an embedding file (``load --append``); one atomic change."""
        if os.path.lexists(source) and is_store_file(self.path, source):
            raise StoreError(f"{source} is one of the store's own files, not an embedding file to append")
        words: list[str] = []
        blocks: list[np.ndarray] = []
        with EmbeddingReader(source, format, limit=limit, unicode_errors=unicode_errors) as reader:
            if reader.dimension != self.files.dimension:
                raise FormatError(reader.name, 1, f"has dimension {reader.dimension}; this store's is "
                                                  f"{self.files.dimension}")
            seen: set[str] = set()
            for chunk in reader.chunks():
                zero = np.flatnonzero(~np.any(chunk.vectors, axis=1))
                if len(zero):
                    raise FormatError(reader.name, int(chunk.lines[zero[0]]),
                                      f"the vector of {chunk.words[zero[0]]!r} is all zeros")
                keep = [i for i, w in enumerate(chunk.words) if not (w in seen or seen.add(w))]
                words.extend(chunk.words[i] for i in keep)
                blocks.append(chunk.vectors[keep])
        return self.add_words(words, np.concatenate(blocks), on_duplicate=on_duplicate, source=str(source))

    def delete_words(self, words: Sequence[str]) -> int:
        """Delete words (exact spelling) in one atomic change; later IDs move down to stay dense."""
        words = word_list(words, "delete_words")
        found = self.vocabulary.exact_ids(words)
        missing = [w for w in words if w not in found]
        if missing:
            raise self.vocabulary.unknown(missing[0])
        doomed = sorted(set(found.values()))
        if len(doomed) >= self.files.size:
            raise QueryError("cannot delete every word of a store; load another file in its place (replace=True, --replace) instead")
        if not doomed:
            return 0
        keep = np.ones(self.files.size, dtype=bool)
        keep[doomed] = False
        self._commit("words were being deleted", self._rows()[keep], lambda c: c.delete_words_renumbering(doomed),
                     {"deleted": len(doomed)})
        return len(doomed)

    def rename_word(self, old: str, new: str) -> None:
        """Give a word a new spelling; its ID and vector stay."""
        check_new_word(new, "rename")
        found = self.vocabulary.exact_ids([old, new])
        if old not in found:
            raise self.vocabulary.unknown(old)
        if new in found:
            raise QueryError(f"{new!r} is already in the store")
        self._commit("a word was being renamed", None, lambda catalog: catalog.rename_word(found[old], new),
                     {"renamed": 1})


def checked_rows(words: Sequence[str], vectors: np.ndarray, dimension: int, source: str
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows as given in float32, the same at unit length, their float64 norms); QueryError
    for a shape that is not one row of ``dimension`` values per word, or a zero or
    non-finite vector. One word may come with a 1-D vector."""
    try:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)  # einsum sums a Fortran-ordered array otherwise
    except (TypeError, ValueError):
        raise QueryError(f"{source}: vectors must be numbers, one row of {dimension} values per word") from None
    if vectors.ndim == 1 and len(words) == 1:
        vectors = vectors[None, :]
    if vectors.ndim != 2 or vectors.shape[1] != dimension or vectors.shape[0] != len(words):
        raise QueryError(f"{source}: give one vector of {dimension} values (this store's dimension) for each word: "
                         f"a 2-D array of shape ({len(words)}, {dimension}); got shape {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise QueryError(f"{source}: vectors must be finite numbers")
    norms = float64_norms(vectors)  # the same bits a load records for the same vector
    if (norms == 0).any():
        word = words[int(np.flatnonzero(norms == 0)[0])]
        raise QueryError(f"{source}: the vector of {word!r} is all zeros, which has no direction")
    unusable = np.flatnonzero(~usable_lengths(vectors))
    if len(unusable):
        raise QueryError(f"{source}: the vector of {words[int(unusable[0])]!r} {LENGTH_PROBLEM}")
    return vectors, vectors / row_norms(vectors)[:, None], norms
