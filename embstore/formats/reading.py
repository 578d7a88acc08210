"""Stream word vectors out of GloVe, word2vec (text or binary) and fastText .vec files.

The reader knows nothing of stores: it yields ``Chunk``s of words and float32 rows,
each row tagged with the line (text) or entry (binary) it came from, so that the
caller can report problems precisely. Memory is bounded by the chunk size, never by
what a header claims.
"""

from __future__ import annotations

import codecs
import os
from typing import Iterator

import numpy as np

from ..errors import FormatError
from .binary_parsing import MAX_WORD_BYTES, BinaryParsing
from .compression import check_input_path, open_decompressed
from .chunk import Chunk
from .text_parsing import _TEXT_VALUE_BYTES, MAX_LINE_BYTES, TextParsing

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
_TEXT_BYTES = frozenset(range(0x20, 0x7F)) | frozenset(b"\t\n\r") | frozenset(range(0x80, 0x100))  # no control bytes
MAX_DIMENSION = 65_536          # what a store holds (storage/store_meta.py); a header claiming more is refused


_BOM = b"\xef\xbb\xbf"
_FASTTEXT_MAGIC = (793712314).to_bytes(4, "little")
# Files that are recognisably something else: (leading bytes, what it is, what to do).
_FOREIGN_FORMATS = (
    (b"PK\x03\x04", "a zip archive", "unzip it and load the embedding file inside"),
    (b"\x28\xb5\x2f\xfd", "zstandard-compressed", "decompress it (zstd -d) or recompress it with gzip, bzip2 or xz"),
    (b"\x80\x01", "a Python pickle", "embstore never unpickles; export it as word2vec text or binary first"),
)


def normalise_format_name(name: str) -> str:
    """Return the canonical format name for ``name`` or any of its aliases."""
    try:
        return FORMAT_ALIASES[name.lower()]
    except KeyError:
        known = ", ".join(sorted(FORMAT_ALIASES))
        raise FormatError(name, None, f"unknown format; expected one of {known}") from None


def _binary_bytes(data: bytes) -> bool:
    """Whether ``data`` holds a control byte (not tab, newline or carriage return) or bytes that
    are not UTF-8; a character cut at the end is fine."""
    if not set(data) <= _TEXT_BYTES:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        return True
    return False


class EmbeddingReader(TextParsing, BinaryParsing):
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
        self.notes: list[str] = []  # what the reader did that the user should hear of
        self._header_hint: str | None = None
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
        if head.startswith(_FASTTEXT_MAGIC):
            if self.compression:
                raise FormatError(self.name, None, f"is a {self.compression}-compressed fastText model (.bin)",
                                  hint="decompress it first and load the .bin itself")
            raise FormatError(self.name, None, "is a fastText model (.bin): its words and n-grams are loaded as a "
                                               "store of their own", hint="load it with 'embstore load FILE'")
        for magic, what, hint in _FOREIGN_FORMATS:
            if head.startswith(magic):
                raise FormatError(self.name, None, f"is {what}, which embstore cannot read", hint=hint)
        if head.startswith(_BOM):
            self._pending = self._pending[len(_BOM):]
            head = self._pending
            self.notes.append("a UTF-8 byte order mark at the start of the file was skipped")
        newline = head.find(b"\n")
        while newline < 0 and not self._eof and len(self._pending) < MAX_LINE_BYTES:
            self._fill(len(self._pending) * 2)
            newline = self._pending.find(b"\n")
        if newline < 0 and not self._eof:
            raise FormatError(self.name, 1, f"line is longer than {MAX_LINE_BYTES >> 20} MiB; not an embedding file")
        first = self._pending[: newline if newline >= 0 else len(self._pending)]
        tokens = first.split()
        header = self._parse_header(tokens)
        if forced == GLOVE and header is not None:  # said in any error on line 2, where it shows
            self._header_hint = (f"line 1 ({first.decode('latin-1')!r}) looks like a word2vec header: leave out "
                                 "--format, or give --format word2vec")
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
                hint="try format='glove' (--format glove)",
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
        rest = line.partition(b" ")[2]
        # A vector's bytes may hold a newline: the first vector's first byte is one in 1 file of
        # 256. Its line is then the word, a space and at most 3 value-like bytes (at 1 or 2
        # dimensions, those may even read as the right number of values).
        if len(tokens) > 0 and len(rest) < 4 and self._holds_binary_vector(body, newline):
            return True
        if len(tokens) != self.dimension + 1:
            return len(tokens) > 0 and not set(rest) <= _TEXT_VALUE_BYTES
        try:
            [float(t) for t in tokens[1:]]
        except ValueError:
            return True
        return False

    def _holds_binary_vector(self, body: bytes, newline: int) -> bool:
        """For a first line that is a word, a space and a newline within the next 4 bytes: is
        that newline a vector's byte? Yes when the ``4 * dimension`` bytes after the space are
        all there and hold what a text file's first entry does not, a control byte or bytes
        that are not UTF-8 (floats' bytes almost always do: each random byte is one or the
        other half the time), and what follows the newline is not a text entry, a word, a
        space and text numbers (a next word may not be UTF-8). A text file whose first line is
        short gets its text error."""
        space = body.find(b" ")
        if not 0 < space < newline:
            return False
        values = body[space + 1: space + 1 + 4 * self.dimension]
        if len(values) < 4 * self.dimension or not _binary_bytes(values):
            return False
        end = body.find(b"\n", newline + 1)
        word, _, numbers = body[newline + 1: end if end >= 0 else len(body)].partition(b" ")
        return not (word.strip() and numbers.strip() and set(numbers) <= _TEXT_VALUE_BYTES)

    # -- rows -----------------------------------------------------------------------

    def chunks(self) -> Iterator[Chunk]:
        """Yield the file's rows in chunks, raising FormatError at the first bad one."""
        try:
            yield from self._binary_chunks() if self.format == WORD2VEC_BINARY else self._text_chunks()
        except FormatError as exc:
            if self._header_hint and exc.line == 2 and not exc.hint:
                raise FormatError(exc.path, exc.line, exc.problem, hint=self._header_hint) from None
            raise
        if self.limit is None or self.rows_read < self.limit:
            self._check_count()

    @property
    def expected_rows(self) -> int | None:
        """How many rows the header promises, capped by ``limit``; None where there is no header."""
        if self.declared_count is None:
            return None
        return self.declared_count if self.limit is None else min(self.declared_count, self.limit)

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
                    hint="unicode_errors='replace' or 'ignore' (--unicode-errors) handles it as gensim does", unit=unit,
                ) from None
        return out

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
