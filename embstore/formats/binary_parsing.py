"""Parsing of word2vec binary files: a mixin of ``EmbeddingReader`` that reads entries
('word', a space, ``dimension`` little-endian float32 values) in bounded chunks."""

from __future__ import annotations

import functools
import itertools
import operator
import re
from typing import Iterator

import numpy as np

from ..errors import FormatError
from .chunk import Chunk

MAX_WORD_BYTES = 1 << 20        # binary: a longer word means the file is not what it claims


@functools.lru_cache(maxsize=8)
def _entry_pattern(row_bytes: int, max_word_bytes: int) -> re.Pattern:
    """One whole entry, as the entry loop reads it: a space within ``max_word_bytes`` of the
    entry's start (the newlines that end the previous vector count, as in the loop's ``find``),
    the word after those newlines, the space, then exactly ``row_bytes`` bytes of vector.

    The word cannot start with a newline, so nothing the ``\n*`` gives back can be taken again
    by the word: a failed match costs time in proportion to the bytes it looked at, never more
    (a run of newlines would otherwise be scanned once for each newline in it)."""
    return re.compile(rb"(?=[^ ]{0,%d} )\n*((?:[^ \n][^ ]*)?) (?s:.{%d})" % (max_word_bytes - 1, row_bytes))


class BinaryParsing:
    def _binary_chunks(self) -> Iterator[Chunk]:
        row_bytes = 4 * self.dimension
        wanted = self.expected_rows
        rows_per_chunk = max(1, self.chunk_bytes // row_bytes)
        entry = 0
        while entry < wanted:
            first = entry
            words: list[bytes] = []
            starts: list[int] = []  # where each vector begins in ``data``
            self._fill(self.chunk_bytes)
            data = self._pending
            find, size, position = data.find, len(data), 0
            last = min(wanted, first + rows_per_chunk)
            # The bulk of the chunk in C: anchored matches one after another, so each entry starts
            # where the previous one ended, exactly as the loop below steps; the loop then takes
            # what is left (a partial entry, or the one that is wrong, which it reports).
            scanner = _entry_pattern(row_bytes, MAX_WORD_BYTES).scanner(data)
            matches = list(itertools.islice(iter(scanner.match, None), last - entry))
            if matches:
                words = list(map(operator.itemgetter(1), matches))
                ends = list(map(operator.methodcaller("end"), matches))
                starts = [end - row_bytes for end in ends]
                position = ends[-1]
                entry += len(matches)
                del matches
            while entry < last:
                space = find(b" ", position, position + MAX_WORD_BYTES)
                end = space + 1 + row_bytes
                if space < 0 or end > size:
                    if self._eof or (space < 0 and size - position >= MAX_WORD_BYTES):
                        self._check_words(words, first)
                        self._binary_truncated(entry + 1, data[position:], row_bytes)
                    break
                words.append(data[position:space].lstrip(b"\n"))
                starts.append(space + 1)
                position = end
                entry += 1
            self._pending = data[position:]
            if not words:
                self._fill(len(self._pending) + self.chunk_bytes)
                continue
            words = self._check_words(words, first)
            # One gather copies every vector out of the buffer: each row of this strided
            # view is the row_bytes that start at one byte offset.
            windows = np.lib.stride_tricks.as_strided(
                np.frombuffer(data, dtype=np.uint8), shape=(size - row_bytes + 1, row_bytes), strides=(1, 1))
            vectors = windows[np.asarray(starts)].view("<f4").astype(np.float32, copy=False)
            numbers = np.arange(first + 1, entry + 1, dtype=np.int64)
            decoded = self._decode_words(words, numbers, unit="entry")
            self._check_finite(vectors, numbers, decoded, unit="entry")
            self.rows_read += len(decoded)
            yield Chunk(decoded, vectors, numbers)
        if self.limit is None or self.rows_read < self.limit:
            self._fill(1 << 16)
            if self._pending.strip():
                raise FormatError(
                    self.name, 1, f"more data follows the {self.declared_count:,} entries the header declares"
                )

    def _check_words(self, words: list[bytes], first: int) -> list[bytes]:
        """The words (each already without the newline that ends the previous vector); raise at
        the first empty one."""
        if not all(words):
            raise FormatError(self.name, first + 1 + words.index(b""), "the word is empty", unit="entry")
        return words

    def _binary_truncated(self, entry: int, tail: bytes, row_bytes: int) -> None:
        if not tail.strip():
            raise FormatError(
                self.name, 1,
                f"header declares {self.declared_count:,} words but the file holds {entry - 1:,}",
            )
        space = tail.find(b" ")
        if space < 0:
            if len(tail) >= MAX_WORD_BYTES:
                raise FormatError(self.name, entry, "no space ends the word within 1 MiB; the file is not word2vec binary",
                                  unit="entry")
            raise FormatError(self.name, entry, "file is truncated in the middle of the word", unit="entry")
        got = len(tail) - space - 1
        raise FormatError(
            self.name, entry, f"file is truncated: expected {row_bytes} bytes of vector, found {got}", unit="entry"
        )
