"""``embstore index``: build, list, measure and drop approximate and compressed indexes."""

from __future__ import annotations

import sys

import click

from embstore.search.index_kinds import KINDS, PARAMETERS, fixed_default

from .main import cli, db_option, open_store
from .output import emit_json, human_bytes, json_option, note, stderr_is_terminal, table


@cli.group("index")
def index_group() -> None:
    """Approximate (hnsw, ivf) and compressed (sq8, pq) indexes beside the exact rows."""


@index_group.command("build")
@click.option("--kind", type=click.Choice(KINDS), required=True, help="Which index to build.")
@click.option("--m", "m", type=click.IntRange(min=1), help=f"hnsw: neighbours per node ({fixed_default('hnsw', 'm')}); pq: sub-quantizers, bytes per row "
                   f"(the largest divisor of the dimension within 10% of the rows' bytes).")
@click.option("--ef-construction", type=click.IntRange(min=1), help=f"hnsw: build-time candidate list ({fixed_default('hnsw', 'ef_construction')}).")
@click.option("--knn-links", type=click.IntRange(min=0),
              help=f"hnsw: nearest neighbours linked from each word, 0 for plain HNSW ({fixed_default('hnsw', 'knn_links')}).")
@click.option("--link-ef", type=click.IntRange(min=1),
              help=f"hnsw: candidate list when searching each word's nearest neighbours for its links "
                   f"({fixed_default('hnsw', 'link_ef')}; knn-links + 1 if that is more).")
@click.option("--ef-search", type=click.IntRange(min=1),
              help=f"hnsw: candidate list when searching for a vector ({fixed_default('hnsw', 'ef_search')}).")
@click.option("--ef-search-words", type=click.IntRange(min=1),
              help=f"hnsw: candidate list when the query is a word ({fixed_default('hnsw', 'ef_search_words')}).")
@click.option("--nlist", type=click.IntRange(min=1), help="ivf: clusters (2 * sqrt(rows), at most 1024 and at most the rows).")
@click.option("--nprobe", type=click.IntRange(min=1), help=f"ivf: clusters scanned per query ({fixed_default('ivf', 'nprobe')}).")
@click.option("--default", "make_default", is_flag=True, help="Make queries use this index unless told otherwise.")
@click.option("--bench/--no-bench", default=True, show_default=True,
              help="Measure recall@10 and latency right after building (as 'index bench').")
@db_option
@json_option
def build(kind, m, ef_construction, knn_links, link_ef, ef_search, ef_search_words, nlist, nprobe, make_default, bench,
          db, as_json):
    """Build an index of KIND, written atomically and recorded in the catalog."""
    params = {"m": m, "ef_construction": ef_construction, "knn_links": knn_links, "link_ef": link_ef,
              "ef_search": ef_search,
              "ef_search_words": ef_search_words, "nlist": nlist, "nprobe": nprobe}
    params = {k: v for k, v in params.items() if v is not None}
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label=f"Building {kind}", file=sys.stderr)
            bar.__enter__()
        bar.update(done - bar.pos)

    with open_store(db) as store:
        try:
            record = store.build_index(kind, make_default=make_default,
                                       progress=progress if stderr_is_terminal() else None, **params)
        finally:
            if bar is not None:
                bar.__exit__(None, None, None)
        figures = None
        if bench:
            figures = store.measure_index(kind)
            store.record_index_measurements(kind, figures)
    if as_json:
        emit_json({"kind": kind, "params": record.params, "bytes": record.bytes, "measured": figures})
        return
    click.echo(f"Built {kind} ({_settings(record.params) or 'no parameters'}) in "
               f"{record.params['build_seconds']:.1f}s: {human_bytes(record.bytes)}")
    _echo_measured(kind, figures)


@index_group.command("tune")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("--ef-search", type=click.IntRange(min=1), help="hnsw: candidate list when searching for a vector.")
@click.option("--ef-search-words", type=click.IntRange(min=1), help="hnsw: candidate list when the query is a word.")
@click.option("--nprobe", type=click.IntRange(min=1), help="ivf: clusters scanned per query.")
# Build-time settings are accepted only to say that changing them needs 'index build'.
@click.option("--m", "m", type=int, hidden=True)
@click.option("--ef-construction", type=int, hidden=True)
@click.option("--knn-links", type=int, hidden=True)
@click.option("--link-ef", type=int, hidden=True)
@click.option("--nlist", type=int, hidden=True)
@click.option("--bench/--no-bench", default=True, show_default=True,
              help="Measure recall@10 and latency with the new settings (as 'index bench').")
@db_option
@json_option
def tune(kind, ef_search, ef_search_words, nprobe, m, ef_construction, knn_links, link_ef, nlist, bench, db, as_json):
    """Change how the KIND index searches, without rebuilding it: trade recall for speed."""
    with open_store(db) as store:
        record = store.tune_index(kind, ef_search=ef_search, ef_search_words=ef_search_words, nprobe=nprobe, m=m,
                                  ef_construction=ef_construction, knn_links=knn_links, link_ef=link_ef,
                                  nlist=nlist)
        figures = None
        if bench:
            figures = store.measure_index(kind)
            store.record_index_measurements(kind, figures)
    if as_json:
        emit_json({"kind": kind, "params": record.params, "measured": figures})
        return
    searched = {p.name for p in PARAMETERS[kind] if p.search_time}
    built = _settings({k: v for k, v in record.params.items() if k not in searched})
    click.echo(f"{kind} now searches with {_settings({k: v for k, v in record.params.items() if k in searched})}"
               + (f" (built with {built})" if built else ""))
    _echo_measured(kind, figures)


def _settings(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items() if k != "build_seconds")


LOW_RECALL = 0.9  # below this a build or tune says so, with what to do


def _echo_measured(kind: str, figures: dict | None) -> None:
    if not figures:
        return
    recall = figures["recall@10"]
    click.echo(f"recall@10 {recall:.4f}, search {figures['search_mean_ms']:.3f} ms mean, "
               f"{figures['search_p99_ms']:.3f} ms p99")
    _low_recall_note(kind, recall)


def _low_recall_note(kind: str, recall: float, k: int = 10) -> None:
    if recall < LOW_RECALL:
        wider = {"hnsw": "'embstore index tune hnsw --ef-search-words 400 --ef-search 400' searches wider; ",
                 "ivf": "'embstore index tune ivf --nprobe N' scans more clusters; "}.get(kind, "")
        note(f"{kind} recall@{k} {recall:.4f} is low: answers through this index miss about {1 - recall:.0%} of "
             f"the true nearest words. {wider}--exact asks the exact rows")


@index_group.command("list")
@db_option
@json_option
def list_indexes(db, as_json):
    """The store's indexes with their sizes, parameters and measured recall."""
    with open_store(db) as store:
        info = store.info()
        default = store.index_kind(None)
    if as_json:
        emit_json({"default": default, "indexes": info.indexes})
        return
    rows = []
    for index in info.indexes:
        measured = index["recall"] or {}
        params = _settings(index["params"]) or "-"
        recall = f"{measured['recall@10']:.4f}" if "recall@10" in measured else "-"
        if index["stale"]:
            recall = "stale"  # built before the rows last changed: queries use the exact rows instead
        if index.get("damaged"):
            recall = "damaged"  # 'embstore check' says how; 'embstore repair' rebuilds it
        rows.append((index["kind"] + (" *" if index["kind"] == default else ""), human_bytes(index["bytes_on_disk"]),
                     recall, params))
    click.echo(table(["index", "on disk", "recall@10", "parameters"], rows, "lrrl"))
    click.echo("* answers queries by default", err=True)
    if any(index["stale"] for index in info.indexes):
        click.echo("stale: built before the words last changed; queries use the exact rows until "
                   "'embstore index build --kind KIND' rebuilds it", err=True)


@index_group.command("drop")
@click.argument("kind", type=click.Choice(KINDS))
@db_option
def drop(kind, db):
    """Remove the KIND index and its file."""
    with open_store(db) as store:
        store.drop_index(kind)
    click.echo(f"Dropped {kind}")


@index_group.command("default")
@click.argument("kind", type=click.Choice(("exact",) + KINDS))
@db_option
def default(kind, db):
    """Make KIND answer queries that name no --index."""
    with open_store(db) as store:
        store.set_default_index(kind)
    click.echo(f"Queries now use {kind} by default")


@index_group.command("bench")
@click.option("--kind", "kinds", type=click.Choice(KINDS), multiple=True,
              help="Index to measure (repeatable). Default: every index the store has.")
@click.option("--queries", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Random vocabulary words to query.")
@click.option("--from-top", "pool", type=click.IntRange(min=1),
              help="Draw the query words from the N most frequent words instead of the whole vocabulary "
                   "(such figures are shown, not stored: 'info' keeps whole-vocabulary recall).")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--analogies", type=click.Path(dir_okay=False, path_type=str),
              help="A questions-words file: also report 3CosAdd accuracy lost against exact search.")
@db_option
@json_option
def bench(kinds, queries, pool, k, analogies, db, as_json):
    """Recall@k against exact search (computed in blocks), latency and analogy accuracy; stored for 'info'."""
    results = {}
    with open_store(db) as store:
        kinds = kinds or [r["kind"] for r in store.info().indexes if r["kind"] != "exact"]
        if not kinds:
            raise click.ClickException("this store has no approximate index; build one with: embstore index build")
        for kind in kinds:
            store.index_kind(kind)
            results[kind] = store.measure_index(kind, queries=queries, k=k, analogies=analogies, pool=pool)
            if pool is None and not store.catalog.readonly:  # measuring needs no write; keeping the figures does
                store.record_index_measurements(kind, results[kind])
    if as_json:
        emit_json(results)
        return
    rows = []
    for kind, f in results.items():
        lost = f"{f['analogy_points_lost']:+.2f} pts" if "analogy_points_lost" in f else "-"
        rows.append((kind, f"{f[f'recall@{k}']:.4f}", f"{f['search_mean_ms']:.3f}", f"{f['search_p99_ms']:.3f}",
                     f"{f['api_mean_ms']:.3f}", f"{100 * f['bytes_vs_exact']:.1f}%", lost))
    click.echo(table(["index", f"recall@{k}", "search ms", "p99 ms", "nearest() ms", "size vs exact",
                      "analogy loss"], rows, "lrrrrrr"))
    for kind, f in results.items():
        _low_recall_note(kind, f[f"recall@{k}"], k)
