"""``--ray ADDRESS``: run a batch job as Ray tasks (``embstore[ray]``), and its progress lines."""

from __future__ import annotations

import time
from typing import Callable

import click

from embstore.distributed.ray_support import RAY_ADDRESS_ENV_VAR, address_from_env


def with_ray_options(function: Callable) -> Callable:
    """Add ``--ray ADDRESS`` (default $EMBSTORE_RAY_ADDRESS; none: run in this process) and ``--ray-retries``."""
    function = click.option(
        "--ray-retries", type=click.IntRange(min=0), default=3, show_default=True,
        help="With --ray: how often a block lost with a node is run again before the job fails.",
    )(function)
    return click.option(
        "--ray", "ray_address", metavar="ADDRESS", default=None,
        help=f"Run the job as Ray tasks on the cluster at ADDRESS (HOST:PORT of the head, or 'auto'); "
             f"default ${RAY_ADDRESS_ENV_VAR}. Needs: pip install 'embstore[ray]'. The store must be at "
             "the same path on every node.",
    )(function)


def chosen_address(option: str | None) -> str | None:
    """The cluster a job runs on: ``--ray``, else $EMBSTORE_RAY_ADDRESS, else None (this process)."""
    return address_from_env(option)


def block_progress(label: str, total: int | None = None, every: float = 1.0):
    """A progress callback printing '<label>: N blocks, M queries done' on stderr, at most
    once every ``every`` seconds (and for the first block)."""
    last = [0.0]

    def progress(blocks: int, queries: int) -> None:
        now = time.monotonic()
        if now - last[0] < every and not (total and queries >= total):
            return
        last[0] = now
        of = f" of {total:,}" if total else ""
        click.echo(f"{label}: {blocks:,} blocks, {queries:,}{of} queries done", err=True)

    return progress
