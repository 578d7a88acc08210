"""Stream word vectors out of GloVe, word2vec (text or binary) and fastText .vec files.

The reader knows nothing of stores: it yields ``Chunk``s of words and float32 rows,
each row tagged with the line (text) or entry (binary) it came from, so that the
caller can report problems precisely. Memory is bounded by the chunk size, never by
what a header claims.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..errors import FormatError
from .compression import check_input_path, open_decompressed

GLOVE = "glove"
WORD2VEC_TEXT = "word2vec"
WORD2VEC_BINARY = "word2vec-bin"
FORMATS = (GLOVE, WORD2VEC_TEXT, WORD2VEC_BINARY)
FORMAT_ALIASES = {
    "glove": GLOVE,
    "word2vec": WORD2VEC_TEXT,
    "word2vec-text": WORD2VEC_TEXT,
    "fasttext": WORD2VEC_TEXT,
    "vec": WORD2VEC_TEXT,
    "word2vec-bin": WORD2VEC_BINARY,
    "word2vec-binary": WORD2VEC_BINARY,
    "bin": WORD2VEC_BINARY,
}
UNICODE_ERRORS = ("strict", "replace", "ignore")

CHUNK_BYTES = 4 << 20           # text read per parse step
MAX_LINE_BYTES = 64 << 20       # a longer line is an error, not a memory blow-up
MAX_WORD_BYTES = 1 << 20        # binary: a longer word means the file is not what it claims
MAX_DIMENSION = 100_000         # a header claiming more is lying (or not a header)
_TEXT_VALUE_BYTES = frozenset(b"0123456789.-+eE \t\r\nnaifNAIF")


@dataclass(frozen=True)
class Chunk:
    """Consecutive rows of a file: ``words[i]`` has vector ``vectors[i]`` from ``lines[i]``."""

    words: list[str]
    vectors: np.ndarray
    lines: np.ndarray


def normalise_format_name(name: str) -> str:
    """Return the canonical format name for ``name`` or any of its aliases."""
    try:
        return FORMAT_ALIASES[name.lower()]
    except KeyError:
        known = ", ".join(sorted(FORMAT_ALIASES))
        raise FormatError(name, None, f"unknown format; expected one of {known}") from None


class EmbeddingReader:
    """Reads one embedding file in chunks.

    After construction, ``format``, ``dimension`` and ``declared_count`` (None for
    GloVe, which has no header) are known. Iterate ``chunks()`` for the rows.
    ``bytes_read`` and ``total_bytes`` measure progress through the on-disk file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        format: str | None = None,
        *,
        limit: int | None = None,
        unicode_errors: str = "strict",
        chunk_bytes: int = CHUNK_BYTES,
    ):
        if unicode_errors not in UNICODE_ERRORS:
            raise ValueError(f"unicode_errors must be one of {UNICODE_ERRORS}")
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
        self.path = check_input_path(path)
        self.name = str(path)
        self.limit = limit
        self.unicode_errors = unicode_errors
        self.chunk_bytes = chunk_bytes
        self.total_bytes = self.path.stat().st_size
        self._stream, self._raw, self.compression = open_decompressed(self.path)
        self._pending = b""
        self._eof = False
        self.rows_read = 0
        try:
            self._detect(normalise_format_name(format) if format else None)
        except BaseException:
            self.close()
            raise

    # -- plumbing -----------------------------------------------------------------

    def __enter__(self) -> "EmbeddingReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for handle in (self._stream, self._raw):
            try:
                handle.close()
            except Exception:
                pass

    @property
    def bytes_read(self) -> int:
        """How far through the on-disk (possibly compressed) file reading has got."""
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return self.total_bytes

    def _read(self, size: int) -> bytes:
        try:
            data = self._stream.read(size)
        except (EOFError, OSError, ValueError) as exc:  # gzip/bz2/lzma corruption
            raise FormatError(
                self.name, None, f"compressed data is corrupt or truncated ({exc})"
            ) from None
        except Exception as exc:  # lzma.LZMAError and friends
            raise FormatError(self.name, None, f"cannot decompress: {exc}") from None
        if not data:
            self._eof = True
        return data

    def _fill(self, minimum: int) -> None:
        """Read until ``_pending`` holds at least ``minimum`` bytes or the file ends."""
        parts = [self._pending]
        have = len(self._pending)
        while have < minimum and not self._eof:
            data = self._read(self.chunk_bytes)  # never ask for more than a chunk at once
            parts.append(data)
            have += len(data)
        self._pending = b"".join(parts)

    # -- detection ------------------------------------------------------------------

    def _detect(self, forced: str | None) -> None:
        self._fill(1 << 16)
        head = self._pending
        if not head.strip():
            raise FormatError(self.name, None, "file is empty" if not head else "file holds only blank space")
        if head.startswith((b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")):
            raise FormatError(
                self.name, None, "looks like a Python pickle (a gensim .model or .kv file); embstore never unpickles",
                hint="save it with KeyedVectors.save_word2vec_format(path) and load that",
            )
        if head.startswith(b"\x93NUMPY"):
            raise FormatError(self.name, None, "is a bare .npy matrix, which has no words")
        newline = head.find(b"\n")
        while newline < 0 and not self._eof and len(self._pending) < MAX_LINE_BYTES:
            self._fill(len(self._pending) * 2)
            newline = self._pending.find(b"\n")
        if newline < 0 and not self._eof:
            raise FormatError(self.name, 1, f"line is longer than {MAX_LINE_BYTES >> 20} MiB; not an embedding file")
        first = self._pending[: newline if newline >= 0 else len(self._pending)]
        tokens = first.split()
        header = self._parse_header(tokens)
        if forced == GLOVE or (forced is None and header is None):
            self.format = GLOVE
            self.declared_count = None
            # As gensim does, the word ends at the first space; the values are split on any blank.
            self.dimension = len(first.rstrip(b"\r").partition(b" ")[2].split())
            self._line_no = 0
            if self.dimension > MAX_DIMENSION:
                raise FormatError(self.name, 1, f"{self.dimension:,} values on one line is not plausible "
                                                f"(embstore reads at most {MAX_DIMENSION:,})")
            if self.dimension < 1:
                raise FormatError(self.name, 1, "expected a word, a space and its values; found no values")
            return
        if header is None:
            raise FormatError(
                self.name, 1, f"expected a '<count> <dimension>' header for {forced}, found {first[:60]!r}",
                hint="try --format glove",
            )
        self.declared_count, self.dimension = header
        self._pending = self._pending[newline + 1:] if newline >= 0 else b""
        self._line_no = 1
        if forced is None:
            forced = WORD2VEC_BINARY if self._looks_binary() else WORD2VEC_TEXT
        self.format = forced

    def _parse_header(self, tokens: list[bytes]) -> tuple[int, int] | None:
        """Return (count, dimension) if ``tokens`` are a word2vec header, else None."""
        if len(tokens) != 2:
            return None
        try:
            count, dimension = int(tokens[0]), int(tokens[1])
        except ValueError:
            return None
        if count < 0 or dimension < 1:
            raise FormatError(self.name, 1, f"header '{count} {dimension}' is not a valid word count and dimension")
        if count == 0:
            raise FormatError(self.name, 1, "header declares 0 words")
        if dimension > MAX_DIMENSION:
            raise FormatError(self.name, 1, f"header dimension {dimension:,} is not plausible "
                                            f"(embstore reads at most {MAX_DIMENSION:,})")
        return count, dimension

    def _looks_binary(self) -> bool:
        """After a header: is the first entry binary floats rather than a text line?

        A text entry is a word and ``dimension`` numbers on one line; binary float
        bytes essentially never form one.
        """
        self._fill(MAX_WORD_BYTES + 4 * self.dimension + 1)
        body = self._pending
        newline = body.find(b"\n")
        line = body[: newline if newline >= 0 else len(body)]
        if newline < 0 and not self._eof:
            return True
        tokens = line.split()
        if len(tokens) != self.dimension + 1:
            return len(tokens) > 0 and not set(line.partition(b" ")[2]) <= _TEXT_VALUE_BYTES
        try:
            [float(t) for t in tokens[1:]]
        except ValueError:
            return True
        return False

    # -- rows -----------------------------------------------------------------------

    def chunks(self) -> Iterator[Chunk]:
        """Yield the file's rows in chunks, raising FormatError at the first bad one."""
        if self.format == WORD2VEC_BINARY:
            yield from self._binary_chunks()
        else:
            yield from self._text_chunks()
        if self.limit is None or self.rows_read < self.limit:
            self._check_count()

    def _remaining_limit(self) -> int | None:
        return None if self.limit is None else self.limit - self.rows_read

    def _check_count(self) -> None:
        if self.rows_read == 0:
            raise FormatError(self.name, None, "holds no vectors" + (" after its header" if self.declared_count else ""))
        if self.declared_count is not None and self.rows_read != self.declared_count:
            raise FormatError(
                self.name, 1,
                f"header declares {self.declared_count:,} words but the file holds {self.rows_read:,}",
            )

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
            if not sep:
                if not line.strip():
                    continue  # blank line
                raise FormatError(self.name, first_line + offset, f"expected {self.dimension} values after the word, found 0")
            if not word:
                raise FormatError(self.name, first_line + offset, "line starts with a space: the word is empty")
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
                raise FormatError(self.name, line, f"expected {self.dimension} values after the word, found {len(tokens)}")
            for position, token in enumerate(tokens, 1):
                try:
                    float(token)
                except ValueError:
                    shown = token[:40].decode("utf-8", "replace")
                    raise FormatError(self.name, line, f"value {position} ({shown!r}) is not a number") from None

    def _check_finite(self, values: np.ndarray, numbers, words, unit: str = "line") -> None:
        finite = np.isfinite(values)
        if finite.all():
            return
        row, column = map(int, np.argwhere(~finite)[0])
        kind = "NaN" if np.isnan(values[row, column]) else "infinite"
        label = f" ({words[row]!r})" if words[row] is not None else ""
        raise FormatError(self.name, int(numbers[row]), f"value {column + 1}{label} is {kind}", unit=unit)

    def _decode_words(self, words: list[bytes], numbers: list[int], unit: str = "line") -> list[str]:
        try:
            joined = b"\n".join(words).decode("utf-8", self.unicode_errors)
            decoded = joined.split("\n")
            if len(decoded) == len(words):
                return decoded
        except UnicodeDecodeError:
            pass
        out = []
        for word, line in zip(words, numbers):
            try:
                out.append(word.decode("utf-8", self.unicode_errors))
            except UnicodeDecodeError as exc:
                raise FormatError(
                    self.name, line, f"word is not valid UTF-8 ({exc.reason} at byte {exc.start})",
                    hint="--unicode-errors replace or ignore handles it as gensim does", unit=unit,
                ) from None
        return out

    def _binary_chunks(self) -> Iterator[Chunk]:
        row_bytes = 4 * self.dimension
        wanted = self.declared_count if self.limit is None else min(self.declared_count, self.limit)
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
            while entry < last:
                space = find(b" ", position, position + MAX_WORD_BYTES)
                end = space + 1 + row_bytes
                if space < 0 or end > size:
                    if self._eof or (space < 0 and size - position >= MAX_WORD_BYTES):
                        self._check_words(words, first)
                        self._binary_truncated(entry + 1, data[position:], row_bytes)
                    break
                words.append(data[position:space])
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
        """The words without the newline that ends the previous vector; raise at the first empty one."""
        stripped = [word.lstrip(b"\n") for word in words]
        if not all(stripped):
            raise FormatError(self.name, first + 1 + stripped.index(b""), "the word is empty", unit="entry")
        return stripped

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


def read_embeddings(path: str | os.PathLike, format: str | None = None, **options) -> tuple[list[str], np.ndarray]:
    """Read a whole (small) file into memory: returns (words, matrix). Duplicates are kept."""
    with EmbeddingReader(path, format, **options) as reader:
        words: list[str] = []
        blocks = []
        for chunk in reader.chunks():
            words.extend(chunk.words)
            blocks.append(chunk.vectors)
        return words, np.concatenate(blocks) if blocks else np.zeros((0, reader.dimension), np.float32)


__all__ = [
    "Chunk", "EmbeddingReader", "FORMATS", "GLOVE", "WORD2VEC_TEXT", "WORD2VEC_BINARY",
    "normalise_format_name", "read_embeddings",
]
