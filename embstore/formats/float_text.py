"""float32 values as the shortest decimal text that reads back to the same float32.

gensim writes ``str(np.float32(x))`` one value at a time (1.2 s per million values here);
this finds each value's shortest precision for a whole block with numpy and formats with
``%.<p>g`` (0.8 s per million): same digits, so the same float32 when read back, and an
export -> load -> export round trip is byte-identical. ``%g`` spells some values
differently from numpy's ``repr`` ('1' for '1.0', '1e-05' alike).
"""

from __future__ import annotations

import numpy as np

MAX_DIGITS = 9  # every float32 reads back exactly from 9 significant digits
_FORMATS = [""] + [f"%.{p}g" for p in range(1, MAX_DIGITS + 1)]
_MARGIN = 1e-6  # where float64 rounding cannot be trusted to match decimal rounding, use 9 digits


def shortest_digits(values: np.ndarray) -> np.ndarray:
    """For each float32 value, the fewest significant digits p (1 to 9) whose ``%.<p>g``
    text reads back to the same float32.

    The rounding to p digits is done in float64 (``rint(x * 10**s) / 10**s``), on the
    values still undecided; it agrees with the decimal rounding ``%g`` does except within
    a hair of a rounding tie or of the edge between two float32 values, and those few
    values are decided by formatting and reading back. Zeros, infinities and NaN get 1.
    """
    flat = values.ravel()
    digits = np.full(flat.shape, MAX_DIGITS, dtype=np.int8)
    exact = flat.astype(np.float64)
    size = np.abs(exact)
    finite = np.isfinite(size) & (size > 0)
    digits[~finite] = 1
    pending = np.flatnonzero(finite)
    doubtful = []
    with np.errstate(over="ignore"):
        exponent = np.floor(np.log10(size[pending]))
        goal = flat[pending]
        target = exact[pending]
        half_gap = np.abs(np.nextafter(goal, np.float32(np.inf)).astype(np.float64) - target) / 2
        for p in range(1, MAX_DIGITS):
            if not len(pending):
                break
            scale = 10.0 ** (p - 1 - exponent)
            scaled = target * scale
            rounded = np.rint(scaled)
            decimal = rounded / scale
            fits = decimal.astype(np.float32) == goal
            unsure = (np.abs(scaled - rounded) > 0.5 - _MARGIN) | \
                (np.abs(np.abs(decimal - target) - half_gap) <= _MARGIN * half_gap)
            if unsure.any():
                doubtful.append(pending[unsure])
            done = fits | unsure
            digits[pending[fits & ~unsure]] = p
            keep = ~done
            pending, exponent, goal, target, half_gap = (pending[keep], exponent[keep], goal[keep],
                                                        target[keep], half_gap[keep])
    if doubtful:
        for position in np.unique(np.concatenate(doubtful)).tolist():
            digits[position] = _digits_by_text(float(exact[position]), flat[position])
    return digits.reshape(values.shape)


def _digits_by_text(value: float, goal: np.float32) -> int:
    with np.errstate(over="ignore"):  # 9 digits of the largest float32 may read as a larger number
        for p in range(1, MAX_DIGITS):
            if np.float32(float(_FORMATS[p] % value)) == goal:
                return p
    return MAX_DIGITS


def format_rows(words: list[str], rows: np.ndarray) -> list[str]:
    """'word v1 ... vd' lines (without line ends), each value in its shortest exact form."""
    digits = shortest_digits(rows)
    return [("%s " + " ".join([_FORMATS[p] for p in row_digits])) % (word, *row)
            for word, row, row_digits in zip(words, rows.tolist(), digits.tolist())]
