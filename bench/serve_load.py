"""`embstore serve` under load: /api/nearest through the exact rows and HNSW, at 1, 8 and 64
concurrent connections, beside the same queries through the Python API in one process, and
again while another process commits changes to the store.

    pip install '.[serve,bench]'
    python bench/serve_load.py                 # 400k GloVe words, 60 s a cell (about 15 minutes)
    python bench/serve_load.py --quick         # 20k words of the bundled sample, 2 s a cell (seconds)
    python bench/serve_load.py --db glove.db   # your store (it needs an hnsw index; a copy is changed)

The load generator is this process: asyncio connections speaking HTTP/1.1 with keep-alive,
each sending its next request when the answer to the last one has arrived (a closed loop, as
wrk does). Query words are 1,000 vocabulary words spread evenly over the IDs. The server runs
in its own process (`embstore serve --no-access-log`); on a 2-core machine the load generator
and the server share the cores, so the figures are a floor. The writer process adds words, one
whole `embstore add` process each, for as long as the cell runs (adds extend the hnsw index;
deletes would leave it stale). Each index kind is served from a fresh copy of the store.
Writes Markdown to bench/results/serve_load.md (not with --quick).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results"
SAMPLE = ROOT / "data" / "glove.6B.50d.50k.txt.gz"
QUERY_WORDS = 1_000
K = 10


def embstore(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "embstore_cli", *args], capture_output=True, text=True, check=check)


def make_store(args, folder: Path) -> Path:
    """The store to serve, with an hnsw index: a copy of --db, else made (and cached) from GloVe."""
    if args.db:
        source = Path(args.db)
    elif args.quick:
        source = folder / "quick.db"
        embstore("load", str(SAMPLE), "--db", str(source), "--limit", "20000")
        embstore("index", "build", "--kind", "hnsw", "--db", str(source))
    else:
        sys.path.insert(0, str(ROOT / "bench"))
        from run import glove_text

        source = CACHE / "serve.400k.db"
        if not source.exists():
            print("loading the 400k store and building its hnsw index (a few minutes, once) ...", file=sys.stderr)
            embstore("load", str(glove_text(400_000)), "--db", str(source))
            embstore("index", "build", "--kind", "hnsw", "--db", str(source))
    return source


def fresh_copy(source: Path, folder: Path) -> Path:
    """A copy of ``source`` in its own folder, which the writer process may change (index files
    keep the store's name); each index kind is measured on a fresh one."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    for file in source.parent.iterdir():
        if file.name.startswith(source.name):
            shutil.copy(file, folder / file.name)
    return folder / source.name


@contextlib.contextmanager
def server(db: Path, workers: int, log: Path):
    with open(log, "wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "embstore_cli", "serve", "--db", str(db), "--port", "0",
                                    "--no-access-log", "--workers", str(workers)], stdout=output,
                                   stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        for _ in range(600):
            found = re.search(r"on http://(127\.0\.0\.1):(\d+) ", log.read_text())
            if found and "Application startup complete" in log.read_text():
                break
            if process.poll() is not None:
                raise RuntimeError(log.read_text())
            time.sleep(0.1)
        else:
            raise RuntimeError(f"the server did not start:\n{log.read_text()}")
        yield found.group(1), int(found.group(2))
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


# -- the load generator ------------------------------------------------------------------------

async def connection(host: str, port: int, paths: list[str], start: int, until: float, measure_from: float,
                     latencies: list[float], errors: dict) -> None:
    reader = writer = None
    n = start
    while time.perf_counter() < until:
        if writer is None:
            reader, writer = await asyncio.open_connection(host, port)
        path = paths[n % len(paths)]
        n += 1
        sent = time.perf_counter()
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            await reader.readexactly(length)
            status = int(head[9:12])
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, AttributeError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            writer.close()
            writer = None
            continue
        if sent >= measure_from:
            latencies.append(time.perf_counter() - sent)
            if status != 200:
                errors[status] = errors.get(status, 0) + 1
    if writer is not None:
        writer.close()


def load(host: str, port: int, paths: list[str], connections: int, duration: float, warmup: float) -> dict:
    latencies: list[float] = []
    errors: dict = {}

    async def run():
        began = time.perf_counter()
        measure_from, until = began + warmup, began + warmup + duration
        await asyncio.gather(*(connection(host, port, paths, i * 97, until, measure_from, latencies, errors)
                               for i in range(connections)))

    asyncio.run(run())
    return summary(latencies, duration, sum(errors.values()), errors)


def summary(latencies: list[float], duration: float, errors: int = 0, kinds: dict | None = None) -> dict:
    ordered = sorted(latencies)
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")  # noqa: E731
    return {"requests": len(ordered), "per_second": len(ordered) / duration, "p50_ms": at(0.50), "p99_ms": at(0.99),
            "errors": errors, "error_kinds": kinds or {}}


def in_process(db: Path, words: list[str], kind: str, duration: float) -> dict:
    """The same queries through the Python API, one after another in this process."""
    from embstore import Store

    latencies = []
    with Store.open(db) as store:
        for word in words[:50]:
            store.nearest(word, k=K, index=kind, case_insensitive=True)  # warm: pages, words, the index
        began = time.perf_counter()
        n = 0
        while time.perf_counter() - began < duration:
            sent = time.perf_counter()
            store.nearest(words[n % len(words)], k=K, index=kind, case_insensitive=True)
            latencies.append(time.perf_counter() - sent)
            n += 1
    return summary(latencies, time.perf_counter() - began)


@contextlib.contextmanager
def writer(db: Path, dimension: int):
    """Another process committing changes for as long as the block runs: it adds words, one
    commit each. Adds extend the approximate indexes, so the hnsw index stays current; a
    delete would renumber the IDs and leave it stale, and queries would then (rightly) be
    answered by the exact rows. At the end it is asked to stop and finishes the change it is making."""
    vector = ["0.1"] * dimension
    stop = db.parent / "stop-writer"
    script = f"""
import os, subprocess, sys
command = [sys.executable, "-m", "embstore_cli"]
commits = 0
for n in range(10**9):
    word = f"serveload{{os.getpid()}}w{{n}}"
    for change in (["add", word, *{vector!r}],):
        if subprocess.run(command + change + ["--db", {str(db)!r}], capture_output=True).returncode == 0:
            commits += 1
            print(commits, flush=True)
    if os.path.exists({str(stop)!r}):
        break
"""
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    commits = {"count": 0}
    try:
        yield commits
    finally:
        stop.touch()
        output, _ = process.communicate(timeout=600)
        stop.unlink()
        lines = output.split()
        commits["count"] = int(lines[-1]) if lines else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="serve a copy of this store (it needs an hnsw index)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per cell (default 60)")
    parser.add_argument("--connections", default="1,8,64", help="concurrent connections, comma-separated")
    parser.add_argument("--workers", type=int, default=1, help="server processes (embstore serve --workers)")
    parser.add_argument("--kinds", default="exact,hnsw", help="index kinds, comma-separated")
    parser.add_argument("--quick", action="store_true", help="20k words, 2 s a cell: a smoke test")
    args = parser.parse_args()
    duration = 2.0 if args.quick else args.duration
    warmup = min(2.0, duration / 4)
    levels = [int(c) for c in args.connections.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="embstore-serve-load-") as folder:
        source = make_store(args, Path(folder))
        from embstore import Store

        with Store.open(source) as store:
            words = [store.vocabulary()[i] for i in range(0, len(store), max(1, len(store) // QUERY_WORDS))]
            size, dimension = len(store), store.dimension
        for kind in args.kinds.split(","):
            db = fresh_copy(source, Path(folder) / f"served-{kind}")
            paths = [f"/api/nearest?word={quote(w, safe='')}&k={K}&index={kind}" for w in words]
            local = in_process(db, words, kind, min(duration, 20.0))
            for changing in (False, True):
                with server(db, args.workers, Path(folder) / "serve.log") as (host, port):
                    for level in levels:
                        with writer(db, dimension) if changing else contextlib.nullcontext({"count": None}) as commits:
                            figures = load(host, port, paths, level, duration, warmup)
                        rows.append({"kind": kind, "connections": level, "writer": commits["count"], **figures,
                                     "local": local})
                        print(row_text(rows[-1]), file=sys.stderr)
    title = (f"`embstore serve` on {size:,} words x {dimension}, /api/nearest k={K}, {duration:.0f} s a cell, "
             f"{args.workers} server process{'es' if args.workers > 1 else ''}, {os.cpu_count()} cores")
    text = f"### {title}\n\n" + table(rows) + "\n"
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "serve_load.md").write_text(text)


def row_text(row: dict) -> str:
    return (f"{row['kind']:5} {row['connections']:3} conn writer={row['writer']}: {row['per_second']:8.1f} req/s "
            f"p50 {row['p50_ms']:.2f} ms p99 {row['p99_ms']:.2f} ms errors {row['errors']} {row['error_kinds'] or ''}")


def table(rows: list[dict]) -> str:
    lines = ["| index | connections | another process committing | HTTP req/s | p50 ms | p99 ms | errors "
             "| Python API in-process queries/s | in-process p50 ms | HTTP p50 minus in-process p50 ms |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        writer_text = "no" if r["writer"] is None else f"yes ({r['writer']} commits)"
        lines.append(f"| {r['kind']} | {r['connections']} | {writer_text} | {r['per_second']:,.0f} | {r['p50_ms']:.2f} "
                     f"| {r['p99_ms']:.2f} | {r['errors']} | {r['local']['per_second']:,.0f} "
                     f"| {r['local']['p50_ms']:.3f} | {r['p50_ms'] - r['local']['p50_ms']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
