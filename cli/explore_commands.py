"""Commands for looking around: ``plot`` draws a 2D map, ``shell`` keeps the store open for many questions."""

from __future__ import annotations

import shlex
import sys

import click

from embstore import EmbstoreError
from embstore.plot import METHODS, draw, project

from .main import cli, db_option, open_store, shell_session
from .output import counted


@cli.command()
@click.argument("words", nargs=-1)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="The image to write: .png or .svg.")
@click.option("--method", type=click.Choice(METHODS), default="pca", show_default=True,
              help="pca (numpy) or tsne (needs scikit-learn).")
@click.option("--neighbours", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also plot each word's K nearest words, in a lighter colour.")
@click.option("--fit-top", type=click.IntRange(min=2), default=None,
              help="Fit PCA on the N most frequent words instead of the plotted words.")
@click.option("--words-file", type=click.File("r", encoding="utf-8"), help="Read more words from a file, one per line.")
@click.option("--analogy", "analogies", multiple=True,
              help="Four words 'a b c d' (a is to b as c is to d): draws arrows a->b and c->d. Repeatable.")
@db_option
def plot(words, output, method, neighbours, fit_top, words_file, analogies, db):
    """Draw WORDS on a labelled 2D map (PCA or t-SNE) to a PNG or SVG file."""
    listed = list(words)
    if words_file is not None:
        listed += [line.strip() for line in words_file if line.strip()]
    quads = [tuple(a.split()) for a in analogies]
    if not listed and not quads:
        raise click.UsageError("give WORDS, --words-file or --analogy")
    with open_store(db) as store:
        projection = project(store, listed, method=method, neighbours=neighbours, fit_top=fit_top, analogies=quads,
                             case_insensitive=True)
        name = store.path.name
    title = f"{name}: {'PCA' if method == 'pca' else 't-SNE'} of {len(projection.words)} words"
    if fit_top and method == "pca":
        title += f" (fitted on the top {fit_top:,})"
    path = draw(projection, output, title)
    click.echo(f"Wrote {path} ({counted(len(projection.words), 'word')})")


SHELL_HELP = """Commands (the same as on the command line, without 'embstore'):
  nearest WORD... [-k N] [--restrict N] [--index KIND] [--json]
  analogy A B C [-k N] [--method add|mul]
  similarity W1 W2          odd-one-out W1 W2 W3...
  vector WORD               info
  help                      quit (or exit, or Ctrl-D)"""

SHELL_COMMANDS = ("nearest", "analogy", "similarity", "odd-one-out", "vector", "info", "help", "quit", "exit")


def _completer(store):
    """Tab completion: command names first, then vocabulary words by prefix."""
    state: dict = {}

    def complete(text: str, index: int):
        if index == 0:
            import readline

            line = readline.get_line_buffer()
            if not line[: readline.get_begidx()].strip():
                state["options"] = [c for c in SHELL_COMMANDS if c.startswith(text)]
            elif text.startswith("-") or not text:
                state["options"] = []
            else:
                state["options"] = store.vocab.completions(text, 50)
        options = state.get("options", [])
        return options[index] if index < len(options) else None

    return complete


@cli.command()
@db_option
def shell(db):
    """Keep the store open and answer commands, one per line (history and word completion on a terminal)."""
    interactive = sys.stdin.isatty()
    with open_store(db) as store:
        if interactive:
            try:
                import readline

                readline.set_completer(_completer(store))
                readline.set_completer_delims(" \t")
                readline.parse_and_bind("tab: complete")
            except ImportError:
                pass
            click.echo(f"embstore shell on {store.path} ({len(store):,} words). Type 'help'.", err=True)
        with shell_session(store):
            while True:
                try:
                    if interactive:
                        sys.stderr.write("embstore> ")
                        sys.stderr.flush()
                    line = input()
                except EOFError:
                    break
                except KeyboardInterrupt:
                    sys.stderr.write("\n")
                    continue
                try:
                    arguments = shlex.split(line)
                except ValueError as exc:
                    click.echo(f"Error: {exc}", err=True)
                    continue
                if not arguments:
                    continue
                if arguments[0] in ("quit", "exit"):
                    break
                if arguments[0] in ("help", "?"):
                    click.echo(SHELL_HELP)
                    continue
                if arguments[0] not in SHELL_COMMANDS:
                    click.echo(f"Error: unknown command {arguments[0]!r}; type 'help'", err=True)
                    continue
                try:  # a long session sees what other processes commit, and lets go of the old WAL
                    store.refresh()
                except EmbstoreError as exc:
                    click.echo(f"note: the store stays as it was when last read: {exc}", err=True)
                try:
                    cli.main(args=arguments, prog_name="embstore", standalone_mode=False)
                except click.ClickException as exc:
                    click.echo(f"Error: {exc.format_message()}", err=True)
                except click.exceptions.Exit:
                    pass
                except click.exceptions.Abort:
                    break
