"""The settings each approximate index kind is built and searched with: their names, defaults
and ranges, and which recorded values are settings at all.

Catalog knowledge (an index's record holds them) that both the searcher and ``check`` read:
it imports neither FAISS nor SQLite."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Parameter:
    name: str
    default: Callable[[int, int], int]  # (rows, dimension) -> value
    help: str
    search_time: bool = False  # can be changed per query without rebuilding
    minimum: int = 1
    older_records_use: str | None = None  # the setting that stood for this one before it existed
    maximum: int | None = None  # a build setting past which the build takes hours or the memory (search: MAX_SEARCH_SETTING)


PARAMETERS: dict[str, list[Parameter]] = {
    "hnsw": [
        # Measured on GloVe 6B 50d (400k rows, words drawn evenly from the vocabulary, 2 cores;
        # bench/hnsw_build.py, README "HNSW build time against recall"). The defaults build
        # within a minute: FAISS's graph at efConstruction 40 (~38 s), then each row linked to
        # its 16 nearest neighbours found by a search from the row itself with a list of 16
        # (hnsw_links, ~15-18 s). Word queries start at the word: recall@10 0.914 with a list
        # of 12, 0.977 with 96; vector queries (analogies) from the top: 0.977 with 96. Plain
        # HNSW (no links) gives 0.885 and 0.973. A graph at efConstruction 128 linked at 128
        # reaches 0.994 with a list of 12 but builds in 3-4 times as long (--ef-construction
        # 128 --link-ef 128). M=16 needs more work a query; M=24 at 64 and M=32 at 32 recall
        # less than M=32 at 40 in the same time.
        # M=1 crashes FAISS; past these maxima a 400k build would take hours (a list of 100,000
        # took 50 s on 5,000 words, growing with the square of the words) or M's lists the memory.
        Parameter("m", lambda n, d: 32, "graph neighbours per node (HNSW M)", minimum=2, maximum=256),
        Parameter("ef_construction", lambda n, d: 40, "candidate list size while building the graph", maximum=4096),
        Parameter("knn_links", lambda n, d: 16, "nearest neighbours linked from each row's level-0 list (0: plain HNSW)",
                  minimum=0, maximum=512),
        Parameter("link_ef", lambda n, d: 16,
                  "candidate list size when searching each row's nearest neighbours for its links, from the row itself",
                  maximum=4096),
        Parameter("ef_search", lambda n, d: 96, "candidate list size when searching for a vector (analogies)",
                  search_time=True),
        Parameter("ef_search_words", lambda n, d: 96,
                  "candidate list size when the query is a stored word (searched from the word itself)",
                  search_time=True, older_records_use="ef_search"),
    ],
    "ivf": [
        Parameter("nlist", lambda n, d: max(1, min(1024, n, int(2 * np.sqrt(n)))), "number of clusters"),
        Parameter("nprobe", lambda n, d: 64, "clusters scanned per query", search_time=True),
    ],
    "sq8": [],
    "pq": [
        Parameter("m", lambda n, d: default_pq_m(d), "sub-quantizers (bytes per row); must divide the dimension"),
    ],
}


def default_pq_m(dimension: int) -> int:
    """The largest divisor of ``dimension`` that keeps codes at or under 10% of float32 (0.4 bytes/value)."""
    best = 1
    for m in range(1, dimension + 1):
        if dimension % m == 0 and m <= 0.4 * dimension:
            best = m
    return best


MAX_SEARCH_SETTING = 100_000  # a candidate list or probe count beyond this is damage, not a setting


def recorded(parameter: Parameter, params: dict[str, int]) -> int:
    """The recorded value, or its default where the record holds none, or one that cannot be one
    (damage: not a whole number, below the minimum, above the maximum or MAX_SEARCH_SETTING)."""
    for name in (parameter.name, parameter.older_records_use):
        if name and is_setting(parameter, params.get(name)):
            return params[name]
    return parameter.default(1, 1)


def is_setting(parameter: Parameter, value: object) -> bool:
    """Whether ``value`` can be a recorded ``parameter``: a whole number in its range."""
    return isinstance(value, int) and not isinstance(value, bool) and \
        parameter.minimum <= value <= (parameter.maximum or MAX_SEARCH_SETTING)


def setting_problems(kind: str, params: dict, dimension: int, rows: int | None = None) -> dict[str, str]:
    """{name: what is wrong} for each setting an index of ``kind`` over ``rows`` records that
    cannot be one (queries and writes use its default instead, ``recorded``)."""
    problems = {}
    for parameter in PARAMETERS.get(kind, ()):
        if parameter.name not in params:
            continue
        value = params[parameter.name]
        if not is_setting(parameter, value):
            top = parameter.maximum or MAX_SEARCH_SETTING
            problems[parameter.name] = (f"{parameter.name} = {value!r:.40} is not a whole number from "
                                        f"{parameter.minimum} to {top:,}")
        elif kind == "pq" and parameter.name == "m" and dimension % value:
            problems[parameter.name] = f"m = {value} does not divide the dimension {dimension}"
        elif kind == "ivf" and parameter.name == "nlist" and rows is not None and value > max(rows, 1):
            problems[parameter.name] = f"nlist = {value} is more clusters than the {rows:,} rows"
    return problems


def valid_settings(kind: str, params: dict, dimension: int, rows: int | None = None) -> dict[str, int]:
    """The settings of ``kind`` that ``params`` records and that can be for a rebuild over
    ``rows`` (the rest take their defaults). A plain HNSW graph (no links) takes no link_ef."""
    wrong = setting_problems(kind, params, dimension, rows)
    kept = {p.name: params[p.name] for p in PARAMETERS.get(kind, ()) if p.name in params and p.name not in wrong}
    if kind == "hnsw" and kept.get("knn_links") == 0:
        kept.pop("link_ef", None)
    return kept
