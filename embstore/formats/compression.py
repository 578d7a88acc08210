"""Open plain, gzip, bzip2 and xz files by their magic bytes, not their names."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
from pathlib import Path
from typing import BinaryIO

from ..errors import FormatError

_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
}


def sniff_compression(head: bytes) -> str | None:
    """Return 'gzip', 'bzip2', 'xz' or None for the first bytes of a file."""
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def check_input_path(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path if it names a readable regular file; else raise FormatError."""
    path = Path(path)
    if str(path) == "-" and not path.exists():
        raise FormatError("-", None, "a load reads a file, not standard input: save it to a file and load that")
    if not path.exists():
        raise FormatError(str(path), None, "no such file")
    if path.is_dir():
        raise FormatError(str(path), None, "is a directory, not an embedding file")
    if not path.is_file():
        raise FormatError(str(path), None, "is not a regular file")
    return path


def open_decompressed(path: Path) -> tuple[BinaryIO, object, str | None]:
    """Open ``path`` for binary reading, decompressing if needed.

    Returns (stream, raw, compression): ``raw`` is the on-disk file, whose
    ``tell()`` measures progress through the file.
    """
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise FormatError(str(path), None, f"cannot open: {exc.strerror}") from None
    head = raw.read(8)
    raw.seek(0)
    compression = sniff_compression(head)
    if compression == "gzip":
        stream = gzip.GzipFile(fileobj=raw, mode="rb")
    elif compression == "bzip2":
        stream = bz2.BZ2File(raw, mode="rb")
    elif compression == "xz":
        stream = lzma.LZMAFile(raw, mode="rb")
    else:
        stream = raw
    return stream, raw, compression
