"""gensim's ``load_word2vec_format`` and ``save_word2vec_format`` for the ``KeyedVectors`` view.

Loading makes a store (at ``db``, or in a temporary folder owned by the view) and opens it.
Saving streams the store in ID order (or by descending count, as gensim sorts), every value
exact: binary rows as stored, text values as the shortest decimal of each float32.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from ..formats.float_text import format_rows
from ..formats.writing import COMPRESSORS
from ..store import Store

REAL = np.float32
SAVE_BATCH = 50_000


def load(cls, fname, *, fvocab, binary, encoding, unicode_errors, limit, datatype, no_header, db, replace):
    if str(encoding).replace("-", "").lower() != "utf8":
        raise NotImplementedError(f"embstore reads words as UTF-8, not {encoding!r}: convert the file first "
                                  "(for example with iconv)")
    if np.dtype(datatype) != np.float32:
        raise NotImplementedError("a store keeps float32 rows; datatype must be numpy.float32")
    if binary and no_header:
        raise NotImplementedError("no_header=True works only with binary=False, as in gensim")
    file_format = "word2vec-bin" if binary else ("glove" if no_header else "word2vec")
    folder = None
    if db is None:
        folder = tempfile.mkdtemp(prefix="embstore-kv-")
        db = Path(folder) / "vectors.db"
    try:
        Store.load(fname, db, format=file_format, limit=limit, unicode_errors=unicode_errors, counts=fvocab,
                   replace=replace)
        view = cls.open(db)
    except BaseException:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    if folder:  # the store lives as long as the view
        view._finalizer = weakref.finalize(view, _close_and_remove, view.store, folder)
    return view


def create(view, keys: list, rows: np.ndarray) -> None:
    """Make the store of an empty ``KeyedVectors(vector_size)`` from its first keys and rows
    (through a word2vec binary file, so that it is loaded like any other)."""
    rows = rows.reshape(len(keys), -1) if rows.ndim == 1 else rows
    if rows.shape != (len(keys), view.vector_size):
        raise ValueError(f"expected {len(keys)} vectors of {view.vector_size} values, got shape {rows.shape}")
    folder = tempfile.mkdtemp(prefix="embstore-kv-")
    try:
        source = Path(folder) / "first.bin"
        with open(source, "wb") as out:
            out.write(f"{len(keys)} {view.vector_size}\n".encode("utf-8"))
            for key, row in zip(keys, np.ascontiguousarray(rows, dtype="<f4")):
                if not isinstance(key, str):
                    raise TypeError(f"a store's keys are words (strings), not {type(key).__name__}")
                out.write(key.encode("utf-8") + b" " + row.tobytes() + b"\n")
        db = view._db if view._db is not None else Path(folder) / "vectors.db"
        Store.load(source, db, format="word2vec-bin")
        source.unlink()
        view._store = Store.open(db)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if view._db is not None:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        view._finalizer = weakref.finalize(view, _close_and_remove, view._store, folder)


def _close_and_remove(store: Store, folder: str) -> None:
    store.close()
    shutil.rmtree(folder, ignore_errors=True)


def save(view, fname, *, fvocab, binary, total_vec, write_header, prefix, append, sort_attr):
    store = view.store
    size = len(store)
    total_vec = size if total_vec is None else total_vec
    order = None  # ID order, unless counts say otherwise
    if sort_attr == "count":
        counts = view.expandos["count"]
        if size and np.any(np.diff(counts) > 0):
            order = np.argsort(-counts, kind="stable")
    elif sort_attr is not None:
        raise ValueError(f"Cannot sort by {sort_attr!r}: the only stored attribute is 'count'")
    mode = "ab" if append else "wb"
    if fvocab is not None:  # words without a count (a store loaded with a partial counts file) are left out
        counts = view.expandos["count"]
        with _open_for_writing(fvocab, mode) as out:
            for start in range(0, size, SAVE_BATCH):
                ids = np.arange(start, min(start + SAVE_BATCH, size)) if order is None else order[start: start + SAVE_BATCH]
                words = store.vocab.words_for(ids.tolist())
                out.write("".join(f"{prefix}{words[i]} {counts[i]}\n" for i in ids.tolist()
                                  if counts[i] >= 0).encode("utf-8"))
    with _open_for_writing(fname, mode) as out:
        if write_header:
            out.write(f"{total_vec} {view.vector_size}\n".encode("utf-8"))
        vectors = view.vectors
        for start in range(0, size, SAVE_BATCH):
            ids = np.arange(start, min(start + SAVE_BATCH, size)) if order is None else order[start: start + SAVE_BATCH]
            words = store.vocab.words_for(ids.tolist())
            keys = [prefix + words[i] for i in ids.tolist()]
            rows = np.ascontiguousarray(vectors[ids], dtype="<f4")
            if binary:
                out.write(b"".join(key.encode("utf-8") + b" " + row.tobytes() for key, row in zip(keys, rows)))
            else:
                out.write(("\n".join(format_rows(keys, rows)) + "\n").encode("utf-8"))
        out.flush()


@contextlib.contextmanager
def _open_for_writing(path, mode: str) -> Iterator[BinaryIO]:
    """``path`` opened for writing, compressed when its name ends in .gz, .bz2 or .xz, as gensim does."""
    with open(path, mode) as raw:
        compress = COMPRESSORS.get(Path(path).suffix.lower())
        if compress is None:
            yield raw
        else:
            with compress(raw) as stream:
                yield stream
        raw.flush()
        os.fsync(raw.fileno())
