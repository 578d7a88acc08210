"""Big vocabularies: open time, cold and warm queries, shared memory and load, at GoogleNews size.

    python bench/big.py                      # 3,000,000 x 300 (needs ~11 GB of disk in bench/.cache)
    python bench/big.py --rows 1000000       # a quicker run
    python bench/big.py --growth             # open time, cold query and hnsw from 50k to --rows (~35 min)
    python bench/big.py --growth --hnsw 32,40,16   # the same, with other hnsw settings
    python bench/big.py --sketch             # the rows' sketch: load, size, cold and warm queries (~4.4 GB more)

No file of that size can be downloaded here, so one is made (once, cached): GloVe 6B 50d's
400k words, then generated forms of them (plural, -ing, -ed, re-, un-, ... and numbered
variants), in that order; each vector is its GloVe row (the base word's, for a generated
form) lifted to 300 dimensions by a fixed random projection, plus noise, so that
neighbourhoods are not uniform noise. Written as word2vec binary.

Measured, each in fresh processes with the page cache warm (the file was just read):
  - load: embstore and gensim's load_word2vec_format(binary=True), in turns (--load-repeats,
    default 3 each), median time and highest peak memory;
  - open: Store.open, and gensim's KeyedVectors.load(mmap='r') of the same vectors saved
    with gensim's own save (its fastest open);
  - cold query: `embstore nearest WORD` as a whole process, median of 5;
  - warm exact nearest: ms per query over 100 words, embstore and gensim most_similar;
  - a batch of 1,000 nearest queries through one call, per query, against one by one;
  - four reader processes on the store: their summed PSS against one copy of the rows.
Writes bench/results/big.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from run import CACHE, PEAK, PEAK_WITH_CHILDREN, RESULTS, glove_text, run_python  # noqa: E402
from run import measure_load_embstore as load_embstore  # noqa: E402

DIMENSION = 300
SUFFIXES = ["s", "ing", "ed", "er", "ly", "ness", "ation", "ful", "less", "ism"]
PREFIXES = ["re", "un", "pre", "non", "over"]


def synthetic_words_and_vectors(rows: int):
    """Yield (words, float32 rows) blocks of the synthetic vocabulary (see the module notes)."""
    text = glove_text(400_000)
    words, base = [], []
    with open(text, encoding="utf-8") as handle:
        for line in handle:
            word, *values = line.rstrip("\n").split(" ")
            words.append(word)
            base.append(np.array(values, dtype=np.float32))
    base = np.stack(base)
    rng = np.random.default_rng(300)
    lift = rng.standard_normal((base.shape[1], DIMENSION)).astype(np.float32) / np.sqrt(base.shape[1])
    seen = set(words)
    forms = [(w, i) for i, w in enumerate(words)]
    affixes = [(p, "") for p in PREFIXES] + [("", s) for s in SUFFIXES]
    variants = iter(((f"{p}{w}{s}" if r == 0 else f"{p}{w}{s}_{r}"), i)
                    for r in range(1000) for p, s in affixes for i, w in enumerate(words))
    while len(forms) < rows:
        form, i = next(variants)
        if form not in seen:
            seen.add(form)
            forms.append((form, i))
    del forms[rows:]  # GloVe alone has 400k words
    for start in range(0, rows, 100_000):
        block = forms[start: start + 100_000]
        ids = np.array([i for _, i in block])
        vectors = base[ids] @ lift + 0.15 * rng.standard_normal((len(block), DIMENSION)).astype(np.float32)
        yield [w for w, _ in block], vectors.astype(np.float32)


def binary_entries(words: list[str], vectors: np.ndarray) -> bytes:
    return b"".join(w.encode() + b" " + v.tobytes() + b"\n" for w, v in zip(words, vectors))


def text_values(vectors: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Rows as fastText's .vec files write them (4 decimals, one space between values), and each
    row's length in bytes; no Python formatting per value (values are clipped to (-10, 10))."""
    scaled = np.rint(np.clip(vectors, -9.9999, 9.9999) * 10_000).astype(np.int64)
    rows, dimension = scaled.shape
    digits = np.abs(scaled)
    field = np.empty((rows, dimension, 8), dtype=np.uint8)  # "-d.dddd " or "d.dddd " (+ one byte dropped)
    field[..., 0] = np.where(scaled < 0, ord("-"), 0)
    field[..., 1] = ord("0") + digits // 10_000
    field[..., 2] = ord(".")
    for place, power in enumerate((1000, 100, 10, 1)):
        field[..., 3 + place] = ord("0") + digits // power % 10
    field[..., 7] = ord(" ")
    field[:, -1, 7] = ord("\n")
    flat = field.reshape(rows, -1)
    return flat[flat != 0].tobytes(), np.count_nonzero(flat, axis=1)


def text_entries(words: list[str], vectors: np.ndarray) -> bytes:
    values, lengths = text_values(vectors)
    ends = np.cumsum(lengths)
    return b"".join(w.encode() + b" " + values[end - length:end]
                    for w, end, length in zip(words, ends.tolist(), lengths.tolist()))


def synthetic_file(rows: int, suffix: str = "bin") -> Path:
    """The synthetic vocabulary as word2vec binary ("bin"), or as a .vec text file ("vec", the
    shape and number format of fastText's crawl-300d-2M), made once and cached."""
    path = CACHE / f"big.{rows // 1000}k.{DIMENSION}d.{suffix}"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"making {path.name} ...", file=sys.stderr)
    entries = binary_entries if suffix == "bin" else text_entries
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        out.write(f"{rows} {DIMENSION}\n".encode())
        for words, vectors in synthetic_words_and_vectors(rows):
            out.write(entries(words, vectors))
    tmp.rename(path)
    return path


def load_gensim(source: Path, saved: Path | None, binary: bool = True) -> dict:
    return run_python(f"""
        import json, time
        started = time.perf_counter()
        from gensim.models import KeyedVectors
        kv = KeyedVectors.load_word2vec_format({str(source)!r}, binary={binary})
        seconds = time.perf_counter() - started
        peak = {PEAK}
        if {str(saved) if saved else ""!r}:
            kv.save({str(saved)!r})
        print(json.dumps({{"seconds": seconds, "peak_mb": peak}}))
    """)


def alternate_loads(source: Path, db: Path, saved: Path, repeats: int) -> tuple[dict, dict]:
    """embstore's and gensim's loads, taken in turns ``repeats`` times each (this machine's speed
    drifts by tens of percent within an hour); the median time, the highest peak, and every time."""
    ours, theirs = [], []
    for turn in range(repeats):
        ours.append(load_embstore(source, db))
        theirs.append(load_gensim(source, saved if turn == 0 else None))
    def summary(runs: list[dict]) -> dict:
        return {"seconds": statistics.median(r["seconds"] for r in runs), "peak_mb": max(r["peak_mb"] for r in runs),
                "all_seconds": [round(r["seconds"], 2) for r in runs]}
    return summary(ours), summary(theirs)


def open_times(db: Path, saved: Path) -> dict:
    ours = run_python(f"""
        import json, time
        started = time.perf_counter()
        from embstore import Store
        imported = time.perf_counter()
        store = Store.open({str(db)!r})
        print(json.dumps({{"import": imported - started, "open": time.perf_counter() - imported}}))
    """)
    theirs = run_python(f"""
        import json, time
        from gensim.models import KeyedVectors
        started = time.perf_counter()
        kv = KeyedVectors.load({str(saved)!r}, mmap="r")
        print(json.dumps({{"open": time.perf_counter() - started}}))
    """)
    return {"embstore_open": ours["open"], "embstore_import": ours["import"], "gensim_open_mmap": theirs["open"]}


def cold_query(db: Path, word: str, repeats: int = 5, index: str | None = None) -> float:
    command = [str(Path(sys.executable).parent / "embstore"), "nearest", word, "--db", str(db), "-k", "10",
               *(["--index", index] if index else [])]
    subprocess.run(command, capture_output=True, check=True)  # the page cache holds the files now
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def warm_and_batch(db: Path, saved: Path) -> dict:
    ours = run_python(f"""
        import json, time
        from embstore import Store
        store = Store.open({str(db)!r}, words_in_memory=True)
        words = store.vocabulary()
        chosen = [words[i] for i in range(0, len(words), len(words) // 100)][:100]
        batch = [words[i] for i in range(0, len(words), len(words) // 1000)][:1000]
        store.nearest(chosen[0], k=10)
        started = time.perf_counter()
        for word in chosen:
            store.nearest(word, k=10)
        one = (time.perf_counter() - started) / len(chosen) * 1000
        store.nearest_many(batch[:10], k=10)
        started = time.perf_counter()
        store.nearest_many(batch, k=10)
        many = (time.perf_counter() - started) / len(batch) * 1000
        print(json.dumps({{"one_ms": one, "batch_ms": many}}))
    """)
    theirs = run_python(f"""
        import json, time
        from gensim.models import KeyedVectors
        kv = KeyedVectors.load({str(saved)!r}, mmap="r")
        words = kv.index_to_key
        chosen = [words[i] for i in range(0, len(words), len(words) // 100)][:100]
        kv.most_similar(chosen[0], topn=10)
        started = time.perf_counter()
        for word in chosen:
            kv.most_similar(word, topn=10)
        print(json.dumps({{"one_ms": (time.perf_counter() - started) / len(chosen) * 1000}}))
    """)
    return {"embstore_ms": ours["one_ms"], "embstore_batch_ms": ours["batch_ms"], "gensim_ms": theirs["one_ms"]}


def shared_memory(db: Path, readers: int = 4) -> dict:
    """Start ``readers`` processes that each open the store and answer a query (touching every
    row), then read their PSS from /proc/PID/smaps_rollup."""
    code = textwrap.dedent(f"""
        import sys, time
        from embstore import Store
        store = Store.open({str(db)!r})
        store.nearest("king", k=10)  # touches every row; no word list is built
        print("ready", flush=True)
        sys.stdin.read()
    """)
    processes = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True) for _ in range(readers)]
    try:
        for process in processes:
            assert process.stdout.readline().strip() == "ready"
        pss = rss = 0
        for process in processes:
            fields = dict(line.split(":", 1) for line in open(f"/proc/{process.pid}/smaps_rollup").read().splitlines()[1:])
            pss += int(fields["Pss"].split()[0]) * 1024
            rss += int(fields["Rss"].split()[0]) * 1024
    finally:
        for process in processes:
            process.stdin.close()
            process.wait()
    rows_bytes = next(db.parent.glob(db.name + ".exact.*.faiss")).stat().st_size
    return {"readers": readers, "pss_mb": pss / 1e6, "rss_mb": rss / 1e6, "rows_mb": rows_bytes / 1e6}


def growth(source: Path, largest: int, hnsw: tuple[int, int, int]) -> str:
    """Open time, cold query, warm exact nearest, load time and peak, and store size for the
    first N rows of ``source``, from 50k rows to ``largest``: opening should stay flat. Then an
    hnsw index of each size with the settings ``hnsw`` (m, ef_construction, knn_links): its build
    time, warm query and recall@10 against exact search."""
    lines = ["| rows | load (s) | load peak (MB) | store (MB) | open (ms) | cold `embstore nearest` (s) | "
             "warm exact nearest (ms) | hnsw build (s) | warm hnsw nearest (ms) | hnsw recall@10 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for rows in [n for n in (50_000, 100_000, 200_000, 400_000, 1_000_000, 2_000_000, 3_000_000) if n <= largest]:
        db = CACHE / f"growth.{rows // 1000}k.db"
        for old in db.parent.glob(db.name + "*"):
            old.unlink()
        loaded = run_python(f"""
            import json, time
            started = time.perf_counter()
            from embstore import Store
            Store.load({str(source)!r}, {str(db)!r}, limit={rows})
            print(json.dumps({{"seconds": time.perf_counter() - started, "peak_mb": {PEAK_WITH_CHILDREN}}}))
        """)
        opened = statistics.median(run_python(f"""
            import json, time
            from embstore import Store
            started = time.perf_counter()
            Store.open({str(db)!r}).close()
            print(json.dumps({{"open": time.perf_counter() - started}}))
        """)["open"] for _ in range(3))
        warm = run_python(f"""
            import json, time
            from embstore import Store
            store = Store.open({str(db)!r}, words_in_memory=True)
            words = store.vocabulary()
            chosen = [words[i] for i in range(0, len(words), len(words) // 50)][:50]
            store.nearest(chosen[0], k=10)
            started = time.perf_counter()
            for word in chosen:
                store.nearest(word, k=10)
            print(json.dumps({{"ms": (time.perf_counter() - started) / len(chosen) * 1000}}))
        """)
        size = sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if not p.name.endswith(("-wal", "-shm")))
        cold = cold_query(db, "king")
        built = build_hnsw(db, *hnsw)
        quality = hnsw_quality(db)
        lines.append(f"| {rows:,} | {loaded['seconds']:.1f} | {loaded['peak_mb']:.0f} | {size / 1e6:.0f} | "
                     f"{opened * 1000:.0f} | {cold:.3f} | {warm['ms']:.1f} | {built['seconds']:.0f} | "
                     f"{quality['warm_ms']:.2f} | {quality['recall']:.3f} |")
        print(lines[-1], file=sys.stderr, flush=True)
        for old in db.parent.glob(db.name + "*"):
            old.unlink()
    return "\n".join(lines)


def vec_load(rows: int) -> None:
    source = synthetic_file(rows, "vec")
    db = CACHE / f"big.vec.{rows // 1000}k.db"
    ours, theirs = load_embstore(source, db), load_gensim(source, None, binary=False)
    for old in db.parent.glob(db.name + "*"):
        old.unlink()
    table = "\n".join([
        "| figure | embstore | gensim 4 | ratio |", "| --- | --- | --- | --- |",
        f"| load .vec text ({source.stat().st_size / 1e9:.1f} GB) | {ours['seconds']:.1f} s, peak {ours['peak_mb']:.0f} MB | "
        f"{theirs['seconds']:.1f} s, peak {theirs['peak_mb']:.0f} MB | {theirs['seconds'] / ours['seconds']:.2f}x faster, "
        f"{ours['peak_mb'] / theirs['peak_mb']:.2f} of the memory |"])
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"big.vec.{rows // 1000}k.md").write_text(
        f"# {rows:,} x {DIMENSION} .vec text (synthetic; `python bench/big.py --vec --rows {rows}`)\n\n{table}\n")


def build_hnsw(db: Path, m: int, ef_construction: int, knn_links: int) -> dict:
    """Build (or rebuild) the store's hnsw index in a fresh process; its seconds."""
    return run_python(f"""
        import json, time
        from embstore import Store
        with Store.open({str(db)!r}) as store:
            try:
                store.drop_index("hnsw")  # a graph from an earlier run
            except Exception:
                pass
            started = time.perf_counter()
            store.build_index("hnsw", m={m}, ef_construction={ef_construction}, knn_links={knn_links})
            print(json.dumps({{"seconds": time.perf_counter() - started}}))
    """)


def hnsw_quality(db: Path, words: int = 100) -> dict:
    """Warm hnsw nearest (ms a query, k=10) and its recall@10 against exact search, over ``words``
    words spread evenly over the vocabulary, in a fresh process."""
    return run_python(f"""
        import json, time
        from embstore import Store
        store = Store.open({str(db)!r}, words_in_memory=True)
        words = store.vocabulary()
        chosen = [words[i] for i in range(0, len(words), len(words) // {words})][:{words}]
        hits = 0
        for word in chosen:
            exact = set(store.nearest(word, k=10, index="exact").words())
            hits += len(exact & set(store.nearest(word, k=10, index="hnsw").words()))
        warm = time.perf_counter()
        for word in chosen:
            store.nearest(word, k=10, index="hnsw")
        print(json.dumps({{"recall": hits / (10 * len(chosen)),
                           "warm_ms": (time.perf_counter() - warm) / len(chosen) * 1000}}))
    """)


def hnsw_at_size(rows: int, m: int, ef_construction: int, knn_links: int) -> None:
    """Build an hnsw index of the --rows store (made by a plain run first), then its first query in a
    fresh process: wall time, and how much of the index file that query touched (page faults
    of the process, against the file's size), and recall@10 over 100 words against exact search."""
    db = CACHE / f"big.{rows // 1000}k.db"
    if not db.exists():
        load_embstore(synthetic_file(rows), db)
    built = build_hnsw(db, m, ef_construction, knn_links)
    first = run_python(f"""
        import json, resource, time
        started = time.perf_counter()
        from embstore import Store
        store = Store.open({str(db)!r})
        before = resource.getrusage(resource.RUSAGE_SELF)
        opened = time.perf_counter()
        store.nearest("king", k=10, index="hnsw")
        answered = time.perf_counter()
        after = resource.getrusage(resource.RUSAGE_SELF)
        faults = (after.ru_minflt - before.ru_minflt) + (after.ru_majflt - before.ru_majflt)
        print(json.dumps({{"process_to_answer": answered - started, "first_query": answered - opened,
                           "touched_mb": faults * 4096 / 1e6}}))
    """)
    first.update(hnsw_quality(db))
    size = sum(p.stat().st_size for p in db.parent.glob(db.name + ".hnsw.*.faiss"))
    cold = cold_query(db, "king", index="hnsw")
    table = "\n".join([
        "| figure | value |", "| --- | --- |",
        f"| hnsw build (m {m}, ef_construction {ef_construction}, knn_links {knn_links}) | {built['seconds']:.0f} s |",
        f"| index file | {size / 1e6:,.0f} MB |",
        f"| first hnsw query after opening, in a fresh process | {first['first_query'] * 1000:.1f} ms; "
        f"{first['touched_mb']:.1f} MB of pages touched (page faults, FAISS's import included) |",
        f"| cold `embstore nearest king --index hnsw` (whole process, median of 5) | {cold:.3f} s |",
        f"| warm hnsw nearest, k=10 | {first['warm_ms']:.2f} ms, recall@10 {first['recall']:.3f} over 100 words |"])
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"big.{rows // 1000}k.hnsw.{m}-{ef_construction}-{knn_links}.md").write_text(
        f"# hnsw on {rows:,} x {DIMENSION} (synthetic; `python bench/big.py --rows {rows} --hnsw {m},{ef_construction},"
        f"{knn_links}`)\n\n{table}\n")


def load_sketched(source: Path, db: Path) -> dict:
    for old in db.parent.glob(db.name + "*"):
        old.unlink()
    return run_python(f"""
        import json, time
        started = time.perf_counter()
        from embstore import Store
        Store.load({str(source)!r}, {str(db)!r}, sketch=True)
        print(json.dumps({{"seconds": time.perf_counter() - started, "peak_mb": {PEAK_WITH_CHILDREN}}}))
    """)


def sketch_queries(db: Path, words: int = 100) -> dict:
    """Warm exact nearest over ``words`` words spread over the vocabulary, and how many rows
    each query scored in full (the rest the sketch ruled out)."""
    return run_python(f"""
        import json, statistics, time
        from embstore import Store
        from embstore.search import engine
        scored = []
        original = engine._rescored
        def counting(rows, norms, query, candidates, fetch):
            scored.append(len(candidates))
            return original(rows, norms, query, candidates, fetch)
        engine._rescored = counting
        store = Store.open({str(db)!r}, words_in_memory=True)
        vocabulary = store.vocabulary()
        chosen = [vocabulary[i] for i in range(0, len(vocabulary), len(vocabulary) // {words})][:{words}]
        store.nearest(chosen[0], k=10)
        per_query, times = [], []
        for word in chosen:
            scored.clear()
            started = time.perf_counter()
            store.nearest(word, k=10)
            times.append(time.perf_counter() - started)
            per_query.append(scored[-1])
        print(json.dumps({{"ms": statistics.mean(times) * 1000, "scored_median": statistics.median(per_query),
                           "scored_max": max(per_query), "rows": len(vocabulary)}}))
    """)


def sketch_run(rows: int, repeats: int) -> None:
    """A sketched store of the --rows file against the plain one: load (in turns), size, cold
    query (median of 9, in turns with the plain store and the 400k GloVe store) and warm nearest."""
    source = synthetic_file(rows)
    plain, sketched = CACHE / f"big.{rows // 1000}k.plain.db", CACHE / f"big.{rows // 1000}k.sketch.db"
    loads = {"plain": [], "sketched": []}
    for _ in range(repeats):
        loads["plain"].append(load_embstore(source, plain))
        loads["sketched"].append(load_sketched(source, sketched))
    glove = CACHE / "bench.400k.db"
    cold = {"plain": [], "sketched": [], "glove": []}
    for _ in range(9):
        for name, db in (("glove", glove), ("plain", plain), ("sketched", sketched)):
            if db.exists():
                cold[name].append(cold_query(db, "king", repeats=1))
    size = {name: sum(f.stat().st_size for f in CACHE.glob(db.name + "*")) / 1e6
            for name, db in (("plain", plain), ("sketched", sketched))}
    warm = {"plain": sketch_queries(plain), "sketched": sketch_queries(sketched)}
    median = {name: statistics.median(times) if times else float("nan") for name, times in cold.items()}
    load = {name: (statistics.median(r["seconds"] for r in runs), max(r["peak_mb"] for r in runs))
            for name, runs in loads.items()}
    table = "\n".join([
        "| figure | plain store | sketched store (`load --sketch`) |", "| --- | --- | --- |",
        f"| load word2vec binary (median of {repeats}, in turns) | {load['plain'][0]:.1f} s, peak {load['plain'][1]:.0f} MB "
        f"| {load['sketched'][0]:.1f} s, peak {load['sketched'][1]:.0f} MB |",
        f"| store on disk | {size['plain']:.0f} MB | {size['sketched']:.0f} MB |",
        f"| cold `embstore nearest king` (median of 9, in turns) | {median['plain']:.3f} s | {median['sketched']:.3f} s "
        f"({median['sketched'] / median['glove']:.2f}x the 400k GloVe store's {median['glove']:.3f} s) |",
        f"| warm exact nearest, k=10, 100 words | {warm['plain']['ms']:.1f} ms | {warm['sketched']['ms']:.1f} ms |",
        f"| rows scored in full per query (median, most) | all {warm['plain']['rows']:,} | "
        f"{warm['sketched']['scored_median']:,.0f}, {warm['sketched']['scored_max']:,} |",
    ])
    print(table)
    print(json.dumps({"cold": cold, "loads": loads}, indent=1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"sketch.{rows // 1000}k.md").write_text(
        f"# The rows' sketch at {rows:,} x {DIMENSION} (synthetic; `python bench/big.py --sketch --rows {rows}`)\n\n"
        f"{table}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--growth", action="store_true", help="only the growth table, 50k rows to --rows")
    parser.add_argument("--load-repeats", type=int, default=3,
                        help="loads of each, embstore and gensim in turns; the table gives the median (default 3)")
    parser.add_argument("--vec", action="store_true",
                        help="only the load of a .vec text file of --rows rows (2,000,000 for crawl-300d-2M's shape; "
                             "needs ~5 GB of disk), embstore against gensim")
    parser.add_argument("--hnsw", metavar="M,EF_CONSTRUCTION,KNN_LINKS",
                        help="only an hnsw build of the --rows store and its first query (plain HNSW, 16,40,0, "
                             "builds 3M x 300 in a fraction of the default's time)")
    parser.add_argument("--sketch", action="store_true",
                        help="only the sketched store (load --sketch) against the plain one: load, size, cold and "
                             "warm queries (needs ~4.4 GB more disk at 3M)")
    args = parser.parse_args()
    if args.sketch:
        sketch_run(args.rows, args.load_repeats)
        return
    if args.hnsw and not args.growth:
        hnsw_at_size(args.rows, *(int(v) for v in args.hnsw.split(",")))
        return
    if args.vec:
        vec_load(args.rows)
        return
    source = synthetic_file(args.rows)
    if args.growth:
        table = growth(source, args.rows, tuple(int(v) for v in (args.hnsw or "16,40,0").split(",")))
        print(table)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "growth.md").write_text(f"# Growth, {DIMENSION}-d synthetic rows (`python bench/big.py --growth "
                                           f"--rows {args.rows} --hnsw {args.hnsw or '16,40,0'}`)\n\n{table}\n")
        return
    db = CACHE / f"big.{args.rows // 1000}k.db"
    saved = CACHE / f"big.{args.rows // 1000}k.kv"
    figures = {"rows": args.rows, "dimension": DIMENSION}
    figures["load_embstore"], figures["load_gensim"] = alternate_loads(source, db, saved, args.load_repeats)
    figures["open"] = open_times(db, saved)
    figures["cold_query_s"] = cold_query(db, "king")
    figures["warm"] = warm_and_batch(db, saved)
    figures["shared"] = shared_memory(db)
    print(json.dumps(figures, indent=2))
    le, lg, op, w, sh = (figures["load_embstore"], figures["load_gensim"], figures["open"], figures["warm"],
                         figures["shared"])
    table = "\n".join([
        "| figure | embstore | gensim 4 | ratio |", "| --- | --- | --- | --- |",
        f"| load word2vec binary (median of {len(le['all_seconds'])}, in turns) | {le['seconds']:.1f} s "
        f"({', '.join(map(str, le['all_seconds']))}), peak {le['peak_mb']:.0f} MB | {lg['seconds']:.1f} s "
        f"({', '.join(map(str, lg['all_seconds']))}), "
        f"peak {lg['peak_mb']:.0f} MB | {lg['seconds'] / le['seconds']:.2f}x faster, "
        f"{le['peak_mb'] / lg['peak_mb']:.2f} of the memory |",
        f"| open | {op['embstore_open'] * 1000:.0f} ms (+ {op['embstore_import'] * 1000:.0f} ms imports) | "
        f"{op['gensim_open_mmap'] * 1000:.0f} ms (KeyedVectors.load(mmap='r')) | - |",
        f"| cold `embstore nearest king` (whole process, median of 5) | {figures['cold_query_s']:.3f} s | - | - |",
        f"| warm exact nearest, k=10 | {w['embstore_ms']:.1f} ms | {w['gensim_ms']:.1f} ms (most_similar) | "
        f"{w['gensim_ms'] / w['embstore_ms']:.2f}x faster |",
        f"| batch of 1,000 nearest, per query | {w['embstore_batch_ms']:.2f} ms | - | "
        f"{w['embstore_ms'] / w['embstore_batch_ms']:.1f}x faster than one by one |",
        f"| {sh['readers']} reader processes, summed PSS | {sh['pss_mb']:.0f} MB (rows file {sh['rows_mb']:.0f} MB; "
        f"summed RSS {sh['rss_mb']:.0f} MB) | - | {sh['pss_mb'] / sh['rows_mb']:.2f} copies of the rows |",
    ])
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"big.{args.rows // 1000}k.md").write_text(
        f"# {args.rows:,} x {DIMENSION} (synthetic; `python bench/big.py --rows {args.rows}`)\n\n{table}\n")
    (RESULTS / f"big.{args.rows // 1000}k.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
