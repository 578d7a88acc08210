"""HNSW build time against recall at 400k x 50 (GloVe 6B 50d): which settings build within a minute.

    pip install '.[bench]'
    python bench/hnsw_build.py                              # the default and the settings below
    python bench/hnsw_build.py 32,40,0 32,128,16,128        # m,ef_construction,knn_links[,link_ef] of your own

For each setting: the seconds of FAISS's graph build and of the nearest-neighbour linking
pass (``search/hnsw_links.py``, each row searched from itself with a list of link_ef; a
fourth value ``top`` searches from the top of the graph at ef_construction instead, as
indexes built before link_ef did), then recall@10 against numpy's brute force over 1,000
random vocabulary words, for word queries (started at the word, the way ``nearest``
searches, with lists of 12, 24, 48, 64 and 96) and for vector queries (from the top, as
analogies, with lists of 32, 96 and 256). Builds use both cores; run it on a quiet machine.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import faiss  # noqa: E402

from embstore import Store  # noqa: E402
from embstore.search.hnsw_links import link_nearest, search_from_rows  # noqa: E402

SETTINGS = ["32,40,16,16", "32,40,16,24", "32,40,0", "32,128,16,128", "32,128,16,top", "32,32,16,32", "24,64,16,24"]


def main() -> None:
    from run import CACHE, glove_text

    db = CACHE / "bench.400k.db"
    if not db.exists():
        Store.load(glove_text(400_000), db)
    with Store.open(db) as store:
        unit = np.ascontiguousarray(store.searcher.unit_rows, dtype=np.float32)
    count, dimension = unit.shape
    ids = np.sort(np.random.default_rng(1).choice(count, 1_000, replace=False))
    queries = unit[ids]
    scores = queries @ unit.T
    scores[np.arange(len(ids)), ids] = -np.inf
    truth = np.argsort(-scores, axis=1)[:, :10]

    def recall(found: np.ndarray) -> float:
        kept = [[i for i in row if i != q][:10] for row, q in zip(found, ids)]
        return float(np.mean([len(set(a) & set(t)) / 10 for a, t in zip(kept, truth)]))

    print("| m | ef_construction | knn_links | link_ef | graph s | links s | total s | words, list 12 / 24 / 48 / 64 / 96 | "
          "vectors, list 32 / 96 / 256 |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for setting in sys.argv[1:] or SETTINGS:
        values = setting.split(",")
        m, ef_construction, links = (int(v) for v in values[:3])
        link_ef = values[3] if len(values) > 3 else "16"
        index = faiss.IndexHNSWFlat(dimension, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        started = time.perf_counter()
        for start in range(0, count, 20_000):
            index.add(unit[start: start + 20_000])
        graph = time.perf_counter() - started
        started = time.perf_counter()
        if link_ef == "top":
            link_nearest(index, unit, 0, links, ef_construction, from_rows=False)
        else:
            link_nearest(index, unit, 0, links, int(link_ef))
        linking = time.perf_counter() - started
        words, vectors = [], []
        for ef in (12, 24, 48, 64, 96):
            parameters = faiss.SearchParametersHNSW()
            parameters.efSearch = ef
            words.append(recall(search_from_rows(index, queries, ids, 11, parameters)[1]))
        for ef in (32, 96, 256):
            parameters = faiss.SearchParametersHNSW()
            parameters.efSearch = ef
            vectors.append(recall(index.search(queries, 11, params=parameters)[1]))
        print(f"| {m} | {ef_construction} | {links} | {link_ef if links else '-'} | {graph:.1f} | {linking:.1f} | {graph + linking:.1f} | "
              f"{' / '.join(f'{r:.4f}' for r in words)} | {' / '.join(f'{r:.4f}' for r in vectors)} |", flush=True)


if __name__ == "__main__":
    main()
