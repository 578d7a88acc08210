"""Whole-vocabulary neighbours and sharded exact search: one process, and a local Ray cluster.

    pip install '.[bench,ray]'
    python bench/ray_scale.py            # the 400k GloVe 6B 50d store (made once in bench/.cache)
    python bench/ray_scale.py --quick    # a smoke run on 5,000 words of the bundled sample (about a minute)

Measures, with k = 10:
- ``neighbours --all`` (every word's 10 nearest), exact and through HNSW: in this process
  without Ray, and as Ray tasks on a local cluster of 1 node and of 2 nodes (1 CPU each,
  loopback, started and stopped here as the tests do); the Ray output is checked to be
  byte for byte the one-process output.
- Sharded search: a batch of 1,000 word queries through 1, 2 and 4 shard actors on the
  2-node cluster (median of 3 after a warm-up): exact, checked to equal the unsharded
  answers, and through an HNSW graph per shard, with its recall@10 against exact.
Then prints, from the measured per-CPU rates, the paper estimate for 157 fastText languages
(README, "Scaling out"). Writes bench/results/ray_scale.md (not in --quick).
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the local cluster the tests start
sys.path.insert(0, str(ROOT / "bench"))

from embstore import Store  # noqa: E402
from embstore.distributed.neighbour_files import write_all_neighbours  # noqa: E402

K = 10
BLOCK = 1_000
SHARD_QUERIES = 1_000
# The 157-language deployment of the issue: fastText's cc.*.300 vectors, 2M words each.
LANGUAGES, WORDS_PER_LANGUAGE, DIMENSION = 157, 2_000_000, 300


def quick_store(folder: Path, words: int = 5_000) -> Path:
    text = folder / "sample.txt"
    with gzip.open(ROOT / "data" / "glove.6B.50d.50k.txt.gz", "rt", encoding="utf-8") as source, \
            open(text, "w", encoding="utf-8") as out:
        for _, line in zip(range(words), source):
            out.write(line)
    db = folder / "quick.db"
    Store.load(text, db)
    with Store.open(db) as store:
        store.build_index("hnsw")
    return db


def full_store(words: int = 400_000) -> Path:
    from run import CACHE, glove_text

    db = CACHE / f"ray.{words // 1000}k.db"
    if not db.exists():
        print(f"loading {words:,} words and building their hnsw index (once) ...", file=sys.stderr)
        Store.load(glove_text(400_000), db, limit=words)
        with Store.open(db) as store:
            store.build_index("hnsw")
    return db


def timed_job(db: Path, output: Path, index: str, address: str | None) -> float:
    started = time.perf_counter()
    with Store.open(db) as store:
        write_all_neighbours(store, output, K, index=index, address=address, block=BLOCK)
    return time.perf_counter() - started


def shard_latency(db: Path, address: str, shards: int, kind: str = "exact") -> tuple[float, str]:
    """Median seconds of a 1,000-query batch through the shards, and for exact whether the
    answers equal the unsharded store's, for hnsw the recall@k against exact."""
    from embstore.distributed.ray_shards import RayShards

    with Store.open(db) as store:
        words = store.vocabulary()
        step = max(1, len(words) // SHARD_QUERIES)
        queries = words[::step][:SHARD_QUERIES]
        expected = store.nearest_many(queries, k=K, index="exact")
        with RayShards(address, store, shards, graph=kind == "hnsw") as sharded:
            sharded.nearest_many(queries, k=K, kind=kind)  # warm-up: the actors load their rows
            times = []
            for _ in range(3):
                started = time.perf_counter()
                answers = sharded.nearest_many(queries, k=K, kind=kind)
                times.append(time.perf_counter() - started)
    if kind == "exact":
        same = [(r.query, r.neighbours) for r in answers] == [(r.query, r.neighbours) for r in expected]
        return statistics.median(times), "identical" if same else "DIFFERENT"
    found = sum(len(set(r.words()) & set(e.words())) for r, e in zip(answers, expected))
    return statistics.median(times), f"recall@{K} {found / sum(len(e.words()) for e in expected):.4f}"


def shard_files_rows(db: Path, address: str) -> list[str]:
    """For 1, 2 and 4 shards: the time ``embstore shard --graphs`` takes, then how long the shard
    actors take to load (first batch) from the store's shard files and from ranges of its one
    rows file (graphs read from the files, or built by each actor), and whether the answers are
    the unsharded store's."""
    from embstore.distributed.ray_shards import RayShards

    lines = []
    with Store.open(db) as store:
        words = store.vocabulary()
        queries = words[:: max(1, len(words) // SHARD_QUERIES)][:SHARD_QUERIES]
        expected = [(r.query, r.neighbours) for r in store.nearest_many(queries, k=K, index="exact")]
        for shards in (1, 2, 4):
            started = time.perf_counter()
            store.shard(shards, graphs=True)
            written = time.perf_counter() - started
            for from_files in (True, False):
                if not from_files:
                    store.drop_shards()
                for kind in ("exact", "hnsw"):
                    started = time.perf_counter()
                    with RayShards(address, store, shards, graph=kind == "hnsw") as sharded:
                        answers = sharded.nearest_many(queries, k=K, kind=kind)
                        loaded = time.perf_counter() - started
                        started = time.perf_counter()
                        sharded.nearest_many(queries, k=K, kind=kind)
                        warm = time.perf_counter() - started
                    if kind == "exact":
                        same = [(r.query, r.neighbours) for r in answers] == expected
                        outcome = "identical" if same else "DIFFERENT"
                    else:
                        found = sum(len({n.word for n in a.neighbours} & {n.word for n in e[1]})
                                    for a, e in zip(answers, expected))
                        outcome = f"recall@{K} {found / (K * len(expected)):.4f}"
                    source = "shard files" if from_files else "ranges of the rows file"
                    lines.append(f"| {shards} | {written if from_files else 0:.1f} | {source} | {kind} | "
                                 f"{loaded:.2f} | {warm:.3f} | {outcome} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run on 5,000 words")
    parser.add_argument("--indexes", default="exact,hnsw",
                        help="the searches to measure, comma-separated (hnsw alone: the 400k run takes minutes, "
                             "exact about an hour on 2 cores)")
    parser.add_argument("--shard-files", action="store_true",
                        help="only the shard layout: write it, and time the shard actors loading it on 2 nodes")
    parser.add_argument("--words", type=int, default=400_000,
                        help="the GloVe words to use (the exact job grows with the square: 100000 takes 1/16 of the time)")
    options = parser.parse_args()
    import ray
    from ray_cluster import LocalRayCluster

    work = Path(tempfile.mkdtemp(prefix="ray-bench"))
    db = quick_store(work) if options.quick else full_store(options.words)
    if options.shard_files:
        cluster = LocalRayCluster()
        try:
            cluster.start(workers=1)
            lines = shard_files_rows(db, cluster.address)
        finally:
            ray.shutdown()
            cluster.stop()
        with Store.open(db) as store:
            words = len(store)
        report = "\n".join([f"### Shard files, {words:,} words, 2-node cluster; a batch of "
                            f"{SHARD_QUERIES:,} word queries, k = {K}", "",
                            "| shards | `shard --graphs` s | actors load from | search | first batch s (load + "
                            "answer) | next batch s | answers |", "| ---: | ---: | --- | --- | ---: | ---: | --- |",
                            *lines])
        print(report)
        if not options.quick:
            (ROOT / "bench" / "results" / "shard_files.md").write_text(report + "\n", encoding="utf-8")
        shutil.rmtree(work, ignore_errors=True)
        return
    with Store.open(db) as store:
        words = len(store)
    indexes = [index for index in ("exact", "hnsw") if index in options.indexes.split(",")]
    rows, figures = [], {}
    for index in indexes:
        alone = work / f"alone.{index}.tsv"
        figures[index, 0] = timed_job(db, alone, index, None)
        rows.append((index, "one process, no Ray", figures[index, 0], "-"))
    shard_rows = []
    for nodes in (1, 2):
        cluster = LocalRayCluster()
        try:
            cluster.start(workers=nodes - 1)
            for index in indexes:
                output = work / f"ray{nodes}.{index}.tsv"
                figures[index, nodes] = timed_job(db, output, index, cluster.address)
                same = output.read_bytes() == (work / f"alone.{index}.tsv").read_bytes()
                rows.append((index, f"Ray, {nodes} node{'s' if nodes > 1 else ''} x 1 CPU", figures[index, nodes],
                             "yes" if same else "NO"))
            if nodes == 2:
                for kind in indexes:
                    for shards in (1, 2, 4):
                        seconds, answers = shard_latency(db, cluster.address, shards, kind)
                        shard_rows.append((kind, shards, seconds, answers))
        finally:
            ray.shutdown()
            cluster.stop()
    lines = [f"### Whole-vocabulary neighbours, k = {K}, {words:,} words, blocks of {BLOCK:,} words", "",
             "| index | where | seconds | words/s | output identical to one process |", "| --- | --- | ---: | ---: | --- |"]
    lines += [f"| {index} | {where} | {seconds:.2f} | {words / seconds:,.0f} | {same} |"
              for index, where, seconds, same in rows]
    lines += ["", f"### Sharded search, a batch of {SHARD_QUERIES:,} word queries, k = {K} (2-node cluster; "
              "answers against the unsharded store's exact search)", "",
              "| search | shards | seconds (median of 3) | answers |", "| --- | ---: | ---: | --- |"]
    lines += [f"| {kind} | {shards} | {seconds:.3f} | {answers} |" for kind, shards, seconds, answers in shard_rows]
    if len(indexes) == 2:
        lines += ["", *estimate(words, figures)]
    report = "\n".join(lines)
    shutil.rmtree(work, ignore_errors=True)
    print(report)
    if not options.quick:
        name = "ray_scale.md" if len(indexes) == 2 else f"ray_scale.{words // 1000}k.{'.'.join(indexes)}.md"
        (ROOT / "bench" / "results" / name).write_text(report + "\n", encoding="utf-8")


def estimate(words: int, figures: dict) -> list[str]:
    """The 157-language estimate, on paper, from the measured rates of one CPU (the 1-node cluster).

    Exact: a whole-vocabulary job scores every word against every word of its language, so its
    work is words^2 x dimension multiply-adds; the 1-node run gives multiply-adds per CPU-second at
    d = 50 (BLAS runs at about the same rate at d = 300). HNSW: the work is one graph search per
    word, and its cost grows about with log(words) x dimension; the estimate scales the measured
    searches per CPU-second by (50 / 300) x log(words) / log(2M)."""
    import math

    measured_dimension = 50
    exact_rate = words * words * measured_dimension / figures["exact", 1]  # multiply-adds per CPU-second
    exact_cpu_seconds = LANGUAGES * WORDS_PER_LANGUAGE ** 2 * DIMENSION / exact_rate
    hnsw_rate = words / figures["hnsw", 1] * (measured_dimension / DIMENSION) * math.log(words) / math.log(
        WORDS_PER_LANGUAGE)
    hnsw_cpu_seconds = LANGUAGES * WORDS_PER_LANGUAGE / hnsw_rate
    rows_gb = LANGUAGES * WORDS_PER_LANGUAGE * DIMENSION * 4 / 1e9
    return [
        f"### On paper: {LANGUAGES} languages x {WORDS_PER_LANGUAGE:,} words x {DIMENSION} "
        f"({LANGUAGES * WORDS_PER_LANGUAGE / 1e6:.0f}M rows, {rows_gb:.0f} GB of float32 rows)", "",
        f"- exact, measured {exact_rate / 1e9:.2f} G multiply-adds per CPU-second: "
        f"{exact_cpu_seconds / 3600:,.0f} CPU-hours; on 8 nodes x 32 CPUs, "
        f"{exact_cpu_seconds / 256 / 3600:,.1f} hours",
        f"- hnsw, measured {words / figures['hnsw', 1]:,.0f} words per CPU-second at {words:,} x 50 "
        f"(scaled: {hnsw_rate:,.0f} at 2M x 300): {hnsw_cpu_seconds / 3600:,.1f} CPU-hours; on 8 nodes x 32 CPUs, "
        f"{hnsw_cpu_seconds / 256 / 60:,.1f} minutes (plus building 157 graphs)",
        f"- memory: a batch task needs only its language's rows ({WORDS_PER_LANGUAGE * DIMENSION * 4 / 1e9:.1f} GB, "
        f"memory-mapped, shared by a node's tasks); holding all {rows_gb:.0f} GB in shard actors needs "
        f"{math.ceil(rows_gb / 48)} nodes of 64 GB (48 GB of rows each)",
    ]


if __name__ == "__main__":
    main()
