"""Write word vectors as word2vec text or binary, GloVe text, or a .npy matrix.

Writers take an iterable of (words, float32 rows) chunks, so an export streams.
Output goes to a temporary file beside the target and is renamed into place only
when complete. A name ending in .gz, .bz2 or .xz is compressed accordingly.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

import numpy as np

from ..storage.durable import fsync_directory
from ..errors import FormatError
from .float_text import format_rows

EXPORT_FORMATS = ("word2vec", "word2vec-bin", "glove", "npy")
COMPRESSORS: dict[str, Callable[[BinaryIO], BinaryIO]] = {
    ".gz": lambda raw: gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0),  # no temporary name inside
    ".bz2": lambda raw: bz2.BZ2File(raw, mode="wb"),
    ".xz": lambda raw: lzma.LZMAFile(raw, mode="wb"),
}

Chunks = Iterable[tuple[list[str], np.ndarray]]


def _check_word(word: str, output: Path) -> None:
    if not word or any(c in word for c in " \n\r") or word != word.strip():
        raise FormatError(
            str(output), None,
            f"word {word!r} holds a space or line break, which the text and word2vec formats cannot store",
        )


def _format_rows(words: list[str], vectors: np.ndarray, output: Path) -> bytes:
    """Return the text lines 'word v1 ... vd' for a chunk, each value the shortest decimal
    that reads back to the same float32 (``float_text``)."""
    for word in words:
        _check_word(word, output)
    lines = format_rows(words, np.asarray(vectors, dtype=np.float32))
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def _write_text(stream: BinaryIO, chunks: Chunks, output: Path, header: bytes | None) -> None:
    if header is not None:
        stream.write(header)
    for words, vectors in chunks:
        stream.write(_format_rows(words, vectors, output))


def _write_binary(stream: BinaryIO, chunks: Chunks, output: Path, header: bytes) -> None:
    stream.write(header)
    for words, vectors in chunks:
        rows = np.ascontiguousarray(vectors, dtype="<f4")
        parts = []
        for word, row in zip(words, rows):
            _check_word(word, output)
            parts.append(word.encode("utf-8") + b" " + row.tobytes() + b"\n")
        stream.write(b"".join(parts))


def _atomic_stream_write(output: Path, write: Callable[[BinaryIO], None]) -> None:
    """Run ``write`` on a temporary file beside ``output``, then rename it into place."""
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    compress = COMPRESSORS.get(output.suffix.lower())
    try:
        with open(tmp, "wb") as raw:
            if compress:
                with compress(raw) as stream:
                    write(stream)
            else:
                write(raw)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, output)
        fsync_directory(output.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _WholeWrites:
    """A stream whose ``write`` writes everything or raises: a pipe whose reader went away can
    take part of a large write and return the count, which must not pass for success."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view.nbytes:
            written = self._stream.write(view)
            if not written:
                raise BrokenPipeError("the reader of the output went away")
            view = view[written:]
        return len(data)

    def flush(self) -> None:
        self._stream.flush()


def vocabulary_path_for_npy(output: Path) -> Path:
    """The word list written beside an exported .npy matrix: 'x.npy' -> 'x.vocab.txt'."""
    name = output.name[:-4] if output.name.endswith(".npy") else output.name
    return output.with_name(name + ".vocab.txt")


def _write_npy(output: Path, chunks: Chunks, count: int, dimension: int) -> list[Path]:
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    vocab = vocabulary_path_for_npy(output)
    words_out: list[str] = []
    try:
        matrix = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(count, dimension))
        row = 0
        for words, vectors in chunks:
            for word in words:
                if "\n" in word or "\r" in word:
                    raise FormatError(str(output), None, f"word {word!r} holds a line break")
            matrix[row: row + len(words)] = vectors
            words_out.extend(words)
            row += len(words)
        matrix.flush()
        del matrix
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        output.unlink(missing_ok=True)  # no kill from here on leaves the old matrix beside the new words
        _atomic_stream_write(vocab, lambda s: s.write("".join(w + "\n" for w in words_out).encode("utf-8")))
        os.replace(tmp, output)
        fsync_directory(output.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return [output, vocab]


def write_embeddings(
    output: str | os.PathLike | BinaryIO, format: str, chunks: Chunks, count: int, dimension: int
) -> list[Path]:
    """Write ``count`` rows of ``dimension`` values in ``format``. Returns the files written.

    Raises FormatError for a word the format cannot hold, ValueError for an unknown format.
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {format!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    header = f"{count} {dimension}\n".encode("ascii")
    if hasattr(output, "write"):  # an open binary stream, such as standard output
        name = Path(getattr(output, "name", "<stream>"))
        output = _WholeWrites(output)
        if format == "word2vec-bin":
            _write_binary(output, chunks, name, header)
        else:
            _write_text(output, chunks, name, header if format == "word2vec" else None)
        output.flush()
        return []
    output = Path(output)
    if format == "npy":
        return _write_npy(output, chunks, count, dimension)
    if format == "word2vec":
        _atomic_stream_write(output, lambda s: _write_text(s, chunks, output, header))
    elif format == "glove":
        _atomic_stream_write(output, lambda s: _write_text(s, chunks, output, None))
    else:
        _atomic_stream_write(output, lambda s: _write_binary(s, chunks, output, header))
    return [output]
