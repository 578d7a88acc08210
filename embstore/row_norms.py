"""The length of each row, as every part of embstore computes it.

gensim's ``norms`` are ``np.linalg.norm(vectors, axis=1)`` in float32; so are these, so that
scores equal gensim's. Where float32 cannot hold the sum of squares (values below about
1e-19 underflow to a length of 0; above about 1e19 they overflow), the length is computed
in float64 and rounded to float32, so such a vector still ranks correctly (gensim would
divide by 0 or infinity). A length float32 cannot hold at all (past 3.4e38) stays infinite.
"""

from __future__ import annotations

import numpy as np


def row_norms(rows: np.ndarray) -> np.ndarray:
    """Each row's float32 length (see the module notes)."""
    with np.errstate(over="ignore", under="ignore"):
        lengths = np.linalg.norm(rows, axis=1).astype(np.float32)
        odd = ~np.isfinite(lengths) | (lengths == 0)
        if odd.any():
            lengths[odd] = np.linalg.norm(np.asarray(rows[odd], dtype=np.float64), axis=1).astype(np.float32)
    return lengths


def float64_norms(rows: np.ndarray) -> np.ndarray:
    """Each float32 row's length computed in float64 (the norms the catalog keeps): the sum of
    squares of the rows cast to float64, without a float64 copy of the whole block (the same
    bits as einsum over such a copy, the loader's way before). einsum casts through a buffer of
    8,192 values, and past that its sums depend on the block's shape, so wider rows are cast,
    squared and summed by numpy's pairwise sum along each row: a row's norm is then the same
    whatever block it is in (a hostile test found a 1-row last chunk getting other bits)."""
    if rows.shape[1] <= 8192:
        return np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64))
    exact = np.ascontiguousarray(rows, dtype=np.float64)
    return np.sqrt(np.add.reduce(np.multiply(exact, exact, out=exact), axis=1))


def usable_lengths(rows: np.ndarray) -> np.ndarray:
    """Whether each row's length (``row_norms``) is finite and not 0, so that cosine can rank it."""
    lengths = row_norms(np.asarray(rows, dtype=np.float32))
    return np.isfinite(lengths) & (lengths > 0)
