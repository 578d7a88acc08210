"""fastText's character n-grams and their bucket numbers, computed for many words at once.

A word is wrapped as ``<word>``; its n-grams are the runs of ``minn`` to ``maxn`` characters
(UTF-8 characters, not bytes), except the single ``<`` and ``>``. Each n-gram's UTF-8 bytes
are hashed with 32-bit FNV-1a, each byte taken as a *signed* char (fastText's
``dictionary.cc``; gensim's ``ft_hash_bytes``), and the bucket is the hash modulo ``bucket``.
The order is fastText's: by start character, then by length, which is also the order in
which fastText and gensim add the n-gram rows.

Everything is vectorised: a batch of words becomes one byte buffer, the n-grams one array
of (start, end) byte offsets per length, and the hash one numpy loop over byte positions.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

FNV_OFFSET = np.uint32(2166136261)
FNV_PRIME = np.uint32(16777619)
HASH_NAME = "fasttext-fnv1a-32-signed-bytes"


def buckets_of_word(word: str, minn: int, maxn: int, bucket: int) -> list[int]:
    """One word's n-gram buckets in plain Python, in fastText's order: for a handful of words
    this is faster than setting up the vectorised path (``word_ngram_buckets``)."""
    if bucket <= 0 or maxn <= 0:
        return []
    encoded = f"<{word}>".encode("utf-8", "surrogatepass")
    bounds = [i for i, byte in enumerate(encoded) if byte & 0xC0 != 0x80] + [len(encoded)]
    chars = len(bounds) - 1
    found = []
    for i in range(chars):
        for n in range(max(minn, 1), min(maxn, chars - i) + 1):
            if n == 1 and (i == 0 or i + 1 == chars):
                continue
            h = 2166136261
            for byte in encoded[bounds[i]: bounds[i + n]]:
                h = ((h ^ (byte | 0xFFFFFF00 if byte > 127 else byte)) * 16777619) & 0xFFFFFFFF
            found.append(h % bucket)
    return found


def _fnv1a(buffer: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """FNV-1a (signed bytes) of ``buffer[starts[i]: starts[i] + lengths[i]]`` for every i."""
    hashes = np.full(starts.shape[0], FNV_OFFSET, dtype=np.uint32)
    if starts.size == 0:
        return hashes
    signed = buffer.view(np.int8).astype(np.int32).view(np.uint32)  # sign-extended, as fastText's cast
    with np.errstate(over="ignore"):
        for offset in range(int(lengths.max())):
            active = np.flatnonzero(lengths > offset)
            if active.size == hashes.size:
                hashes ^= signed[starts + offset]
                hashes *= FNV_PRIME
            else:
                hashes[active] ^= signed[starts[active] + offset]
                hashes[active] *= FNV_PRIME
    return hashes


def word_ngram_buckets(words: Sequence[str], minn: int, maxn: int, bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """The n-gram bucket numbers of each word: (buckets, offsets), the buckets of ``words[i]``
    being ``buckets[offsets[i]: offsets[i + 1]]``, in fastText's order. ``bucket`` 0 or
    ``maxn`` 0 means the model has no n-grams: every word gets none."""
    count = len(words)
    if bucket <= 0 or maxn <= 0 or count == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(count + 1, dtype=np.int64)
    encoded = [f"<{w}>".encode("utf-8", "surrogatepass") for w in words]
    sizes = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=count)
    buffer = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    word_start = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(sizes, out=word_start[1:])
    # Character starts (bytes that are not UTF-8 continuation bytes), and each word's end as
    # one more boundary: boundary j of word w is bounds[base[w] + j].
    is_start = (buffer & 0xC0) != 0x80
    char_pos = np.flatnonzero(is_start)
    word_of_char = np.searchsorted(word_start, char_pos, side="right") - 1
    chars = np.bincount(word_of_char, minlength=count)  # characters per word, < and > included
    base = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(chars + 1, out=base[1:])
    bounds = np.empty(base[-1], dtype=np.int64)
    owner = np.repeat(np.arange(count), chars + 1)
    local = np.arange(base[-1]) - base[owner]
    is_end = local == chars[owner]
    bounds[~is_end] = char_pos
    bounds[is_end] = word_start[1:]
    # Every (word, start character i, length n), row by row in fastText's order: kept when
    # the run fits in the word and is not a lone '<' or '>'.
    starts = ~is_end
    word_ids, start_chars = owner[starts], local[starts]
    lengths = np.arange(max(minn, 1), maxn + 1, dtype=np.int64)
    if lengths.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(count + 1, dtype=np.int64)
    word_chars = chars[word_ids]
    keep = start_chars[:, None] + lengths[None, :] <= word_chars[:, None]
    if lengths[0] == 1:
        keep[:, 0] &= (start_chars != 0) & (start_chars + 1 != word_chars)
    first = np.flatnonzero(starts)  # positions in ``bounds`` of each start character
    row, column = np.nonzero(keep)
    byte_starts = bounds[first[row]]
    byte_lengths = bounds[first[row] + lengths[column]] - byte_starts
    hashes = _fnv1a(buffer, byte_starts, byte_lengths)
    buckets = (hashes % np.uint32(bucket)).astype(np.int64)
    offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(np.bincount(word_ids[row], minlength=count), out=offsets[1:])
    return buckets, offsets
