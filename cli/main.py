"""The ``embstore`` command group: shared options and the translation of library errors."""

from __future__ import annotations

import contextlib
import difflib
import importlib
import os
import re
import shlex
import sqlite3
import sys
from typing import Any, Callable

import click

from embstore import EmbstoreError, Store, __version__
from embstore.errors import InterruptedAfterCommit
from embstore.paths import STORE_ENV_VAR


# Each command's module, imported only when that command runs (or help lists them all):
# `embstore nearest` does not pay for loading, evaluation, plotting or index building.
COMMAND_MODULES = {
    "load": "store_commands", "info": "store_commands", "export": "store_commands",
    "nearest": "query_commands", "analogy": "query_commands", "similarity": "query_commands",
    "odd-one-out": "query_commands", "vector": "query_commands", "neighbours": "neighbours_commands",
    "add": "change_commands", "delete": "change_commands", "rename": "change_commands",
    "check": "change_commands", "repair": "change_commands",
    "eval": "eval_commands", "index": "index_commands", "plot": "explore_commands", "shell": "explore_commands",
    "serve": "serve_commands", "shard": "shard_commands", "sketch": "store_commands",
}


class EmbstoreGroup(click.Group):
    """Turns embstore's own errors into one 'Error: ...' line and exit code 1."""

    def get_command(self, ctx: click.Context, name: str):
        if name not in self.commands and name in COMMAND_MODULES:
            importlib.import_module(f"{__package__}.{COMMAND_MODULES[name]}")  # registers its commands
        return super().get_command(ctx, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMAND_MODULES))

    def resolve_command(self, ctx: click.Context, args: list[str]):
        """click's, with the closest command named when one was mistyped ('neareset')."""
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            name = args[0] if args else ""
            close = difflib.get_close_matches(name.lower(), self.list_commands(ctx), n=1, cutoff=0.6)
            if close and "No such command" in exc.message:
                exc.message += f" Did you mean {close[0]!r}?"
            raise

    def invoke(self, ctx: click.Context) -> Any:
        arguments = [*getattr(ctx, "_protected_args", ()), *ctx.args]  # the subcommand's, before click takes them
        try:
            return super().invoke(ctx)
        except EmbstoreError as exc:
            raise click.ClickException(_with_db(str(exc), arguments)) from None
        except UnicodeDecodeError as exc:
            raise click.ClickException(f"input is not valid UTF-8 ({exc.reason})") from None
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
        except InterruptedAfterCommit:
            click.echo("Interrupted, but only after the change was committed: the store holds it.", err=True)
            sys.exit(130)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)


_HINT = re.compile(r"embstore (?:index (?:build|default|tune)|repair|check|shard)\b[^;'\n)]*")


def _with_db(message: str, arguments: list[str]) -> str:
    """The hints in ``message`` ('build it with: embstore index build --kind hnsw') with the
    ``--db`` the command was given, so that running them works on the same store (found by a
    new user: a hint without it acts on the default store)."""
    db = next((arguments[i + 1] for i, a in enumerate(arguments[:-1]) if a == "--db"), None) or next(
        (a.split("=", 1)[1] for a in arguments if a.startswith("--db=")), None)
    if not db:
        return message
    return _HINT.sub(lambda m: m.group(0) if "--db" in m.group(0) else
                     f"{m.group(0).rstrip()} --db {shlex.quote(db)}", message)


@click.group(cls=EmbstoreGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="embstore")
def cli() -> None:
    """Index word embeddings in SQLite + FAISS and ask them questions.

    \b
    Start with:   embstore load glove.6B.50d.txt
    Then ask:     embstore nearest king
                  embstore analogy man king woman
    \b
    The store lives at --db PATH, else $EMBSTORE_DB, else
    ~/.local/share/embstore/store.db.
    """


def db_option(function: Callable) -> Callable:
    """``--db PATH``: the store. Defaults to $EMBSTORE_DB, then the per-user default store."""
    return click.option(
        "--db", "db", type=click.Path(dir_okay=False, path_type=str), default=None,
        help=f"Store database file. Default: ${STORE_ENV_VAR}, else ~/.local/share/embstore/store.db.",
    )(function)


_shell_store: Store | None = None


class _KeepOpen:
    """The shell's store, handed to commands as a context manager that does not close it."""

    def __init__(self, store: Store):
        self.store = store

    def __enter__(self) -> Store:
        return self.store

    def __exit__(self, *exc) -> None:
        pass


@contextlib.contextmanager
def shell_session(store: Store):
    """While active, commands use ``store`` instead of opening one."""
    global _shell_store
    _shell_store = store
    try:
        yield
    finally:
        _shell_store = None


def open_store(db: str | None):
    """The store a command works on: the shell's open store, or the one at ``db``."""
    if _shell_store is not None:
        return _KeepOpen(_shell_store)
    return Store.open(db)
