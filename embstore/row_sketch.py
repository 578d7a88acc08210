"""A sketch of the rows: each unit row's projection on a few principal directions, with a proven bound.

An exact query over millions of rows of 300 dimensions is one pass over every byte of them
(3.6 GB at GoogleNews size, memory-bound). The sketch lets a single query read about a fifth of
that and still give exactly the answers of the full pass: for a unit row x (the row divided by
its float32 length, as ``engine.fixed_order_scores`` divides it) and a unit query q,

    x . q = P . a + e . (q - U a) + (U^T e) . a,   a = U^T q,  e = x - U P

holds for any stored basis U (d x m) and any stored projection P, so

    x . q <= P . a + R ||q - U a|| + L ||a||

where R >= ||e|| is stored per row and L >= ||U^T e|| once for all rows (both proven from
float32's error bounds when the sketch is made, ``sketch_block``). A row whose bound is below
the k-th exact score of a few rows scored in full cannot be an answer, so only the rows above
it are read and scored (``engine``). The bound holds whatever the rows; how many rows it leaves
depends on how much of the rows the m directions hold (the benchmark reports it).

Pure numpy; knows nothing of files or SQLite.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

WIDTH = 64  # directions kept: a row's sketch is 256 bytes, on a 64-byte boundary
MIN_DIMENSION = 2 * WIDTH  # below this a sketch would be half the rows' bytes or more
SAMPLE_ROWS = 65_536  # rows the directions are found from
UNIT = 2.0 ** -24  # float32's unit roundoff


def gamma(terms: int) -> float:
    """The relative error bound of a float32 sum of ``terms`` products (Higham's gamma_n)."""
    return terms * UNIT / (1 - terms * UNIT)


@dataclass(frozen=True)
class Sketch:
    """The sketch of n rows: ``basis`` (d, m), ``projections`` (n, m) and ``residuals`` (n,), float32;
    ``leak`` bounds ||U^T e|| over every row, ``longest`` ||P|| and ``widest`` R (from the build)."""

    basis: np.ndarray
    projections: np.ndarray
    residuals: np.ndarray
    leak: float
    longest: float
    widest: float
    held: float = 0.0  # the share of the unit rows' squared length the directions hold (a sample's mean)
    checked: np.ndarray | None = None  # per BOUND_BLOCK of rows: whether this process has checked it (``bounds``)


WEAK_HOLD = 0.75  # a sketch holding less than this of the rows rules out few of them: the load says so


def held_share(unit_sample: np.ndarray, basis: np.ndarray) -> float:
    """The mean share of each unit row's squared length that the ``basis`` directions hold."""
    sample = np.asarray(unit_sample, dtype=np.float32)
    sample = sample[np.isfinite(sample).all(axis=1)]
    if not len(sample):
        return 0.0
    projected = np.einsum("ij,ij->i", sample @ basis, sample @ basis, dtype=np.float64)
    whole = np.einsum("ij,ij->i", sample, sample, dtype=np.float64)
    kept = whole > 0
    return float(np.clip(projected[kept] / whole[kept], 0, 1).mean()) if kept.any() else 0.0


def weak_hold_note(held: float) -> str | None:
    """What a load or ``embstore sketch`` says of a sketch that will rule out few rows."""
    if held >= WEAK_HOLD:
        return None
    return (f"the sketch's {WIDTH} directions hold only {held:.0%} of these rows, so single queries will still "
            "read most rows (the answers are the same either way; 'embstore sketch --drop' removes it)")


class SketchDamaged(Exception):
    """Raised by a search that finds the sketch inconsistent with itself or with the rows it bounds:
    the caller sets the sketch aside and scans every row."""


def basis_digest(basis: np.ndarray) -> bytes:
    """16 bytes of the SHA-256 of the stored basis: a file's trailer keeps it, opening checks it."""
    return hashlib.sha256(np.ascontiguousarray(basis, dtype="<f4").tobytes()).digest()[:16]


def consistent(sketch: Sketch, ids: np.ndarray, norms: np.ndarray) -> bool:
    """Whether rows ``ids`` of the sketch can be healthy (``healthy``)."""
    return healthy(sketch.projections[ids], sketch.residuals[ids], norms[ids])


def healthy(projections: np.ndarray, residuals: np.ndarray, norms: np.ndarray) -> bool:
    """Whether these rows' sketch can be a healthy one: a row's ||P||^2 + R^2 is at least the bound
    on ||x||^2 that made R, at least 1, for every row whose length was not divided first
    (``sketch_block``). Zeroed, scaled-down or garbage projections and residuals fail it. Takes
    views (every 16th row, say) without copying them."""
    total = np.einsum("ij,ij->i", projections, projections)  # float32: within gamma_64 (4e-6) of the sum
    total += np.square(residuals)
    odd = ~((norms >= 1e-15) & (norms <= 1e30))
    return bool(((total >= 1 - 1e-4) | odd).all())  # (NaN fails too)


def directions(unit_sample: np.ndarray, width: int = WIDTH) -> np.ndarray:
    """The ``width`` leading directions of unit rows (eigenvectors of their second moment), (d, width) float32."""
    sample = np.asarray(unit_sample, dtype=np.float32)  # any basis gives a true bound: float32 will do
    sample = sample[np.isfinite(sample).all(axis=1)]
    moment = (sample.T @ sample).astype(np.float64) if len(sample) else np.eye(unit_sample.shape[1])
    if not np.isfinite(moment).all():
        moment = np.eye(unit_sample.shape[1])
    _, vectors = np.linalg.eigh(moment)
    return np.ascontiguousarray(vectors[:, ::-1][:, :width], dtype=np.float32)


def basis_error(basis: np.ndarray) -> tuple[float, float]:
    """(||U^T U - I||_2, the longest column of U), in float64, for the stored float32 ``basis``."""
    wide = basis.astype(np.float64)
    gram = wide.T @ wide - np.eye(wide.shape[1])
    return float(np.abs(np.linalg.eigvalsh(gram)).max(initial=0.0)), float(np.sqrt((wide * wide).sum(axis=0)).max())


def sketch_block(rows: np.ndarray, norms: np.ndarray, basis: np.ndarray, orthogonality: float, column: float
                 ) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """(projections, residuals, (leak, longest, widest)) of float32 rows as loaded with their float32
    lengths ``norms``; the rows sketched are x = fl(row / norm), as ``engine.fixed_order_scores`` divides.

    P = fl(fl(row U) / norm): each term is within (gamma_d + 4u) ||x|| ||U_j|| of x . U_j (BLAS's
    sum, the division, and x's own roundings), so ||U^T x - P|| <= D = sqrt(m) (gamma_d + 4u) ||x||
    max_j ||U_j||. With ||e||^2 = ||x||^2 - ||P||^2 - 2 P . (U^T x - P) + P^T (U^T U - I) P,
    R^2 = ||x||^2 - ||P||^2 + 2 ||P|| D + eps ||P||^2 (float64, plus room for its own rounding)
    bounds ||e||^2; and U^T e = (U^T x - P) - (U^T U - I) P gives ||U^T e|| <= D + eps ||P||.

    ||x|| needs no pass over the rows: a float32 length is within gamma_d of the true one (its
    sum of squares, then the root), so ||x|| <= (1 + u) / (sqrt(1 - gamma_d) (1 - u)). That
    fails only where squares are subnormal or the products could overflow; rows with lengths
    outside [1e-15, 1e30] (none in a real embedding) are divided first and measured in float64."""
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.asarray(norms, dtype=np.float32)
    m, d = basis.shape[1], rows.shape[1]
    projections = rows @ basis
    projections /= norms[:, None]
    longest_unit = (1 + UNIT) / (np.sqrt(1 - gamma(d) - 1e-12) * (1 - UNIT))
    squares = np.full(len(rows), longest_unit ** 2)
    odd = np.flatnonzero(~((norms >= 1e-15) & (norms <= 1e30)))
    if len(odd):
        unit = np.divide(rows[odd], norms[odd, None])
        projections[odd] = unit @ basis
        with np.errstate(over="ignore"):
            squares[odd] = np.einsum("ij,ij->i", unit, unit, dtype=np.float64)
    projected = np.einsum("ij,ij->i", projections, projections, dtype=np.float64)
    lengths, longest = np.sqrt(squares), np.sqrt(projected)
    drift = np.sqrt(m) * (gamma(d) + 4 * UNIT) * lengths * column
    room = squares - projected + 2 * longest * drift + orthogonality * projected
    residuals = np.sqrt(np.maximum(room + 1e-12 * (squares + projected) + 1e-30, 0.0))  # + float64's rounding
    residuals = np.nextafter(residuals.astype(np.float32), np.float32(np.inf))  # rounded up
    leaks = drift + orthogonality * longest
    finite = np.isfinite(residuals) & np.isfinite(projections).all(axis=1)
    residuals[~finite] = np.inf  # such a row's bound is infinite: it is always scored
    return projections, residuals, (float(leaks[finite].max(initial=0.0)), float(longest[finite].max(initial=0.0)),
                                    float(residuals[finite].max(initial=0.0)))


BOUND_BLOCK = 16_384  # rows a block: 4 MB of projections, checked while they are at hand


def bounds(sketch: Sketch, query: np.ndarray, count: int, norms: np.ndarray | None = None,
           check_stride: int = 0) -> tuple[np.ndarray, float]:
    """(bound, slack) for the unit float32 ``query`` over the first ``count`` rows: every row's
    x . q is at most bound + slack (NaN bounds mean a damaged sketch). With ``norms`` and a
    ``check_stride``, every ``check_stride``-th row is checked (``healthy``) block by block, as
    the block is read, the first time a process reads it (``checked``; embstore never changes a
    file in place, and damage done later by another program is ``check``'s to find, as for the
    rows): SketchDamaged if one fails."""
    basis = sketch.basis
    wide = query.astype(np.float64)
    along = wide @ basis.astype(np.float64)  # a = U^T q
    across = float(np.linalg.norm(wide - basis.astype(np.float64) @ along))  # ||q - U a||
    reach = float(np.linalg.norm(along))
    found = np.empty(count, dtype=np.float32)
    toward, away = along.astype(np.float32), np.float32(across)
    for start in range(0, count, BOUND_BLOCK):
        stop = min(count, start + BOUND_BLOCK)
        projections, residuals = sketch.projections[start:stop], sketch.residuals[start:stop]
        np.matmul(projections, toward, out=found[start:stop])
        found[start:stop] += residuals * away
        block = start // BOUND_BLOCK
        if check_stride and (sketch.checked is None or not sketch.checked[block]):
            if not healthy(projections[::check_stride], residuals[::check_stride], norms[start:stop:check_stride]):
                raise SketchDamaged("a row's sketch cannot be a healthy one")
            if sketch.checked is not None and stop - start == BOUND_BLOCK:  # (a whole block: not a restricted part)
                sketch.checked[block] = True  # the file is never changed in place: once a process is enough
    m = basis.shape[1]
    # float32's part: a rounded to float32, the m-term product, and the two roundings of the sum
    rounding = (gamma(m) + 2 * UNIT) * sketch.longest * reach * 1.01 + \
        4 * UNIT * (sketch.longest * reach + sketch.widest * across)
    slack = sketch.leak * reach * 1.01 + across * 1e-9 + rounding + 1e-9
    return found, slack
