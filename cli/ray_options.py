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


class block_progress:
    """A progress callback printing '<label>: N blocks, M queries done' on stderr, at most once
    every ``every`` seconds (the first block and the last, with ``finish``, always)."""

    def __init__(self, label: str, total: int | None = None, every: float = 1.0):
        self.label, self.total, self.every = label, total, every
        self.last_shown = 0.0
        self.state: tuple[int, int] | None = None
        self.shown: tuple[int, int] | None = None

    def __call__(self, blocks: int, queries: int) -> None:
        self.state = (blocks, queries)
        now = time.monotonic()
        if now - self.last_shown >= self.every or (self.total and queries >= self.total):
            self.last_shown = now
            self._show()

    def _show(self) -> None:
        blocks, queries = self.shown = self.state
        of = f" of {self.total:,}" if self.total else ""
        click.echo(f"{self.label}: {blocks:,} blocks, {queries:,}{of} queries done", err=True)

    def finish(self) -> None:
        """Show the final count if the last call was not shown."""
        if self.state is not None and self.state != self.shown:
            self._show()
