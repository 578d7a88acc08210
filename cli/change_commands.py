"""Commands that change a store in place: add, delete, rename; and check and repair it."""

from __future__ import annotations

import json

import click
import numpy as np

from embstore import FormatError
from embstore.repair import repair_store
from embstore.storage.check import check_store

from .main import cli, db_option, open_store
from .input_files import decoded_lines
from .output import counted, emit_counts, emit_json, json_option

duplicate_option = click.option(
    "--on-duplicate", type=click.Choice(["skip", "replace", "error"]), default="error", show_default=True,
    help="A word already in the store: keep its vector, replace it, or stop.")


def _read_vectors_file(handle) -> tuple[list[str], list[list[float]]]:
    """Words and vectors from TSV ('word<TAB>v1 v2 ...' or 'word v1 v2 ...') or JSON lines."""
    words, vectors = [], []
    name = getattr(handle, "name", "<file>")
    for number, line in decoded_lines(handle):
        if not line.strip():
            continue
        try:
            if line.lstrip().startswith("{"):
                record = json.loads(line)
                word, values = record["word"], [float(v) for v in record["vector"]]
                if not isinstance(word, str):
                    raise TypeError(f"the word must be a JSON string, not {json.dumps(word)[:40]}")
            else:
                word, _, rest = line.rstrip("\n").partition("\t") if "\t" in line else line.strip().partition(" ")
                values = [float(v) for v in rest.split()]
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise FormatError(name, number, f"expected 'word v1 ... vd' or a JSON object with word and vector ({exc})")
        words.append(word)
        vectors.append(values)
    if not words:
        raise FormatError(name, None, "holds no words")
    if len({len(v) for v in vectors}) != 1:
        raise FormatError(name, None, "the vectors do not all have the same number of values")
    return words, vectors


@cli.command(context_settings={"ignore_unknown_options": True})  # negative values are not options
@click.argument("word", required=False)
@click.argument("values", nargs=-1, type=float)
@click.option("--file", "vectors_file", type=click.File("rb"),
              help="Add every word of a TSV ('word<TAB>v1 ... vd') or JSON lines ({\"word\", \"vector\"}) file.")
@duplicate_option
@db_option
@json_option
def add(word, values, vectors_file, on_duplicate, db, as_json):
    """Add WORD with its vector V1 ... VD (or many words with --file), in one atomic change."""
    if vectors_file is not None:
        words, vectors = _read_vectors_file(vectors_file)
    elif word and values:
        words, vectors = [word], [list(values)]
    else:
        raise click.UsageError("give WORD V1 ... VD, or --file FILE")
    with open_store(db) as store:
        counts = store.add_words(words, np.array(vectors, dtype=np.float32), on_duplicate=on_duplicate)
        total = len(store)
    emit_counts(counts, total, as_json, f"Added {counts['added']:,}, replaced {counts['replaced']:,}, "
                                        f"skipped {counts['skipped']:,}; the store now holds {counted(total, 'word')}")


@cli.command(context_settings={"ignore_unknown_options": True})  # a word may begin with '-'
@click.argument("words", nargs=-1, required=True)
@db_option
def delete(words, db):
    """Delete WORDS (exact spelling), in one atomic change."""
    with open_store(db) as store:
        removed = store.delete_words(list(words))
        total = len(store)
    click.echo(f"Deleted {counted(removed, 'word')}; the store now holds {total:,}")


@cli.command()
@click.argument("old")
@click.argument("new")
@db_option
def rename(old, new, db):
    """Rename the word OLD to NEW; its vector stays."""
    with open_store(db) as store:
        store.rename_word(old, new)
    click.echo(f"Renamed {old!r} to {new!r}")


@cli.command()
@db_option
@json_option
def check(db, as_json):
    """Verify the catalog schema and version, row counts, index checksums and IDs. Exit 1 on any problem."""
    report = check_store(db)
    if as_json:
        emit_json({**report.__dict__, "ok": report.ok})
    else:
        for line in report.checked:
            click.echo(f"ok       {line}")
        for line in report.notes:
            click.echo(f"note     {line}")
        for line in report.problems:
            click.echo(f"PROBLEM  {line}")
    if not report.ok:
        raise click.ClickException(
            f"{counted(len(report.problems), 'problem')} in {report.path}; 'embstore repair --db {report.path}' rebuilds what it can")


@cli.command()
@db_option
@click.option("--discard-changes", is_flag=True,
              help="If the rows can only be repaired by reloading the source file, do so even though that "
                   "loses the words added, deleted or renamed since the load (repair says which).")
def repair(db, discard_changes):
    """Rebuild what can be rebuilt from what is intact, and say what was done.

    Never drops committed changes unless told --discard-changes."""
    report = repair_store(db, discard_changes=discard_changes)
    for line in report.actions:
        click.echo(line)
    if report.remaining:
        raise click.ClickException("still wrong: " + "; ".join(report.remaining))
    click.echo("The store passes 'embstore check'.")
