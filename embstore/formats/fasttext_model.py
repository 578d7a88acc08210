"""Read fastText's native ``.bin`` models: the word vectors fastText computes, plus the n-gram
bucket matrix that gives any other word a vector.

Layout (fastText's ``FastText::saveModel``; gensim's ``_fasttext_bin``), all little-endian:

- versions 11 and 12: int32 magic 793712314, int32 version, then the arguments: 12 int32
  (dim, ws, epoch, minCount, neg, wordNgrams, loss, model, bucket, minn, maxn,
  lrUpdateRate) and a float64 (t). Files from before version numbers (fastText < 0.2)
  start straight with the arguments.
- the dictionary: int32 size, nwords, nlabels; int64 ntokens; (versioned) int64
  pruneidx_size; then each entry: its UTF-8 bytes, a 0 byte, int64 count, int8 type
  (0 word, 1 label); (versioned) pruneidx_size pairs of int32.
- (versioned) bool quant_input; the input matrix: int64 rows, int64 cols, rows*cols
  float32: the ``nwords`` word rows, then the ``bucket`` n-gram rows.
- (versioned) bool qout; the output matrix, same shape rules (not needed here).

A word in the vocabulary gets fastText's vector: the mean of its word row and its n-gram
rows. Nothing here knows of SQLite or FAISS: ``chunks()`` yields words and vectors like
the text readers, and ``bucket_rows`` maps the n-gram rows from the file for the caller to
copy. Memory is bounded: the vocabulary is held as one byte string, rows are read per chunk.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import FormatError
from ..subwords.compose import SubwordVectors
from ..subwords.ngrams import HASH_NAME
from .chunk import Chunk

FASTTEXT_FORMAT = "fasttext-bin"
MAGIC = 793712314
VERSIONS = (11, 12)
MODEL_NAMES = {1: "cbow", 2: "skipgram", 3: "supervised"}
_ARGS = struct.Struct("<12id")
_DICT_HEAD = struct.Struct("<3iq")
_ENTRY_TAIL = struct.Struct("<qb")
MAX_DIMENSION = 100_000  # for recognising a header; a store holds at most STORED_DIMENSION
STORED_DIMENSION = 65_536  # as storage/store_meta.py (formats know nothing of storage)
MAX_WORD_BYTES = 1 << 16
CHUNK_WORDS = 20_000
CHUNK_BYTES = 16 << 20  # word rows read at once
_READ_BLOCK = 4 << 20
SUPPORTED = ("embstore reads fastText's unsupervised models (cbow or skipgram, from 'fasttext skipgram' or "
             "'fasttext cbow', or gensim's save_facebook_model): versions 11 and 12 and the format before "
             "version numbers, not quantized")


@dataclass(frozen=True)
class SubwordSettings:
    """What a model's n-grams need: the recorded parameters of its bucket matrix."""

    minn: int
    maxn: int
    bucket: int
    dimension: int
    hash: str = HASH_NAME

    def as_params(self) -> dict:
        return {"minn": self.minn, "maxn": self.maxn, "bucket": self.bucket, "dimension": self.dimension,
                "hash": self.hash}


def is_fasttext_model(head: bytes) -> bool:
    """Whether the first bytes of a file are a fastText model's: the magic number, or the
    arguments of the format before it (plausible values throughout, which no text file has)."""
    if len(head) >= 8 and struct.unpack_from("<i", head)[0] == MAGIC:
        return True
    return _plausible_arguments(head, 0) is not None


def _plausible_arguments(head: bytes, offset: int) -> tuple | None:
    if len(head) < offset + _ARGS.size:
        return None
    args = _ARGS.unpack_from(head, offset)
    dim, ws, epoch, min_count, neg, word_ngrams, loss, model, bucket, minn, maxn, lr_update, t = args
    plausible = (0 < dim <= MAX_DIMENSION and 0 < ws < 10_000 and 0 < epoch < 1_000_000 and 0 <= min_count
                 and 0 <= neg < 100_000 and 0 < word_ngrams < 100 and loss in (1, 2, 3, 4) and model in MODEL_NAMES
                 and 0 <= bucket < 1 << 31 and 0 <= minn <= maxn < 1_000 and 0 <= lr_update and 0.0 <= t < 1.0)
    return args if plausible else None


class FastTextModelReader:
    """One fastText ``.bin`` model, parsed and checked on construction (sizes, header,
    dictionary, matrix shapes, total length), so that a damaged file is refused before any
    store is written. Has the text readers' interface (``format``, ``dimension``,
    ``chunks()``, progress) plus ``subwords`` and ``bucket_rows()``."""

    format = FASTTEXT_FORMAT

    def __init__(self, path: str | os.PathLike, *, limit: int | None = None, unicode_errors: str = "strict",
                 encoding: str = "utf-8"):
        self.path = Path(path)
        self.name = str(path)
        self.limit = limit
        self.unicode_errors = unicode_errors
        self.encoding = encoding
        self.notes: list[str] = []
        self.rows_read = 0
        self._buckets_checked = False
        self._handle = open(self.path, "rb")
        try:
            self.total_bytes = os.fstat(self._handle.fileno()).st_size
            self._parse()
        except BaseException:
            self._handle.close()
            raise
        self.bytes_read = 0

    # -- plumbing ---------------------------------------------------------------------

    def __enter__(self) -> "FastTextModelReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._handle.close()

    def _fail(self, message: str, hint: str | None = None) -> FormatError:
        return FormatError(self.name, None, message, hint=hint)

    def _read_exactly(self, size: int, what: str) -> bytes:
        data = self._handle.read(size)
        if len(data) != size:
            raise self._fail(f"is truncated: it ends inside {what} (the file is {self.total_bytes:,} bytes)",
                             hint="the download or copy did not finish; fetch the model again")
        return data

    # -- parsing ----------------------------------------------------------------------

    def _parse(self) -> None:
        head = self._read_exactly(8, "the header")
        magic, version = struct.unpack("<2i", head)
        self.versioned = magic == MAGIC
        if self.versioned:
            if version not in VERSIONS:
                raise self._fail(f"is a fastText model of file format version {version}", hint=SUPPORTED)
            self.version = version
            args = _plausible_arguments(self._read_exactly(_ARGS.size, "the model's arguments"), 0)
            if args is None:
                raise self._fail("is a fastText model whose arguments are damaged (implausible values)")
        else:
            self.version = None
            rest = self._read_exactly(_ARGS.size - 8, "the model's arguments")
            args = _plausible_arguments(head + rest, 0)
            if args is None:
                raise self._fail("is not a fastText model")
        dim, _, _, _, _, _, _, model, bucket, minn, maxn, _, _ = args
        if model == 3:
            raise self._fail("is a supervised fastText model (a text classifier), not word vectors", hint=SUPPORTED)
        self.model = MODEL_NAMES[model]
        if dim > STORED_DIMENSION:
            raise self._fail(f"has vectors of {dim:,} values; a store holds at most {STORED_DIMENSION:,}")
        self.dimension = dim
        self._parse_dictionary()
        if self.versioned and self._read_exactly(1, "the input matrix header") != b"\x00":
            raise self._fail("is a quantized fastText model (.ftz): its vectors are compressed codes",
                             hint="use the full .bin model, or the .vec file published beside it")
        rows, cols = struct.unpack("<2q", self._read_exactly(16, "the input matrix header"))
        if cols != dim or rows != self.nwords + bucket:
            raise self._fail(f"has an input matrix of {rows:,} x {cols} where its header implies "
                             f"{self.nwords + bucket:,} x {dim} (words + n-gram buckets)")
        self.matrix_offset = self._handle.tell()
        after_input = self.matrix_offset + 4 * rows * cols
        self.subwords = SubwordSettings(minn=minn, maxn=maxn, bucket=bucket, dimension=dim)
        self._check_length(after_input)
        self.declared_count = self.nwords
        self.count = self.expected_rows = self.nwords if self.limit is None else min(self.nwords, self.limit)
        what = "versioned" if self.versioned else "pre-0.2"
        self.description = (f"fastText {self.model} model ({what} format{f' {self.version}' if self.version else ''}), "
                            f"{self.nwords:,} words x {dim}, {bucket:,} n-gram buckets, n-grams of {minn} to {maxn} "
                            "characters")

    def _parse_dictionary(self) -> None:
        size, nwords, nlabels, _ = _DICT_HEAD.unpack(self._read_exactly(_DICT_HEAD.size, "the dictionary header"))
        if nlabels > 0:
            raise self._fail(f"is a supervised fastText model ({nlabels:,} labels), not word vectors", hint=SUPPORTED)
        if not 0 < nwords == size:
            raise self._fail(f"has a damaged dictionary header ({size:,} entries, {nwords:,} words, "
                             f"{nlabels:,} labels)")
        if size * 10 > self.total_bytes:  # each entry takes at least 10 bytes, and each word a row
            raise self._fail(f"is truncated or damaged: its dictionary lists {size:,} words, which cannot fit in "
                             f"{self.total_bytes:,} bytes", hint="the download or copy did not finish; fetch the model again")
        prune = struct.unpack("<q", self._read_exactly(8, "the dictionary header"))[0] if self.versioned else -1
        if prune > 0:
            raise self._fail("is a pruned (quantized) fastText model", hint=SUPPORTED)
        self.nwords = nwords
        starts = np.empty(nwords + 1, dtype=np.int64)
        counts = np.empty(nwords, dtype=np.int64)
        blob = bytearray()
        pending = b""
        position = 0
        for entry in range(nwords):
            end = pending.find(b"\x00", position)
            while end < 0 or len(pending) < end + 1 + _ENTRY_TAIL.size:
                if len(pending) - position > MAX_WORD_BYTES:
                    raise self._fail(f"dictionary entry {entry + 1:,} is longer than {MAX_WORD_BYTES:,} bytes; "
                                     "the dictionary is damaged")
                more = self._handle.read(_READ_BLOCK)
                if not more:
                    raise self._fail(f"is truncated: it ends inside dictionary entry {entry + 1:,} of {nwords:,}",
                                     hint="the download or copy did not finish; fetch the model again")
                pending = pending[position:] + more
                position = 0
                end = pending.find(b"\x00")
            word = pending[position:end]
            count, kind = _ENTRY_TAIL.unpack_from(pending, end + 1)
            if kind != 0 or count < 0:
                raise self._fail(f"dictionary entry {entry + 1:,} is damaged (type {kind}, count {count})")
            starts[entry] = len(blob)
            counts[entry] = count
            blob += word
            position = end + 1 + _ENTRY_TAIL.size
        starts[nwords] = len(blob)
        self._handle.seek(self._handle.tell() - (len(pending) - position))
        self._blob = bytes(blob)
        self._starts = starts
        self.counts = counts

    def _check_length(self, after_input: int) -> None:
        """The file must end exactly after the output matrix: shorter is a truncated file
        (whose rows would be garbage), longer is not a fastText model."""
        if after_input + (1 if self.versioned else 0) + 16 > self.total_bytes:
            raise self._fail(f"is truncated: the input matrix needs {after_input:,} bytes; the file has "
                             f"{self.total_bytes:,}", hint="the download or copy did not finish; fetch the model again")
        self._handle.seek(after_input)
        if self.versioned:
            self._read_exactly(1, "the output matrix header")
        rows, cols = struct.unpack("<2q", self._read_exactly(16, "the output matrix header"))
        expected = self._handle.tell() + 4 * rows * cols
        if rows < 0 or cols != self.dimension or expected != self.total_bytes:
            raise self._fail(f"is {self.total_bytes:,} bytes, but its output matrix ({rows:,} x {cols}) ends at byte "
                             f"{expected:,}: the file is truncated or damaged",
                             hint="the download or copy did not finish; fetch the model again")

    # -- reading ----------------------------------------------------------------------

    def word(self, index: int) -> str:
        raw = self._blob[self._starts[index]: self._starts[index + 1]]
        try:
            return raw.decode(self.encoding, self.unicode_errors)
        except UnicodeDecodeError as exc:
            raise FormatError(self.name, index + 1, f"word {raw[:40]!r} is not valid {self.encoding} ({exc.reason})",
                              hint="give its encoding (--encoding, as gensim's encoding=), or "
                                   "--unicode-errors replace", unit="entry") from None

    def bucket_rows(self) -> np.ndarray:
        """The n-gram bucket matrix (bucket x dimension float32), mapped read-only from the file."""
        if self.subwords.bucket == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.memmap(self.path, dtype="<f4", mode="r", shape=(self.subwords.bucket, self.dimension),
                         offset=self.matrix_offset + 4 * self.nwords * self.dimension)

    def _check_finite(self, rows: np.ndarray, start: int, where: str) -> None:
        bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
        if bad.size:
            entry = start + int(bad[0])
            raise FormatError(self.name, entry + 1, f"the vector of {self.word(entry)!r:.60} is not finite: {where} "
                                                    "hold NaN or an infinite value", unit="entry",
                              hint="the model file is damaged; fetch it again")

    def check_bucket_rows(self, block_rows: int = 65_536) -> None:
        """FormatError naming the first n-gram bucket row that holds NaN or an infinite value
        (once per reader; the pass also brings the rows into the page cache for what follows)."""
        if self._buckets_checked:
            return
        self._buckets_checked = True
        buckets = self.bucket_rows()
        for start in range(0, buckets.shape[0], block_rows):
            bad = np.flatnonzero(~np.isfinite(buckets[start: start + block_rows]).all(axis=1))
            if bad.size:
                raise FormatError(self.name, None, f"n-gram bucket row {start + int(bad[0]):,} holds NaN or an "
                                                   "infinite value", hint="the model file is damaged; fetch it again")

    @property
    def bucket_offset(self) -> int:
        """Where the bucket rows start in the file."""
        return self.matrix_offset + 4 * self.nwords * self.dimension

    def chunks(self) -> Iterator[Chunk]:
        """The words in the model's order with the vectors fastText gives them (word row and
        n-gram rows averaged), ``lines`` holding each word's 1-based dictionary entry."""
        self.check_bucket_rows()  # first: a bad n-gram row is named as such, not as the first word using it
        composer = SubwordVectors(self.bucket_rows(), self.subwords.minn, self.subwords.maxn)
        row_bytes = 4 * self.dimension
        step = max(1, min(CHUNK_WORDS, CHUNK_BYTES // row_bytes))  # bounded whatever the dimension
        for start in range(0, self.count, step):
            stop = min(start + step, self.count)
            words = [self.word(i) for i in range(start, stop)]
            self._handle.seek(self.matrix_offset + start * row_bytes)
            raw = self._read_exactly((stop - start) * row_bytes, "the word rows")
            rows = np.frombuffer(raw, dtype="<f4").reshape(stop - start, self.dimension)
            self._check_finite(rows, start, "its word row")
            vectors = composer.compose(words, rows)
            self._check_finite(vectors, start, "its n-gram rows")
            self.rows_read = stop
            self.bytes_read = int(self.total_bytes * stop / max(self.count, 1))
            yield Chunk(words, vectors, np.arange(start + 1, stop + 1, dtype=np.int64), self.counts[start:stop])
