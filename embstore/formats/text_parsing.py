"""Parsing of text embedding files (GloVe, word2vec text, fastText .vec): a mixin of
``EmbeddingReader`` that turns blocks of complete lines into chunks of words and rows."""

from __future__ import annotations

import io
import warnings

from typing import Iterator

import numpy as np

from ..errors import FormatError
from .chunk import Chunk

MAX_LINE_BYTES = 64 << 20       # a longer line is an error, not a memory blow-up
_TEXT_VALUE_BYTES = frozenset(b"0123456789.-+eE \t\r\nnaifNAIF")


def _values(count: int) -> str:
    return f"{count} value" if count == 1 else f"{count} values"


class TextParsing:
    def _text_blocks(self) -> Iterator[list[bytes]]:
        """Yield lists of complete lines (without line endings)."""
        while True:
            if not self._eof and len(self._pending) < self.chunk_bytes:
                self._fill(self.chunk_bytes)
            data = self._pending
            if not data:
                return
            cut = data.rfind(b"\n")
            if cut < 0 and not self._eof:
                if len(data) > MAX_LINE_BYTES:
                    raise FormatError(self.name, self._line_no + 1, f"line is longer than {MAX_LINE_BYTES >> 20} MiB")
                self._fill(len(data) + self.chunk_bytes)
                continue
            if cut < 0:
                cut = len(data)
            block, self._pending = data[:cut], data[cut + 1:]
            lines = block.split(b"\n")
            if b"\r" in block:
                lines = [line.rstrip(b"\r") for line in lines]
            yield lines

    def _text_chunks(self) -> Iterator[Chunk]:
        for lines in self._text_blocks():
            first_line = self._line_no + 1
            self._line_no += len(lines)
            remaining = self._remaining_limit()
            chunk = self._parse_text_lines(lines, first_line, remaining)
            if chunk is None:
                continue
            self.rows_read += len(chunk.words)
            yield chunk
            if self.limit is not None and self.rows_read >= self.limit:
                return

    def _parse_text_lines(self, lines: list[bytes], first_line: int, limit: int | None) -> Chunk | None:
        words: list[bytes] = []
        rests: list[bytes] = []
        numbers: list[int] = []
        for offset, line in enumerate(lines):
            word, sep, rest = line.partition(b" ")
            if not sep and not line.strip():
                continue  # blank line
            if not sep or not word:
                if words:  # an earlier line may be wrong too: name the first
                    self._parse_values(rests, numbers)
                problem = "line starts with a space: the word is empty" if sep else \
                    f"expected {_values(self.dimension)} after the word, found none"
                raise FormatError(self.name, first_line + offset, problem)
            words.append(word)
            rests.append(rest)
            numbers.append(first_line + offset)
            if limit is not None and len(words) >= limit:
                break
        if not words:
            return None
        vectors = self._parse_values(rests, numbers)
        return Chunk(self._decode_words(words, numbers), vectors, np.asarray(numbers, dtype=np.int64))

    def _parse_values(self, rests: list[bytes], numbers: list[int]) -> np.ndarray:
        """Parse the value part of each line into an (n, dimension) float32 array."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                values = np.loadtxt(
                    io.BytesIO(b"\n".join(rests)), dtype=np.float32, comments=None, ndmin=2, encoding="latin-1"
                )
        except ValueError:
            values = None
        if values is None or values.shape != (len(rests), self.dimension):
            self._diagnose_values(rests, numbers)
            raise FormatError(self.name, numbers[0], "values could not be parsed")  # not reached
        self._check_finite(values, numbers, [None] * len(numbers))
        return values

    def _diagnose_values(self, rests: list[bytes], numbers: list[int]) -> None:
        """Find the first bad line in a block that failed the fast parse, and raise."""
        for rest, line in zip(rests, numbers):
            tokens = rest.split()
            if len(tokens) != self.dimension:
                raise FormatError(self.name, line, f"expected {_values(self.dimension)} after the word, found {len(tokens)}")
            for position, token in enumerate(tokens, 1):
                try:
                    float(token)
                except ValueError:
                    shown = token[:40].decode("utf-8", "replace")
                    raise FormatError(self.name, line, f"value {position} ({shown!r}) is not a number") from None
