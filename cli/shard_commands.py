"""``embstore shard``: split a store's rows by word ID into one file per shard (for Ray's shard actors)."""

from __future__ import annotations

import sys

import click

from .main import cli, db_option, open_store
from .output import counted, emit_json, human_bytes, json_option, stderr_is_terminal


@cli.command()
@click.option("--shards", type=click.IntRange(min=1, max=4096), default=None,
              help="Split the rows into N shards of consecutive word IDs, one file each.")
@click.option("--graphs", is_flag=True, help="Also build and store an HNSW graph of each shard's rows.")
@click.option("--drop", is_flag=True, help="Remove the shard files (the store's rows stay).")
@db_option
@json_option
def shard(shards, graphs, drop, db, as_json):
    """Split the store's exact rows by word ID into N shard files, or show or drop its shards.

    The catalog stays the one source of words and IDs; each shard file holds a copy of its
    range's rows. 'nearest --batch --ray ADDRESS --shards N' gives each Ray shard actor its
    file (and, with --graphs, its stored HNSW graph). Adding, deleting or replacing words
    writes the shard rows again in the same commit; the graphs then go stale until the next
    'embstore shard --shards N --graphs' (which keeps the rows files). --shards N replaces any
    other layout; without --graphs it keeps no graphs. Without options it shows the layout.
    """
    if drop and (shards or graphs):
        raise click.UsageError("--drop removes the shards; give it alone")
    with open_store(db) as store:
        if drop:
            dropped = store.drop_shards()
            if as_json:
                emit_json({"dropped": dropped})
            else:
                click.echo(f"Dropped {counted(dropped, 'shard')}" if dropped else "The store had no shards")
            return
        if shards is None:
            if graphs:
                raise click.UsageError("--graphs needs --shards N")
        else:
            bar = None

            def progress(what: str, done: int, total: int) -> None:
                nonlocal bar
                if bar is None or bar.label != f"Writing shard {what}":
                    if bar is not None:
                        bar.__exit__(None, None, None)
                    bar = click.progressbar(length=total, label=f"Writing shard {what}", file=sys.stderr)
                    bar.__enter__()
                bar.update(done - bar.pos)

            before = store.shard_layout()
            try:
                store.shard(shards, graphs=graphs, progress=progress if stderr_is_terminal() else None)
            finally:
                if bar is not None:
                    bar.__exit__(None, None, None)
            if before is not None and before.shards != shards:
                click.echo(f"Replaced the layout of {counted(before.shards, 'shard')}", err=True)
            if before is not None and (before.graphs or before.stale) and not graphs:
                click.echo("Removed the stored HNSW graphs (give --graphs to store graphs)", err=True)
        layout = store.shard_layout()
        problems = layout.file_problems(store.path) if layout is not None else []
    _show(layout, problems, as_json)


def _show(layout, problems: list[str], as_json: bool) -> None:
    if as_json:
        if layout is None:  # the same fields as a layout's, so a script need not test for null
            emit_json({"shards": 0, "graphs": False, "stale_graphs": False, "bytes": 0, "problems": problems,
                       "files": []})
            return
        emit_json({
            "shards": layout.shards, "graphs": bool(layout.graphs), "stale_graphs": layout.stale_graphs,
            "bytes": layout.bytes, "problems": problems,
            "files": [{"shard": r.number, "kind": r.kind, "start": r.start, "stop": r.stop, "file": r.file,
                       "bytes": r.bytes, "stale": r in layout.stale} for r in layout.exact + layout.graphs + layout.stale]})
        return
    if layout is None:
        click.echo("The store is not sharded ('embstore shard --shards N' splits it)")
        return
    graphs = " with HNSW graphs" if layout.graphs else ", their HNSW graphs stale" if layout.stale_graphs else ""
    click.echo(f"{counted(layout.shards, 'shard')}{graphs}, {human_bytes(layout.bytes)}:")
    for number, record in enumerate(layout.exact):
        graph = f" + graph {human_bytes(layout.graphs[number].bytes)}" if layout.graphs else ""
        click.echo(f"  shard {number}: word IDs {record.start:,} .. {record.stop - 1:,} "
                   f"({counted(record.rows, 'row')}, {human_bytes(record.bytes)}{graph})")
    if layout.stale_graphs:
        click.echo(f"The HNSW graphs were built before the rows last changed, so they are not used; "
                   f"'embstore shard --shards {layout.shards} --graphs' builds them again (the rows files stay).")
    for problem in problems:
        click.echo(f"Damaged: {problem} (run 'embstore check', then 'embstore repair')")
    if not problems:
        click.echo(f"Used by: embstore nearest --batch FILE --ray ADDRESS --shards {layout.shards} "
                   "(one Ray actor per shard file; README, Scaling out)")
