"""Vectors from n-gram rows: fastText's word vectors (word row and n-gram rows averaged) and
its vectors for words outside the vocabulary (n-gram rows averaged).

The sums run in fastText's and gensim's order (the word row, then each n-gram row in
turn, in float32), so a stored word's vector has gensim's bits. Memory is bounded by
``GATHER_BYTES`` whatever the batch.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .ngrams import buckets_of_word, word_ngram_buckets

GATHER_BYTES = 64 << 20  # n-gram rows gathered at once (one per word)
STEP_WORDS = 16_384  # words whose n-grams are computed together
FEW_WORDS = 8  # up to this many, words take the plain Python path
LONG_WORD = 64  # characters; a longer word takes the vectorised path whatever the count


class SubwordVectors:
    """Vectors built from a bucket matrix (``bucket`` x ``dimension`` float32, usually mapped)."""

    def __init__(self, buckets: np.ndarray, minn: int, maxn: int):
        self.buckets = buckets
        self.minn, self.maxn = minn, maxn
        self.dimension = buckets.shape[1]

    @property
    def bucket_count(self) -> int:
        return self.buckets.shape[0]

    def compose(self, words: Sequence[str], word_rows: np.ndarray) -> np.ndarray:
        """fastText's vectors of vocabulary words: (word row + its n-gram rows) / (n-grams + 1)."""
        return self._averaged(words, np.asarray(word_rows, dtype=np.float32))[0]

    def for_words(self, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, n-gram counts) of words outside the vocabulary: the mean of their n-gram
        rows; a word with no n-grams gets zeros (as fastText and gensim give; queries refuse it)."""
        return self._averaged(words, None)

    def _averaged(self, words: Sequence[str], word_rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, n-gram counts): each word's [word row and] n-gram rows, averaged."""
        out = np.zeros((len(words), self.dimension), dtype=np.float32)
        counts = np.zeros(len(words), dtype=np.int64)
        if word_rows is not None:
            out[:] = word_rows
        if self.bucket_count == 0 or not len(words):
            return out, counts
        if len(words) <= FEW_WORDS and all(len(w) <= LONG_WORD for w in words):  # a query's words: plain Python
            for position, word in enumerate(words):
                buckets = buckets_of_word(word, self.minn, self.maxn, self.bucket_count)
                for row in self.buckets[buckets]:
                    out[position] += row
                counts[position] = len(buckets)
                if buckets:
                    out[position] /= np.float32(len(buckets) + (1 if word_rows is not None else 0))
            return out, counts
        per_step = max(1, min(STEP_WORDS, GATHER_BYTES // (4 * self.dimension)))
        for first in range(0, len(words), per_step):
            last = min(first + per_step, len(words))
            buckets, offsets = word_ngram_buckets(words[first:last], self.minn, self.maxn, self.bucket_count)
            sizes = np.diff(offsets)
            counts[first:last] = sizes
            # Words with the most n-grams first, so that the words still adding a j-th row are a prefix.
            order = np.argsort(-sizes, kind="stable")
            ranked = sizes[order]
            starts = offsets[order]
            sums = out[first:last][order]
            # The j-th n-gram row of every word that has one, added in turn: the same float32
            # additions in the same order as fastText's and gensim's loop over each word.
            for j in range(int(ranked[0]) if len(ranked) else 0):
                active = int(np.count_nonzero(ranked > j))
                sums[:active] += self.buckets[buckets[starts[:active] + j]]
            has = ranked > 0
            divisor = (ranked + (1 if word_rows is not None else 0)).astype(np.float32)
            sums[has] /= divisor[has, None]
            out[first + order] = sums
        return out, counts
