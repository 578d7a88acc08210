"""fastText .bin models: load time and peak memory, and vectors for words outside the
vocabulary, against gensim's load_facebook_vectors on the same file.

    python bench/fasttext.py                 # 400,000 words x 300, 2,000,000 buckets (~3.4 GB in bench/.cache)
    python bench/fasttext.py --words 100000 --dimension 100 --bucket 200000   # a quicker run
    python bench/fasttext.py --quick         # seconds: a small model, the same code paths

No real crawl model can be downloaded here, so one of the same shape is written (once,
cached) in fastText's version 12 format: GloVe 6B's 400k words (then generated forms for
more), Zipf counts, skipgram arguments with fastText's defaults (minn 3, maxn 6, bucket
2,000,000), and rows drawn at random (the load and the n-gram arithmetic do not depend on
their values). Its bucket matrix is as big relative to the dimension as a real model's.

Measured in fresh processes with the page cache warm:
  - load: Store.load and gensim's load_facebook_vectors, time and peak memory (VmHWM);
  - out-of-vocabulary vectors: one word (median over 200 words, one call each) and a batch
    of 10,000 words in one call, embstore (store.vector / the n-gram vectors of a batch)
    against gensim (kv[word] for each).
Writes bench/results/fasttext.md.
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from run import CACHE, PEAK, PEAK_WITH_CHILDREN, RESULTS, glove_text, run_python  # noqa: E402

MAGIC, VERSION = 793712314, 12


def model_words(count: int) -> list[str]:
    """GloVe's words in frequency order, then generated forms of them."""
    words = []
    with open(glove_text(400_000), encoding="utf-8") as handle:
        for line in handle:
            words.append(line.split(" ", 1)[0])
            if len(words) == count:
                return words
    seen = set(words)
    for suffix in ("s", "ing", "ed", "er", "ly", "ness", "ation"):
        for word in list(words[:400_000]):
            if len(words) == count:
                return words
            if word + suffix not in seen:
                words.append(word + suffix)
                seen.add(word + suffix)
    raise ValueError(f"cannot make {count:,} words")


def write_model(path: Path, words: list[str], dimension: int, bucket: int, minn: int = 3, maxn: int = 6) -> None:
    """A skipgram model in fastText's version 12 format (see embstore/formats/fasttext_model.py)."""
    rng = np.random.default_rng(17)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        out.write(struct.pack("<2i", MAGIC, VERSION))
        out.write(struct.pack("<12id", dimension, 5, 5, 5, 5, 1, 2, 2, bucket, minn, maxn, 100, 1e-4))
        counts = (1e9 / np.arange(1, len(words) + 1)).astype(np.int64) + 5
        out.write(struct.pack("<3iqq", len(words), len(words), 0, int(counts.sum()), -1))
        out.write(b"".join(w.encode() + b"\0" + struct.pack("<qb", int(c), 0) for w, c in zip(words, counts)))
        out.write(b"\0" + struct.pack("<2q", len(words) + bucket, dimension))
        for start in range(0, len(words) + bucket, 100_000):
            rows = min(100_000, len(words) + bucket - start)
            out.write((rng.standard_normal((rows, dimension), dtype=np.float32) * 0.1).tobytes())
        out.write(b"\0" + struct.pack("<2q", len(words), dimension))
        zeros = np.zeros((min(100_000, len(words)), dimension), dtype=np.float32).tobytes()
        for start in range(0, len(words), 100_000):
            out.write(zeros[: 4 * dimension * min(100_000, len(words) - start)])
    tmp.rename(path)


def model_file(words: int, dimension: int, bucket: int) -> Path:
    path = CACHE / f"fasttext.{words // 1000}k.{dimension}d.{bucket // 1000}kb.bin"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"making {path.name} ...", file=sys.stderr)
        write_model(path, model_words(words), dimension, bucket)
    return path


def measure_load(model: Path, db: Path) -> dict:
    for old in db.parent.glob(db.name + "*"):
        old.unlink()
    ours = run_python(f"""
        import json, time
        started = time.perf_counter()
        from embstore import Store
        report = Store.load({str(model)!r}, {str(db)!r})
        print(json.dumps({{"seconds": time.perf_counter() - started, "peak_mb": {PEAK_WITH_CHILDREN}, "words": report.words}}))
    """)
    theirs = run_python(f"""
        import json, time, logging
        started = time.perf_counter()
        from gensim.models.fasttext import load_facebook_vectors
        kv = load_facebook_vectors({str(model)!r})
        print(json.dumps({{"seconds": time.perf_counter() - started, "peak_mb": {PEAK}, "words": len(kv)}}))
    """)
    return {"embstore": ours, "gensim": theirs}


OOV_CODE = """
    import json, random, statistics, time
    words = [w for w in (line.split(" ", 1)[0] for line in open({glove!r}, encoding="utf-8"))][:50000]
    rng = random.Random(5)
    unknown = [rng.choice(words) + rng.choice(["zq", "xx", "qé", "ingz"]) + str(i) for i in range(10_000)]
"""


def measure_oov(model: Path, db: Path) -> dict:
    glove = str(glove_text(400_000))
    ours = run_python(OOV_CODE.format(glove=glove) + f"""
    from embstore import Store
    store = Store.open({str(db)!r})
    store.vector(unknown[0])  # maps the n-gram rows
    single = []
    for word in unknown[1:201]:
        started = time.perf_counter(); store.vector(word); single.append(time.perf_counter() - started)
    started = time.perf_counter()
    resolved = store.resolve_many(unknown)
    batch = time.perf_counter() - started
    assert all(r.built is not None for r in resolved)
    print(json.dumps({{"one_ms": statistics.median(single) * 1000, "batch_s": batch}}))
    """)
    theirs = run_python(OOV_CODE.format(glove=glove) + f"""
    from gensim.models.fasttext import load_facebook_vectors
    kv = load_facebook_vectors({str(model)!r})
    kv[unknown[0]]
    single = []
    for word in unknown[1:201]:
        started = time.perf_counter(); kv[word]; single.append(time.perf_counter() - started)
    started = time.perf_counter()
    vectors = [kv[w] for w in unknown]
    print(json.dumps({{"one_ms": statistics.median(single) * 1000, "batch_s": time.perf_counter() - started}}))
    """)
    return {"embstore": ours, "gensim": theirs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--words", type=int, default=400_000)
    parser.add_argument("--dimension", type=int, default=300)
    parser.add_argument("--bucket", type=int, default=2_000_000)
    parser.add_argument("--quick", action="store_true", help="20,000 words x 50, 100,000 buckets")
    args = parser.parse_args()
    if args.quick:
        args.words, args.dimension, args.bucket = 20_000, 50, 100_000
    model = model_file(args.words, args.dimension, args.bucket)
    db = CACHE / f"fasttext.{args.words // 1000}k.db"
    load = measure_load(model, db)
    oov = measure_oov(model, db)
    e, g = load["embstore"], load["gensim"]
    size = model.stat().st_size / 1e9
    lines = [
        f"### fastText .bin: {args.words:,} words x {args.dimension}, {args.bucket:,} buckets ({size:.2f} GB)",
        "",
        "| | embstore | gensim load_facebook_vectors | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| load | {e['seconds']:.1f} s | {g['seconds']:.1f} s | {g['seconds'] / e['seconds']:.1f}x faster |",
        f"| peak memory | {e['peak_mb']:,.0f} MB | {g['peak_mb']:,.0f} MB | {g['peak_mb'] / e['peak_mb']:.1f}x less |",
        f"| one word outside the vocabulary | {oov['embstore']['one_ms']:.3f} ms | {oov['gensim']['one_ms']:.3f} ms | "
        f"{oov['gensim']['one_ms'] / oov['embstore']['one_ms']:.1f}x |",
        f"| 10,000 words outside the vocabulary, one call | {oov['embstore']['batch_s'] * 1000:.0f} ms | "
        f"{oov['gensim']['batch_s'] * 1000:.0f} ms (a loop) | {oov['gensim']['batch_s'] / oov['embstore']['batch_s']:.1f}x |",
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    if not args.quick:
        (RESULTS / "fasttext.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
