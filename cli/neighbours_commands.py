"""``embstore neighbours --all``: every word's K nearest, written to a file, here or on Ray."""

from __future__ import annotations

import click

from embstore.distributed.blocks import DEFAULT_BLOCK
from embstore.distributed.neighbour_files import FORMATS, write_all_neighbours

from .main import cli, db_option, open_store
from .output import emit_json, json_option, stderr_is_terminal
from .query_commands import chosen_index, k_option, with_index_options
from .ray_options import block_progress, chosen_address, with_ray_options


@cli.command()
@click.option("--all", "all_words", is_flag=True, required=True,
              help="Every word of the store (required: the job's scope, spelled out).")
@k_option
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, writable=True, path_type=str),
              help="Output file; written only when the whole job succeeds.")
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="tsv", show_default=True,
              help="tsv: word, then neighbour and cosine pairs; parquet: columns word, neighbours, scores.")
@click.option("--block", type=click.IntRange(min=1, max=100_000), default=DEFAULT_BLOCK, show_default=True,
              help="Words per block (one batched search, one Ray task).")
@with_ray_options
@with_index_options
@db_option
@json_option
def neighbours(all_words, k, output, output_format, block, ray_address, ray_retries, index, exact, db, as_json):
    """Write the K nearest words of every word to a file (TSV or Parquet), in word-ID order.

    Each block of words is one batched search, in this process or, with --ray, as a Ray
    task; the file is the same either way. Progress goes to stderr.
    """
    address = chosen_address(ray_address)
    with open_store(db) as store:
        progress = block_progress("neighbours", len(store)) if address or stderr_is_terminal() else None
        report = write_all_neighbours(store, output, k, format=output_format, index=chosen_index(index, exact),
                                      address=address, block=block, progress=progress, max_retries=ray_retries)
    if as_json:
        emit_json(report)
    else:
        click.echo(f"Wrote the {k} nearest of {report.words:,} words ({report.index} index, "
                   f"{report.blocks:,} blocks) to {report.path}", err=True)
