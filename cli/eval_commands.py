"""``embstore eval``: analogy accuracy and word-pair correlation on standard benchmark files."""

from __future__ import annotations

import csv

import click

from embstore.evaluation.evaluate import DEFAULT_RESTRICT

from .main import cli, db_option, open_store
from .output import emit_json, json_option, table
from .query_commands import chosen_index, with_index_options
from .ray_options import block_progress, chosen_address, with_ray_options

restrict_option = click.option(
    "--restrict", type=click.IntRange(min=1), default=DEFAULT_RESTRICT, show_default=True,
    help="Use only the N most frequent words (gensim's restrict_vocab).",
)
case_option = click.option(
    "--case-sensitive", is_flag=True,
    help="Match words exactly (gensim's case_insensitive=False). Default: case-insensitive, most frequent spelling.",
)


@cli.group("eval")
def eval_group() -> None:
    """Evaluate the store on standard benchmarks, with gensim's rules.

    \b
    The standard files ship with gensim (pip install gensim):
      python -c "from gensim.test.utils import datapath; print(datapath('questions-words.txt'))"
    and likewise wordsim353.tsv and simlex999.txt.
    """


def _accuracy(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


@eval_group.command("analogies")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--method", type=click.Choice(["add", "mul"]), default="add", show_default=True,
              help="add: 3CosAdd (gensim evaluate_word_analogies); mul: 3CosMul.")
@restrict_option
@case_option
@click.option("--errors", "errors_file", type=click.Path(dir_okay=False, path_type=str),
              help="Write each wrong answer (TSV: file, line, section, a, b, c, expected, answer) to this file.")
@with_ray_options
@with_index_options
@db_option
@json_option
def analogies(files, method, restrict, case_sensitive, errors_file, ray_address, ray_retries, index, exact, db,
              as_json):
    """Analogy accuracy on Google-format FILES (': section' lines, then 'a b c d').

    Questions with a word outside the vocabulary are skipped and counted, as gensim does.
    With --ray, the questions the screen cannot decide are searched in blocks as Ray tasks.
    """
    results = []
    address = chosen_address(ray_address)
    progress = block_progress("analogies") if address else None
    with open_store(db) as store:
        searched_by = {}
        if address:
            from embstore.distributed.job_runner import analogy_hits_runner

            searched_by["analogy_hits"] = analogy_hits_runner(store, address, progress=progress,
                                                              max_retries=ray_retries)
        for path in files:
            results.append(store.evaluate_analogies(
                path, method=method, restrict=restrict, case_insensitive=not case_sensitive,
                keep_mistakes=errors_file is not None, index=chosen_index(index, exact), **searched_by,
            ))
    if progress:
        progress.finish()
    if errors_file:
        with open(errors_file, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            writer.writerow(["file", "line", "section", "a", "b", "c", "expected", "answer"])
            for result in results:
                for m in result.mistakes:
                    writer.writerow([result.path, m.line, m.section, *m.question, m.expected, m.predicted or ""])
    if as_json:
        emit_json([r.as_dict() for r in results] if len(results) > 1 else results[0].as_dict())
        return
    for n, result in enumerate(results):
        if n:
            click.echo("")
        click.echo(f"{result.path}  ({'3CosAdd' if method == 'add' else '3CosMul'}, {result.index} index, "
                   f"restrict {result.restrict or 'none'}, {result.seconds:.1f}s)")
        rows = [(s.section, s.correct, s.incorrect, s.skipped, _accuracy(s.accuracy)) for s in result.sections]
        rows.append(("", "", "", "", ""))
        for summary in (result.semantic, result.syntactic, result.total):
            rows.append((summary.section, summary.correct, summary.incorrect, summary.skipped,
                         _accuracy(summary.accuracy)))
        click.echo(table(["section", "correct", "incorrect", "skipped", "accuracy"], rows, "lrrrr"))
        click.echo(f"Questions skipped for unknown words: {result.total.skipped:,} ({result.oov_ratio:.2f}%)")


@eval_group.command("similarity")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=str))
@restrict_option
@case_option
@with_index_options
@db_option
@json_option
def similarity_benchmark(files, restrict, case_sensitive, index, exact, db, as_json):
    """Pearson and Spearman correlation with human scores on word-pair FILES (WordSim353, SimLex-999).

    Similarities come from the stored vectors; --index is accepted for symmetry with
    the other commands and changes nothing here.
    """
    with open_store(db) as store:
        results = [store.evaluate_word_pairs(path, restrict=restrict, case_insensitive=not case_sensitive)
                   for path in files]
    if as_json:
        emit_json([r.as_dict() for r in results] if len(results) > 1 else results[0].as_dict())
        return
    rows = [(r.path, f"{r.pearson:.4f}", f"{r.spearman:.4f}", r.pairs_used, r.pairs_skipped, f"{r.oov_ratio:.2f}%")
            for r in results]
    click.echo(table(["file", "pearson", "spearman", "pairs", "unknown", "oov"], rows, "lrrrrr"))
