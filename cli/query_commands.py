"""Commands that ask the store questions: nearest, analogy, similarity, odd-one-out, vector."""

from __future__ import annotations

import json
import sys

import click

from embstore import FormatError, QueryError
from embstore.formats.float_text import format_rows
from embstore.json_answers import odd_one_out_json, similarity_json, vector_json

from embstore.distributed.blocks import split_blocks
from embstore.distributed.job_runner import run_job
from embstore.distributed.jobs import BlockAnswer, JobSpec

from .input_files import decoded_lines
from .main import cli, db_option, open_store
from .output import counted, emit_json, emit_results, json_option, note, table, to_plain
from .ray_options import block_progress, chosen_address, with_ray_options

BATCH_CHUNK = 4096
batch_options = [
    click.option("--batch", "batch_file", type=click.File("rb"),
                 help="Answer one query per line of this file ('-' for stdin), one result per output line."),
    click.option("--batch-format", type=click.Choice(["tsv", "jsonl"]), default="tsv", show_default=True,
                 help="Batch output: TSV (query, then word and score pairs; notes on stderr) or JSON lines (also --json)."),
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


NOTES_SHOWN = 10  # a TSV batch's notes on stderr: the first ones, then how many more


def _emit_batch(results, batch_format: str, notes: list[str] | None = None) -> int:
    """Write one line per result; returns how many had an unknown word. TSV has no place for
    notes: they are collected in ``notes`` for stderr (JSON lines carry them)."""
    failures = 0
    for result in results:
        if result.error:
            failures += 1
        if notes is not None and batch_format != "jsonl":
            notes.extend(f"{result.query}: {message}" if not message.startswith(repr(result.query)) else message
                         for message in result.notes)
        if batch_format == "jsonl":
            click.echo(json.dumps(to_plain(result), ensure_ascii=False))
        elif result.error:
            click.echo(f"{result.query}\tERROR\t{result.error}")
        else:
            click.echo("\t".join([result.query] + [f"{n.word}\t{n.score:.6f}" for n in result.neighbours]))
    return failures


def _run_batch(handle, fields: int, store, spec: JobSpec, batch_format: str, address: str | None = None,
               retries: int | None = None, shards: int | None = None) -> None:
    """Answer the batch file block by block (BATCH_CHUNK queries, one search each), here or as
    Ray tasks on the cluster at ``address``; the output is the same either way."""
    queries = (words if fields > 1 else words[0] for _, words in _batch_lines(handle, fields))
    blocks = split_blocks(queries, BATCH_CHUNK)
    progress = block_progress(spec.job) if address else None
    if shards:
        answers = _sharded_answers(store, spec, blocks, address, shards, progress)
    else:
        answers = run_job(store, spec, blocks, address, progress=progress, max_retries=retries)
    failures = 0
    notes: list[str] = []
    for answer in answers:
        failures += _emit_batch(answer.results, batch_format, notes)
    if progress:
        progress.finish()
    for message in notes[:NOTES_SHOWN]:
        note(message)
    if len(notes) > NOTES_SHOWN:
        note(f"... and {len(notes) - NOTES_SHOWN:,} more notes (--batch-format jsonl gives each query's notes)")
    if failures:
        note(f"{counted(failures, 'query', 'queries')} had an unknown word; {'its line says' if failures == 1 else 'their lines say'} which")


def _sharded_answers(store, spec: JobSpec, blocks, address: str | None, shards: int, progress):
    """``nearest --batch`` blocks answered by ``shards`` Ray actors over the exact rows (or,
    with --index hnsw, over an HNSW graph each builds of its rows, with the recall measured)."""
    options = spec.options
    kind = options.get("index") or "exact"
    if address is None:
        raise click.UsageError("--shards needs --ray ADDRESS (or $EMBSTORE_RAY_ADDRESS): the shards are Ray actors")
    if options.get("restrict") is not None or kind not in ("exact", "hnsw"):
        raise click.UsageError("--shards searches every word's exact rows, or with --index hnsw a graph per shard; "
                               "use it without --restrict")
    from embstore.distributed.ray_shards import RayShards

    done = queries = found = expected = 0
    with RayShards(address, store, shards, graph=kind == "hnsw") as sharded:
        note(f"searching {sharded.source}")
        for block in blocks:
            answered = sharded.nearest_many(block.items, k=options["k"], on_unknown="report", case_insensitive=True,
                                            kind=kind, measure_recall=kind != "exact")
            results = answered
            if kind != "exact":
                results, (block_found, block_expected) = answered
                found, expected = found + block_found, expected + block_expected
            done, queries = done + 1, queries + len(results)
            if progress:
                progress(done, queries)
            yield BlockAnswer(block.number, store.generation, results)
    if expected:
        note(f"recall@{options['k']} of the {kind} shards against exact search: {found / expected:.4f} "
             f"({counted(queries, 'query', 'queries')})")


def _batch_only(option: str | None, shards: int | None = None) -> None:
    """--ray and --shards apply to --batch jobs only (an explicit option; the environment is ignored)."""
    if option or shards:
        given = " and ".join(name for name, value in (("--ray", option), ("--shards", shards)) if value)
        raise click.UsageError(f"{given} {'runs' if ' and ' not in given else 'run'} --batch jobs; give --batch FILE")


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
@with_ray_options
@click.option("--shards", type=click.IntRange(min=1), default=None,
              help="With --batch and --ray: search N shards of the rows by word ID, one Ray actor each, exactly (or "
                   "with --index hnsw through a graph per shard, recall reported). Each actor loads its file of the "
                   "store's 'embstore shard' layout when it has N shards, else copies its range of the rows.")
@with_index_options
@db_option
@json_option
def nearest(words, k, restrict, from_vector, batch_file, batch_format, ray_address, ray_retries, shards, index,
            exact, db, as_json):
    """The K words closest to each WORD by cosine similarity."""
    if not words and not from_vector and batch_file is None:
        raise click.UsageError("give at least one WORD, --vector with a vector on standard input, or --batch FILE")
    kind = chosen_index(index, exact)
    with open_store(db) as store:
        if batch_file is not None:
            spec = JobSpec("nearest", {"k": k, "restrict": restrict, "on_unknown": "report", "index": kind,
                                       "case_insensitive": True})
            _run_batch(batch_file, 1, store, spec, "jsonl" if as_json else batch_format, chosen_address(ray_address), ray_retries, shards)
            return
        _batch_only(ray_address, shards)
        if from_vector:
            results = [store.nearest_to_vector(_read_vector(sys.stdin.read()), k=k, restrict=restrict, index=kind)]
        else:
            results = store.nearest_many(list(words), k=k, restrict=restrict, index=kind, case_insensitive=True,
                                         on_unknown="report")
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
@with_ray_options
@with_index_options
@db_option
@json_option
def analogy(a, b, c, k, method, restrict, batch_file, batch_format, ray_address, ray_retries, index, exact, db,
            as_json):
    """A is to B as C is to what? e.g. man king woman gives queen.

    3CosAdd by default, as gensim most_similar(positive=[B, C], negative=[A]);
    A, B and C are never among the answers.
    """
    if batch_file is None and c is None:
        raise click.UsageError("give three words A B C, or --batch FILE with 'a b c' on each line")
    kind = chosen_index(index, exact)
    with open_store(db) as store:
        if batch_file is not None:
            spec = JobSpec("analogy", {"k": k, "method": method, "restrict": restrict, "on_unknown": "report",
                                       "index": kind, "case_insensitive": True})
            _run_batch(batch_file, 3, store, spec, "jsonl" if as_json else batch_format, chosen_address(ray_address), ray_retries)
            return
        _batch_only(ray_address)
        results = store.analogy_many([(a, b, c)], k=k, method=method, restrict=restrict, on_unknown="report",
                                     index=kind, case_insensitive=True)
    emit_results(results, as_json, score_name="cosine" if method == "add" else "3cosmul")


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
        emit_json(vector_json(resolved, values))
    else:
        click.echo(format_rows([resolved.word], values[None, :])[0])  # each value its shortest exact decimal
