"""Answers as JSON-able values: the one form shared by the CLI's ``--json`` and the HTTP API.

Results are dataclasses and named tuples everywhere else; they become plain dicts and lists
only here, at the edge, so that ``embstore nearest king --json`` and
``GET /api/nearest?word=king`` give the same fields.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from .formats.float_text import format_rows
from .results import Neighbour, QueryResult, Resolved


def to_plain(value: Any) -> Any:
    """``value`` with dataclasses and named tuples turned into dicts, tuples and sets into lists and
    numpy values into Python numbers: something ``json.dumps`` takes."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: to_plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):  # a Neighbour: {"word": ..., "score": ...}
        return {k: to_plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):  # check's damaged and stale kinds, say: sorted, so output is stable
        return sorted(to_plain(v) for v in value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "__fspath__"):
        return str(value)
    if isinstance(value, (bytes, bytearray)):  # a catalog value damaged to a BLOB: shown as its repr, as info does
        return repr(bytes(value))
    return value


def results_json(results: Sequence[QueryResult]) -> dict | list:
    """Query results: one result as its dict ({query, neighbours: [{word, score}], notes, error}),
    several as a list of them."""
    payload = [to_plain(result) for result in results]
    return payload[0] if len(payload) == 1 else payload


def similarity_json(first: Resolved, second: Resolved, cosine: float) -> dict:
    """{first, second, cosine, notes}: the words as resolved (a case-insensitive match gives the
    stored word) and how, when not exactly (a fastText word built from its n-grams, say)."""
    return {"first": first.word, "second": second.word, "cosine": cosine,
            "notes": [r.note for r in (first, second) if r.note]}


def odd_one_out_json(odd: str, ranked: Sequence[Neighbour]) -> dict:
    """{odd_one_out, cosine_to_mean: [{word, score}], least similar first}."""
    return {"odd_one_out": odd, "cosine_to_mean": to_plain(list(ranked))}


def vector_json(resolved: Resolved, values: np.ndarray) -> dict:
    """{word, vector, notes}: each value the shortest decimal that reads back to the same float32."""
    line = format_rows([resolved.word], np.asarray(values, dtype=np.float32)[None, :])[0]
    return {"word": resolved.word, "vector": [float(text) for text in line.split(" ")[1:]],
            "notes": [resolved.note] if resolved.note else []}
