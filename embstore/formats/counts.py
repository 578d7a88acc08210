"""Word-count files: word2vec's ``-save-vocab`` output (gensim's ``fvocab``), one 'word count' per line."""

from __future__ import annotations

import lzma
import os
import zlib
from typing import Iterator

from ..errors import FormatError
from .compression import check_input_path, open_decompressed

COUNT_BLOCK = 50_000  # (word, count) pairs per block
MAX_LINE_BYTES = 1 << 20


def read_counts(path: str | os.PathLike, unicode_errors: str = "strict") -> Iterator[list[tuple[str, int]]]:
    """Yield blocks of (word, count) from a counts file; FormatError names the line of a bad one.

    The word is everything before the last space (word2vec writes 'word count'); a count is
    a whole number, 0 or more. Blank lines are skipped. A word listed twice keeps its last count.
    """
    name = str(path)
    try:
        handle, raw, _ = open_decompressed(check_input_path(path))
    except OSError as exc:
        raise FormatError(name, None, f"cannot be read: {exc.strerror or exc}") from None
    try:
        with raw, handle:
            yield from _blocks(name, handle, unicode_errors)
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise FormatError(name, None, f"cannot be read: {getattr(exc, 'strerror', None) or exc}") from None


def _blocks(name: str, handle, unicode_errors: str) -> Iterator[list[tuple[str, int]]]:
    block: list[tuple[str, int]] = []
    number = 0
    while raw := handle.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise FormatError(name, number, f"line is longer than {MAX_LINE_BYTES >> 10} KiB: not a counts file")
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a UTF-8 byte order mark
        line = raw.rstrip(b"\r\n")
        fields = line.split()
        if not fields:
            continue
        word, count = (fields[0], fields[1]) if len(fields) == 2 else (b"", b"")
        try:
            text = word.decode("utf-8", unicode_errors)
        except UnicodeDecodeError:
            raise FormatError(name, number, "the word is not valid UTF-8",
                              hint="unicode_errors='replace' or 'ignore' reads it anyway") from None
        if not text or not count.isdigit() or len(count) > 18:
            raise FormatError(name, number, "expected 'word count' (a word, white space and a whole number "
                                            "below 10**18), "
                                            f"found {line[:60].decode('utf-8', 'replace')!r}")
        block.append((text, int(count)))
        if len(block) >= COUNT_BLOCK:
            yield block
            block = []
    if block:
        yield block
