"""The ``embstore`` command group: shared options and the translation of library errors."""

from __future__ import annotations

import os
import sqlite3
import sys
from typing import Any, Callable

import click

from embstore import EmbstoreError, Store, __version__
from embstore.paths import STORE_ENV_VAR


class EmbstoreGroup(click.Group):
    """Turns embstore's own errors into one 'Error: ...' line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EmbstoreError as exc:
            raise click.ClickException(str(exc)) from None
        except sqlite3.Error as exc:
            raise click.ClickException(f"the store's database failed: {exc}") from None
        except OSError as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            target = f" {exc.filename}" if exc.filename else ""
            raise click.ClickException(f"cannot use{target}: {exc.strerror or exc}") from None
        except BrokenPipeError:
            # The reader of our output (head, less) went away: stop quietly.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)


@click.group(cls=EmbstoreGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="embstore")
def cli() -> None:
    """Index word embeddings in SQLite + FAISS and ask them questions.

    \b
    Start with:   embstore load glove.6B.50d.txt
    Then ask:     embstore nearest king
                  embstore analogy man king woman
    """


def db_option(function: Callable) -> Callable:
    """``--db PATH``: the store. Defaults to $EMBSTORE_DB, then the per-user default store."""
    return click.option(
        "--db", "db", type=click.Path(dir_okay=False, path_type=str), default=None,
        help=f"Store database file. Default: ${STORE_ENV_VAR}, else ~/.local/share/embstore/store.db.",
    )(function)


def open_store(db: str | None) -> Store:
    return Store.open(db)
