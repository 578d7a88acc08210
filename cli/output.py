"""One place that turns results into a table or JSON. Notes and progress go to stderr."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, Sequence

import click

from embstore import QueryResult
from embstore.json_answers import results_json, to_plain  # to_plain: also used by other commands


def json_option(function: Callable) -> Callable:
    """Add ``--json`` to a command that prints results."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(function)


def emit_json(value: Any) -> None:
    click.echo(json.dumps(to_plain(value), ensure_ascii=False, indent=2))


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """'1 word', '2 words', '1,000 queries': a count with its noun in the right number."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"


def note(message: str) -> None:
    click.echo(f"note: {message}", err=True)


MAX_CELL = 60  # characters: a longer cell (a 1,000,000-character word) is cut, so rows stay bounded


def shown(value: Any) -> str:
    """A cell as printed: control characters escaped (never sent raw to a terminal), at most MAX_CELL long."""
    text = str(value)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "\u2026"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A plain text table; ``align`` has one 'l' or 'r' per column. Cells go through ``shown``."""
    cells = [[str(h) for h in headers]] + [[shown(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    align = align or "l" * len(headers)
    lines = []
    for n, row in enumerate(cells):
        parts = [c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(row, widths, align)]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def emit_results(results: Sequence[QueryResult], as_json: bool, score_name: str = "cosine") -> None:
    """Print query results: one table each (with the query as a heading when several). A result
    with an unknown word (``error``) is an 'Error: ...' line on stderr, and an "error" field in
    JSON; the others are still printed, and the command then exits with status 1."""
    for result in results:
        for message in result.notes:
            note(message)
    if as_json:
        emit_json(results_json(results))
    else:
        for n, result in enumerate(results):
            if result.error:
                click.echo(f"Error: {result.error}", err=True)
                continue
            if len(results) > 1:
                click.echo(("\n" if n else "") + result.query)
            rows = [(i, nb.word, f"{nb.score:.4f}") for i, nb in enumerate(result.neighbours, 1)]
            click.echo(table(["#", "word", score_name], rows, "rlr"))
    errors = [result.error for result in results if result.error]
    if errors:
        if as_json:  # the tables' loop above said them in place
            for error in errors:
                click.echo(f"Error: {error}", err=True)
        raise click.exceptions.Exit(1)  # the shell goes on; a command exits with status 1


def emit_counts(counts: dict, total: int, as_json: bool, message: str) -> None:
    """What an add or append did: its counts and the new word total as JSON, else ``message``."""
    if as_json:
        emit_json({**counts, "words": total})
    else:
        click.echo(message)


def human_bytes(size: int | None) -> str:
    if size is None:
        return "missing"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
