"""A store's words by ID, packed in memory: their UTF-8 text end to end and one offset per word.

At GloVe's word lengths that is about 12 bytes a word (5 MB for 400k words), where a
Python list of the same words takes about 60. Knows nothing of SQLite.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


class WordTable:
    """``table[i]`` is the word with ID i; IDs are dense, 0 .. len - 1."""

    def __init__(self, text: bytes, starts: np.ndarray):
        """``text`` holds each word followed by one separator byte; word i starts at
        ``starts[i]``, and ``starts[len]`` is ``len(text)``."""
        self._text = text
        self._starts = memoryview(np.ascontiguousarray(starts))  # indexing a memoryview gives ints quickly

    @classmethod
    def from_joined(cls, joined: str, separator: str, count: int) -> "WordTable | None":
        """The table of ``count`` words joined by the one-character ``separator``.

        Returns None when the separator does not occur exactly ``count - 1`` times, that
        is when some word contains it.
        """
        text = (joined + separator).encode() if count else b""
        separators = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == ord(separator))
        if len(separators) != count:
            return None
        starts = np.empty(count + 1, dtype=np.uint32 if len(text) < 2**32 else np.uint64)
        starts[0] = 0
        starts[1:] = separators + 1
        return cls(text, starts)

    def __len__(self) -> int:
        return len(self._starts) - 1

    def __getitem__(self, word_id: int) -> str:
        if not 0 <= word_id < len(self):
            raise IndexError(f"no word with ID {word_id}")
        return self._text[self._starts[word_id]: self._starts[word_id + 1] - 1].decode()

    def words_for_ids(self, ids: Sequence[int]) -> dict[int, str]:
        """{id: word} for ``ids`` (Python ints); raises IndexError for an ID outside the table."""
        if ids and (min(ids) < 0 or max(ids) >= len(self)):
            raise IndexError(f"no word with ID {min(ids) if min(ids) < 0 else max(ids)}")
        text, starts = self._text, self._starts
        return {i: text[starts[i]: starts[i + 1] - 1].decode() for i in ids}

    @property
    def nbytes(self) -> int:
        return len(self._text) + self._starts.nbytes
