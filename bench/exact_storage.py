"""What exact storage costs: the same 400k GloVe store before (unit rows) and after (rows as
loaded, divided by their norms at query time), and gensim beside both, in one run.

    git worktree add /tmp/embstore-before b20c415      # the last commit with unit rows
    python bench/exact_storage.py --before /tmp/embstore-before

Each side runs in fresh processes with its own code on PYTHONPATH: a load, then a warm
process that times ``nearest(word, k=10)`` on 200 words spread over the vocabulary (median
of three passes), then a text export. The two sides alternate twice, so drift on this
shared machine hits both. Writes bench/results/exact_storage.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from run import CACHE, PEAK_WITH_CHILDREN, RESULTS, glove_text  # noqa: E402

WORDS = 400_000


def run_with(code_root: Path, code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    completed = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                               env=env, cwd="/")
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr[-3000:])
    return json.loads(completed.stdout.strip().splitlines()[-1])


def load(code_root: Path, text: Path, db: Path) -> dict:
    for old in db.parent.glob(db.name + "*"):
        old.unlink()
    return run_with(code_root, f"""
        import json, time
        started = time.perf_counter()
        import embstore
        from embstore import Store
        Store.load({str(text)!r}, {str(db)!r}, format="glove")
        print(json.dumps({{"seconds": time.perf_counter() - started, "peak_mb": {PEAK_WITH_CHILDREN},
                           "code": embstore.__file__}}))
    """)


def warm_queries(code_root: Path, db: Path) -> dict:
    return run_with(code_root, f"""
        import json, statistics, time
        from embstore import Store
        store = Store.open({str(db)!r}, words_in_memory=True)
        words = store.vocabulary()
        chosen = [words[i] for i in range(0, len(words), len(words) // 200)][:200]
        for word in chosen[:20]:
            store.nearest(word, k=10)
        passes = []
        for _ in range(3):
            started = time.perf_counter()
            for word in chosen:
                store.nearest(word, k=10)
            passes.append((time.perf_counter() - started) / len(chosen) * 1000)
        print(json.dumps({{"ms": statistics.median(passes)}}))
    """)


def export_text(code_root: Path, db: Path, out: Path) -> dict:
    return run_with(code_root, f"""
        import json, time
        from embstore import Store
        with Store.open({str(db)!r}) as store:
            started = time.perf_counter()
            store.export({str(out)!r}, "word2vec")
            print(json.dumps({{"seconds": time.perf_counter() - started}}))
    """)


def gensim_side(text: Path, out: Path) -> dict:
    return run_with(ROOT, f"""
        import json, statistics, time
        from gensim.models import KeyedVectors
        kv = KeyedVectors.load_word2vec_format({str(text)!r}, no_header=True)
        words = kv.index_to_key
        chosen = [words[i] for i in range(0, len(words), len(words) // 200)][:200]
        for word in chosen[:20]:
            kv.most_similar(word, topn=10)
        passes = []
        for _ in range(3):
            started = time.perf_counter()
            for word in chosen:
                kv.most_similar(word, topn=10)
            passes.append((time.perf_counter() - started) / len(chosen) * 1000)
        started = time.perf_counter()
        kv.save_word2vec_format({str(out)!r}, binary=False)
        print(json.dumps({{"ms": statistics.median(passes), "export_seconds": time.perf_counter() - started}}))
    """)


def size_of(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if not p.name.endswith(("-wal", "-shm")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the commit before exact storage")
    args = parser.parse_args()
    text = glove_text(WORDS)
    sides = {"before (unit rows)": (args.before.resolve(), CACHE / "exact.before.db"),
             "after (rows as loaded)": (ROOT, CACHE / "exact.after.db")}
    figures = {name: {"load": load(root, text, db), "ms": [], "export": []} for name, (root, db) in sides.items()}
    gensim = []
    for _ in range(2):
        for name, (root, db) in sides.items():
            figures[name]["ms"].append(warm_queries(root, db)["ms"])
            figures[name]["export"].append(export_text(root, db, CACHE / "exact.export.txt")["seconds"])
        gensim.append(gensim_side(text, CACHE / "exact.gensim.txt"))
    (CACHE / "exact.export.txt").unlink(missing_ok=True)
    (CACHE / "exact.gensim.txt").unlink(missing_ok=True)
    gensim_ms = statistics.median(g["ms"] for g in gensim)
    gensim_export = statistics.median(g["export_seconds"] for g in gensim)
    lines = ["| store | warm exact nearest (ms) | vs gensim most_similar | store size (MB) | load (s) | "
             "load peak (MB) | text export (s) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, (root, db) in sides.items():
        f = figures[name]
        ms = statistics.median(f["ms"])
        lines.append(f"| {name} | {ms:.2f} | {gensim_ms / ms:.2f}x faster | {size_of(db) / 1e6:.1f} | "
                     f"{f['load']['seconds']:.2f} | {f['load']['peak_mb']:.0f} | {statistics.median(f['export']):.1f} |")
    lines.append(f"| gensim 4 KeyedVectors | {gensim_ms:.2f} | 1.00x | - | - | - | {gensim_export:.1f} |")
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "exact_storage.md").write_text(
        f"# Exact storage: before and after, GloVe 6B 50d ({WORDS:,} words)\n\n"
        f"`python bench/exact_storage.py --before CHECKOUT`, median of 2 alternating rounds of 3 passes "
        f"over 200 words.\n\n{table}\n")


if __name__ == "__main__":
    main()
