"""Commands that ask the store questions: nearest, analogy, similarity, odd-one-out, vector."""

from __future__ import annotations

import itertools
import json
import sys

import click

from embstore import FormatError, QueryError
from embstore.formats.float_text import format_rows
from embstore.json_answers import odd_one_out_json, similarity_json, vector_json

from .input_files import decoded_lines
from .main import cli, db_option, open_store
from .output import emit_json, emit_results, json_option, note, table, to_plain

BATCH_CHUNK = 4096
batch_options = [
    click.option("--batch", "batch_file", type=click.File("rb"),
                 help="Answer one query per line of this file ('-' for stdin), one result per output line."),
    click.option("--batch-format", type=click.Choice(["tsv", "jsonl"]), default="tsv", show_default=True,
                 help="Batch output: TSV (query, then word and score pairs) or JSON lines."),
]


def with_batch_options(function):
    for option in reversed(batch_options):
        function = option(function)
    return function


def _batch_lines(handle, fields: int):
    """Yield (line number, words) for the non-blank lines of a batch file."""
    for number, line in decoded_lines(handle):
        words = line.split()
        if not words:
            continue
        if len(words) != fields:
            expected = "one word" if fields == 1 else f"{fields} words"
            raise FormatError(getattr(handle, "name", "<batch>"), number, f"expected {expected}, found {len(words)}")
        yield number, words


def _emit_batch(results, batch_format: str) -> int:
    """Write one line per result; returns how many had an unknown word."""
    failures = 0
    for result in results:
        if result.error:
            failures += 1
        if batch_format == "jsonl":
            click.echo(json.dumps(to_plain(result), ensure_ascii=False))
        elif result.error:
            click.echo(f"{result.query}\tERROR\t{result.error}")
        else:
            click.echo("\t".join([result.query] + [f"{n.word}\t{n.score:.6f}" for n in result.neighbours]))
    return failures


def _run_batch(handle, fields: int, answer, batch_format: str) -> None:
    lines = _batch_lines(handle, fields)
    failures = 0
    while chunk := list(itertools.islice(lines, BATCH_CHUNK)):
        failures += _emit_batch(answer([words for _, words in chunk]), batch_format)
    if failures:
        note(f"{failures:,} queries had an unknown word; their lines say which")


MAX_K = 100_000
k_option = click.option("-k", "k", type=click.IntRange(min=1, max=MAX_K), default=10, show_default=True,
                        help=f"How many answers (at most {MAX_K:,}).")
index_options = [
    click.option("--index", "index", default=None,
                 help="Index kind to search (exact, hnsw, ivf, sq8, pq). Default: the store's default."),
    click.option("--exact", is_flag=True, help="Search the exact rows, whatever the default index."),
]


def with_index_options(function):
    for option in reversed(index_options):
        function = option(function)
    return function


def chosen_index(index: str | None, exact: bool) -> str | None:
    return "exact" if exact else index


restrict_option = click.option(
    "--restrict", type=click.IntRange(min=1), default=None,
    help="Search only the N most frequent words (gensim's restrict_vocab).",
)


def _read_vector(text: str) -> list[float]:
    tokens = text.split()
    if tokens and not _is_number(tokens[0]):
        tokens = tokens[1:]  # 'word v1 v2 ...' as printed by 'embstore vector'
    if not tokens:
        raise QueryError("no vector on standard input")
    values = []
    for position, token in enumerate(tokens, 1):
        if not _is_number(token):
            raise QueryError(f"standard input: value {position} ({token!r}) is not a number")
        values.append(float(token))
    return values


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


@cli.command()
@click.argument("words", nargs=-1)
@k_option
@restrict_option
@click.option("--vector", "from_vector", is_flag=True,
              help="Read a vector from standard input ('v1 ... vd' or 'word v1 ... vd') instead of WORDS.")
@with_batch_options
@with_index_options
@db_option
@json_option
def nearest(words, k, restrict, from_vector, batch_file, batch_format, index, exact, db, as_json):
    """The K words closest to each WORD by cosine similarity."""
    if not words and not from_vector and batch_file is None:
        raise click.UsageError("give at least one WORD, --vector with a vector on standard input, or --batch FILE")
    kind = chosen_index(index, exact)
    with open_store(db) as store:
        if batch_file is not None:
            _run_batch(batch_file, 1, lambda rows: store.nearest_many(
                [r[0] for r in rows], k=k, restrict=restrict, on_unknown="report", index=kind, case_insensitive=True),
                batch_format)
            return
        if from_vector:
            results = [store.nearest_to_vector(_read_vector(sys.stdin.read()), k=k, restrict=restrict, index=kind)]
        else:
            results = store.nearest_many(list(words), k=k, restrict=restrict, index=kind, case_insensitive=True)
    emit_results(results, as_json)


@cli.command()
@click.argument("a", required=False)
@click.argument("b", required=False)
@click.argument("c", required=False)
@k_option
@click.option("--method", type=click.Choice(["add", "mul"]), default="add", show_default=True,
              help="add: 3CosAdd (gensim most_similar); mul: 3CosMul (most_similar_cosmul).")
@restrict_option
@with_batch_options
@with_index_options
@db_option
@json_option
def analogy(a, b, c, k, method, restrict, batch_file, batch_format, index, exact, db, as_json):
    """A is to B as C is to what? e.g. man king woman gives queen.

    3CosAdd by default, as gensim most_similar(positive=[B, C], negative=[A]);
    A, B and C are never among the answers.
    """
    if batch_file is None and c is None:
        raise click.UsageError("give three words A B C, or --batch FILE with 'a b c' on each line")
    kind = chosen_index(index, exact)
    with open_store(db) as store:
        if batch_file is not None:
            _run_batch(batch_file, 3, lambda rows: store.analogy_many(
                [tuple(r) for r in rows], k=k, method=method, restrict=restrict, on_unknown="report",
                index=kind, case_insensitive=True), batch_format)
            return
        result = store.analogy(a, b, c, k=k, method=method, restrict=restrict, index=kind, case_insensitive=True)
    emit_results([result], as_json, score_name="cosine" if method == "add" else "3cosmul")


@cli.command()
@click.argument("first")
@click.argument("second")
@db_option
@json_option
def similarity(first, second, db, as_json):
    """Cosine similarity of two words."""
    with open_store(db) as store:
        first_word, second_word = store.resolve_many([first, second], case_insensitive=True)
        score = store.similarity(first, second, case_insensitive=True)
    for resolved in (first_word, second_word):
        if resolved.note:
            note(resolved.note)
    if as_json:
        emit_json(similarity_json(first_word, second_word, score))
    else:
        click.echo(f"{score:.4f}")


@cli.command("odd-one-out")
@click.argument("words", nargs=-1, required=True)
@db_option
@json_option
def odd_one_out(words, db, as_json):
    """Which of WORDS does not belong (gensim's doesnt_match)."""
    with open_store(db) as store:
        for resolved in store.resolve_many(list(words), case_insensitive=True):
            if resolved.note:
                note(resolved.note)
        odd, ranked = store.doesnt_match(list(words), case_insensitive=True)
    if as_json:
        emit_json(odd_one_out_json(odd, ranked))
        return
    click.echo(odd)
    rows = [(nb.word, f"{nb.score:.4f}") for nb in ranked]
    click.echo(table(["word", "cosine to mean"], rows, "lr"), err=True)


@cli.command()
@click.argument("word")
@db_option
@json_option
def vector(word, db, as_json):
    """Print the vector of WORD as one line: the word, then its values.

    Pipe it into 'embstore nearest --vector'.
    """
    with open_store(db) as store:
        resolved = store.resolve(word, case_insensitive=True)
        values = store.vector(word, case_insensitive=True)
    if resolved.note:
        note(resolved.note)
    if as_json:
        emit_json(vector_json(resolved.word, values))
    else:
        click.echo(format_rows([resolved.word], values[None, :])[0])  # each value its shortest exact decimal
