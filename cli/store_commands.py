"""Commands that make, describe and export stores: load, info, export."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from embstore import Store
from embstore.formats import EXPORT_FORMATS, FORMAT_ALIASES, UNICODE_ERRORS
from embstore.row_sketch import weak_hold_note

from .main import cli, db_option, open_store
from .output import counted, emit_counts, emit_json, human_bytes, json_option, note, stderr_is_terminal, table


class _Progress:
    """A click progress bar on stderr, shown only when stderr is a terminal."""

    def __init__(self, label: str):
        self.label = label
        self.bar = None
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr, show_eta=True)
            self.bar.__enter__()
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@cli.command()
@click.argument("file", type=click.Path(path_type=str))
@db_option
@click.option("--format", "format_name", type=click.Choice(sorted(FORMAT_ALIASES), case_sensitive=False),
              help="File format; detected from the content when not given.")
@click.option("--limit", type=click.IntRange(min=1), help="Keep only the first N vectors of the file.")
@click.option("--unicode-errors", type=click.Choice(UNICODE_ERRORS), default="strict", show_default=True,
              help="What to do with words that are not valid UTF-8 (as gensim's unicode_errors).")
@click.option("--zero-vectors", type=click.Choice(["error", "skip"]), default="error", show_default=True,
              help="An all-zero vector cannot be normalised: stop with an error, or leave the word out.")
@click.option("--bad-words", type=click.Choice(["error", "skip"]), default="error", show_default=True,
              help="A word with white space (other than the space that ends it) or control characters: "
                   "stop with an error naming its line, or leave it out.")
@click.option("--replace", is_flag=True, help="Replace the store if one already exists at --db.")
@click.option("--storage", type=click.Choice(["exact", "sq8"]), default="exact", show_default=True,
              help="sq8 keeps only 8-bit codes: a quarter of the bytes, every vector approximate.")
@click.option("--sketch", is_flag=True,
              help="Also write the rows' sketch (128 dimensions or more; about a fifth more disk at 300): a single "
                   "exact query then reads about a fifth of the bytes, with the same answers. For millions of words.")
@click.option("--counts", "counts_file", type=click.Path(dir_okay=False),
              help="A 'word count' file (word2vec -save-vocab, gensim's fvocab): a count per word.")
@click.option("--encoding", default="utf-8", show_default=True,
              help="A fastText .bin model's word encoding (as gensim's encoding=); text files are UTF-8.")
@click.option("--append", is_flag=True, help="Add FILE's words to the existing store.")
@click.option("--on-duplicate", type=click.Choice(["skip", "replace", "error"]), default="skip", show_default=True,
              help="With --append: what to do with a word the store already has.")
@json_option
def load(file, db, format_name, limit, unicode_errors, zero_vectors, bad_words, replace, storage, sketch, counts_file,
         encoding, append, on_duplicate, as_json):
    """Load an embedding FILE (GloVe, word2vec text/binary, fastText .vec; .gz/.bz2/.xz too).

    A fastText .bin model (detected by its first bytes) also keeps its character n-gram
    rows: any word, in the vocabulary or not, then has a vector."""
    if append and replace:
        raise click.UsageError("--append and --replace exclude each other")
    if append and sketch:
        raise click.UsageError("--sketch is for a new load; an --append keeps the store's sketch if it has one, "
                               "and 'embstore sketch' adds one afterwards")
    if append and counts_file:
        raise click.UsageError("--counts is for a new load; --append does not take counts")
    if append:
        with open_store(db) as store:
            counts = store.append_file(file, format=format_name, limit=limit, unicode_errors=unicode_errors,
                                       on_duplicate=on_duplicate)
            total = len(store)
        emit_counts(counts, total, as_json, f"Appended {counted(counts['added'], 'word')} from {file} (replaced "
                                            f"{counts['replaced']:,}, skipped {counts['skipped']:,}); "
                                            f"the store now holds {total:,}")
        return
    progress = _Progress("Loading") if stderr_is_terminal() else None
    try:
        report = Store.load(
            file, db, format=format_name, limit=limit, unicode_errors=unicode_errors,
            zero_vectors=zero_vectors, replace=replace, progress=progress, storage=storage, bad_words=bad_words,
            counts=counts_file, encoding=encoding, sketch=sketch,
        )
    finally:
        if progress:
            progress.close()
    if as_json:
        emit_json(report)
        return
    for message in report.notes:
        note(message)
    if report.duplicates:
        shown = ", ".join(repr(w) for w in report.first_duplicates)
        note(f"{counted(report.duplicates, 'duplicate word')} kept {'its' if report.duplicates == 1 else 'their'} first vector (e.g. {shown})")
    if report.zero_vectors_skipped:
        note(f"{counted(report.zero_vectors_skipped, 'zero vector')} skipped")
    click.echo(
        f"Loaded {counted(report.words, 'word')} x {report.dimension} ({report.format}) from {report.source} "
        f"into {db or report.store} in {report.seconds:.1f}s" + (f", keeping {storage} codes only" if storage != "exact" else "")
    )


@cli.command()
@db_option
@click.option("--drop", is_flag=True, help="Remove the sketch instead.")
def sketch(db, drop):
    """Write the store's rows again with their sketch (as load --sketch), or without it (--drop).

    With a sketch, a single exact query reads each row's projection on 64 directions and scores
    in full only the rows it cannot rule out: the same answers from about a fifth of the bytes,
    for millions of rows of 128 dimensions or more. The rows, indexes and shards stay as they are."""
    with open_store(db) as store:
        changed = store.set_sketch(not drop)
        words, dimension = len(store), store.dimension
        held = store.info().sketch.get("held") if changed and not drop else None
    if drop:
        click.echo("Removed the sketch" if changed else "The store has no sketch; nothing was changed")
    else:
        if held is not None and weak_hold_note(held):
            note(weak_hold_note(held))
        click.echo(f"Wrote the sketch of {words:,} rows of {dimension}, holding {held:.0%} of them" if changed
                   else "The store has a sketch already; nothing was changed")


def _sketch_line(sketch: dict) -> str:
    if "damaged" in sketch:
        return f"damaged ({sketch['damaged']}): queries read every row (run 'embstore check', then 'embstore repair')"
    return (f"{sketch['width']} directions a row, holding {sketch['held']:.0%} of the rows "
            f"({human_bytes(sketch['bytes'])}): single exact queries read it, not every row")


def _shards_line(shards: dict) -> str:
    if "damaged" in shards:
        return f"damaged: {shards['damaged']}" + ("" if "embstore repair" in shards["damaged"] else
                                                 " (run 'embstore check', then 'embstore repair')")
    graphs = " with HNSW graphs" if shards["graphs"] else \
        f", stale HNSW graphs (rebuild: embstore shard --shards {shards['shards']} --graphs)" \
        if shards["stale_graphs"] else ""
    return f"{shards['shards']} shard files{graphs}, {human_bytes(shards['bytes_on_disk'])}: 'embstore shard' shows them"


def _subwords_line(subwords: dict) -> str:
    if "damaged" in subwords:
        return f"damaged: {subwords['damaged']} (run 'embstore repair')"
    return (f"{subwords['buckets']:,} n-gram buckets of {subwords['minn']}-{subwords['maxn']} characters "
            f"({human_bytes(subwords['bytes_on_disk'])}, {Path(subwords['file']).name}): any word gets a vector")


@cli.command()
@db_option
@json_option
def info(db, as_json):
    """Describe the store: size, dimension, metric, indexes and where it came from."""
    with open_store(db) as store:
        details = store.info()
    if as_json:
        emit_json(details)
        return
    lines = [
        ("store", details.path),
        ("words", f"{details.words:,}"),
        ("dimension", details.dimension),
        ("metric", details.metric),
        ("normalisation", details.normalisation),
        ("storage", details.storage if details.storage == "exact" else f"{details.storage} codes only: vectors are approximate"),
        ("vectors", details.vectors),
        ("counts", f"{details.counts:,} words, from {details.counts_source}" if details.counts
         else "none (frequency ranks follow the file's order)"),
        ("loaded from", f"{details.source} ({details.source_format})"),
        *([("sub-words", _subwords_line(details.subwords))] if details.subwords else []),
        *([("shards", _shards_line(details.shards))] if details.shards else []),
        *([("sketch", _sketch_line(details.sketch))] if details.sketch else []),
        ("created", details.created_at),
        ("catalog", human_bytes(details.catalog_bytes)),
        ("format version", details.format_version),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        click.echo(f"{key.ljust(width)}  {value}")
    click.echo("")
    rows = []
    for index in details.indexes:
        measured = index["recall"] or {}
        recall = next((f"{v:.4f}" for k, v in measured.items() if k.startswith("recall@")), "not measured")
        latency = f"{measured['search_mean_ms']:.3f} ms" if "search_mean_ms" in measured else "-"
        if index["stale"]:
            recall, latency = "stale: rebuild with 'index build'", "-"
        if index.get("damaged"):
            recall, latency = "damaged: run 'embstore repair'", "-"
        rows.append((index["kind"] + (" *" if index["kind"] == details.default_index else ""),
                     f"{index['rows']:,}" if index["rows"] is not None else "-",
                     human_bytes(index["bytes_on_disk"]), recall, latency,
                     Path(index["file"]).name if index["file"] else "-"))
    click.echo(table(["index", "rows", "on disk", "recall@10", "search", "file"], rows, "lrrrrl"))
    click.echo("* answers queries by default")


@cli.command()
@click.argument("output", type=click.Path(path_type=str))
@click.option("--format", "format_name", type=click.Choice(EXPORT_FORMATS), required=True,
              help="word2vec (text), word2vec-bin, glove (text, no header) or npy (+ .vocab.txt).")
@click.option("--words", "words_file", type=click.File("r", encoding="utf-8"),
              help="Export only the words listed in this file, one per line.")
@db_option
def export(output, format_name, words_file, db):
    """Write the store's vectors to OUTPUT (compressed if it ends in .gz, .bz2 or .xz; '-' for stdout).

    Never writes over the store's own files or anything that is not a regular file."""
    words = None
    if words_file is not None:
        words = [line.strip() for line in words_file if line.strip()]
    with open_store(db) as store:
        if store.approximate_vectors:
            note(f"this store keeps only {store.storage} codes: the exported vectors are approximate")
        if store.has_subwords:
            note(f"the character n-gram rows of this fastText store are not part of the {format_name} format: "
                 "the export holds the vocabulary's vectors (as fastText's .vec does)")
        written = store.export(output, format_name, words, case_insensitive=True)
        count = len(store) if words is None else len(set(words))
    if output == "-":  # stdout holds the vectors alone; the summary goes to stderr
        note(f"wrote {counted(count, 'word')} to standard output")
    else:
        click.echo(f"Wrote {counted(count, 'word')} to " + ", ".join(str(p) for p in written))
