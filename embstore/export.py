"""Export: a store's vectors as word2vec text or binary, GloVe text or .npy, without ever
writing over the store itself or anything that is not a regular file."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .errors import StoreError
from .formats import write_embeddings
from .formats.writing import vocabulary_path_for_npy
from .search.searcher import Searcher
from .storage.file_names import is_store_file
from .vocabulary.vocabulary import Vocabulary, word_list

STDOUT = "-"


def check_export_target(output: Path, store: Path) -> None:
    """Refuse an output that is the store's catalog, its WAL or SHM file, one of its index
    files, or an existing path that is not a regular file (a device, a FIFO, a folder)."""
    target = Path(os.path.realpath(output))
    if is_store_file(store, output):
        raise StoreError(f"refusing to export to {output}: it is one of the store's own files; choose another name")
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise StoreError(f"refusing to export to {output}: it exists and is not a regular file "
                         f"(use '{STDOUT}' to write to standard output)")


def iter_vectors(vocabulary: Vocabulary, searcher: Searcher, words: Sequence[str] | None = None,
                 batch: int = 50_000) -> Iterator[tuple[list[str], np.ndarray]]:
    """Yield (words, original vectors) chunks: all words in ID order, or just ``words``."""
    if words is None:
        for ids, chunk_words, norms in vocabulary.catalog.iter_words(batch):
            if searcher.raw_rows:
                yield chunk_words, searcher.rows[ids[0]: ids[-1] + 1]
            else:
                rows = searcher.rows[ids[0]: ids[-1] + 1].astype(np.float64)
                yield chunk_words, (rows * norms[:, None]).astype(np.float32)
        return
    words = word_list(words, "words")
    for start in range(0, len(words), batch):
        resolved = vocabulary.resolve_many(words[start: start + batch])
        ids = [r.id for r in resolved]
        stored = searcher.stored_vectors(ids)
        yield [r.word for r in resolved], stored if stored is not None else (
            searcher.rows[ids].astype(np.float64) * vocabulary.norms(ids)[:, None]).astype(np.float32)


def export_store(store: Path, vocabulary: Vocabulary, searcher: Searcher, output: str | os.PathLike, format: str,
                 words: Sequence[str] | None = None, case_insensitive: bool = False) -> list[Path]:
    """Write the store (or only ``words``) to ``output`` ('-' for standard output, text and
    word2vec binary only). Unknown words raise UnknownWordError before anything is written.
    Files are written to a temporary name and renamed into place; an .npy matrix and its
    word list are renamed vocabulary first, matrix last, after the old matrix is removed, so
    that no kill leaves a matrix beside another export's words. Returns the files written."""
    if words is not None:
        words = list(dict.fromkeys(r.word for r in vocabulary.resolve_many(word_list(words, "words"),
                                                                           case_insensitive=case_insensitive)))
    count = len(vocabulary) if words is None else len(words)
    chunks = iter_vectors(vocabulary, searcher, words)
    if str(output) == STDOUT:
        if format == "npy":
            raise StoreError("an .npy export needs a file name (its words go to a second file beside it)")
        write_embeddings(sys.stdout.buffer, format, chunks, count, searcher.dimension)
        return []
    output = Path(output)
    check_export_target(output, store)
    if format == "npy":
        check_export_target(vocabulary_path_for_npy(output), store)
    return write_embeddings(output, format, chunks, count, searcher.dimension)
