"""Vectors from n-gram rows: fastText's word vectors (word row and n-gram rows averaged) and
its vectors for words outside the vocabulary (n-gram rows averaged).

The sums run in fastText's and gensim's order (the word row, then each n-gram row in
turn, in float32), so a stored word's vector has gensim's bits. Memory is bounded by
``GATHER_BYTES`` whatever the batch.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .ngrams import word_ngram_buckets

GATHER_BYTES = 64 << 20  # n-gram rows gathered at once


class SubwordVectors:
    """Vectors built from a bucket matrix (``bucket`` x ``dimension`` float32, usually mapped)."""

    def __init__(self, buckets: np.ndarray, minn: int, maxn: int):
        self.buckets = buckets
        self.minn, self.maxn = minn, maxn
        self.dimension = buckets.shape[1]

    @property
    def bucket_count(self) -> int:
        return self.buckets.shape[0]

    def ngram_counts(self, words: Sequence[str]) -> np.ndarray:
        """How many n-grams each word has (0: no vector can be built for it)."""
        _, offsets = word_ngram_buckets(words, self.minn, self.maxn, self.bucket_count)
        return np.diff(offsets)

    def compose(self, words: Sequence[str], word_rows: np.ndarray) -> np.ndarray:
        """fastText's vectors of vocabulary words: (word row + its n-gram rows) / (n-grams + 1)."""
        return self._averaged(words, np.asarray(word_rows, dtype=np.float32))

    def for_words(self, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, n-gram counts) of words outside the vocabulary: the mean of their n-gram
        rows; a word with no n-grams gets zeros (as fastText and gensim give)."""
        counts = self.ngram_counts(words)
        return self._averaged(words, None), counts

    def _averaged(self, words: Sequence[str], word_rows: np.ndarray | None) -> np.ndarray:
        out = np.zeros((len(words), self.dimension), dtype=np.float32)
        if word_rows is not None:
            out[:] = word_rows
        if self.bucket_count == 0 or not len(words):
            return out
        per_step = max(1, GATHER_BYTES // (4 * self.dimension * 64))  # words per step, ~64 n-grams each
        for first in range(0, len(words), per_step):
            last = min(first + per_step, len(words))
            buckets, offsets = word_ngram_buckets(words[first:last], self.minn, self.maxn, self.bucket_count)
            sizes = np.diff(offsets)
            sums = out[first:last]  # a view: summed in place
            # The j-th n-gram row of every word that has one, added in turn: the same float32
            # additions in the same order as fastText's and gensim's loop over each word.
            for j in range(int(sizes.max(initial=0))):
                active = np.flatnonzero(sizes > j)
                sums[active] += self.buckets[buckets[offsets[active] + j]]
            has = sizes > 0
            divisor = (sizes + (1 if word_rows is not None else 0)).astype(np.float32)
            sums[has] /= divisor[has, None]
        return out
