"""The approximate and compressed FAISS index kinds, their parameters and defaults.

Every kind indexes the same unit rows as the exact index, by inner product (= cosine),
and FAISS ID i is still the word with ID i. Knows nothing of SQLite.

| kind | FAISS index | what it trades |
| --- | --- | --- |
| hnsw | IndexHNSWFlat, each row linked to its nearest neighbours | graph search: fastest queries, larger file (rows + graph) |
| ivf  | IndexIVFFlat | clusters: a query scans ``nprobe`` of ``nlist`` lists |
| sq8  | IndexScalarQuantizer (8 bit) | 1 byte per value, rows padded to a multiple of 8: ~28% of the exact bytes at 50d |
| pq   | IndexPQ | ``m`` bytes per row (product quantizer): smallest, least accurate |
"""

from __future__ import annotations

import functools
import time
from typing import Callable

from ..lazy_modules import faiss
import numpy as np

from ..errors import QueryError
from ..storage.index_files import stored_width
from ..storage.index_settings import MAX_SEARCH_SETTING, PARAMETERS, recorded as _recorded
from ..storage.store_meta import APPROXIMATE_KINDS
from .hnsw_links import link_nearest

KINDS = APPROXIMATE_KINDS
# A shard's HNSW graph (``embstore shard --graphs``, Ray's shard actors): plain HNSW built
# with a list of 128 for vector queries, searched with a list of 96 (README, Speed).
SHARD_GRAPH_SETTINGS = {"ef_construction": 128, "knn_links": 0, "ef_search": 96}
FLAT_CODE_KINDS = ("sq8", "pq")  # exhaustive scans of compressed codes
TRAINING_ROWS = 200_000
PQ_CODES = 256  # codes per sub-quantizer: 8 bits


def tuned_parameters(kind: str, params: dict[str, int], changes: dict[str, int | None]) -> dict[str, int]:
    """``params`` with search-time settings changed; raise QueryError for anything that needs a rebuild."""
    tunable = sorted(p.name for p in PARAMETERS[kind] if p.search_time)
    given = {k: v for k, v in changes.items() if v is not None}
    if not tunable:
        raise QueryError(f"{kind} has no search-time settings; build it again to change it")
    if not given:
        raise QueryError(f"say what to change: {kind} can change {', '.join(tunable)} without a rebuild")
    needs_rebuild = sorted(set(given) - set(tunable))
    if needs_rebuild:
        raise QueryError(f"{kind} can change only {', '.join(tunable)} without a rebuild; "
                         f"build it again to change {', '.join(needs_rebuild)}")
    _check_minimums(kind, given)
    return {**params, **given}


def _check_minimums(kind: str, params: dict[str, int]) -> None:
    for parameter in PARAMETERS[kind]:
        if params.get(parameter.name, parameter.minimum) < parameter.minimum:
            raise QueryError(f"{kind} {parameter.name} must be at least {parameter.minimum}")
        limit = parameter.maximum or MAX_SEARCH_SETTING  # as ``index_settings.is_setting`` reads a record back
        if params.get(parameter.name, 0) > limit:
            raise QueryError(f"{kind} {parameter.name} must be at most {limit:,}")


def fixed_default(kind: str, name: str) -> int:
    """The default of a parameter that depends on neither the row count nor the dimension."""
    return next(p.default(1, 1) for p in PARAMETERS[kind] if p.name == name)


def resolve_parameters(kind: str, given: dict[str, int | None], rows: int, dimension: int) -> dict[str, int]:
    """Fill in defaults for ``kind``; raise QueryError for unknown or invalid values."""
    if kind not in KINDS:
        raise QueryError(f"unknown index kind {kind!r}; expected one of {', '.join(KINDS)}")
    known = {p.name for p in PARAMETERS[kind]}
    unknown = {k for k, v in given.items() if v is not None} - known
    if unknown:
        raise QueryError(f"{kind} takes {', '.join(sorted(known)) or 'no parameters'}, not {', '.join(sorted(unknown))}")
    params = {p.name: int(p.default(rows, dimension) if given.get(p.name) is None else given[p.name])
              for p in PARAMETERS[kind]}
    _check_minimums(kind, params)
    if kind == "hnsw" and params["knn_links"] == 0:
        if given.get("link_ef") is not None:
            raise QueryError("hnsw link_ef sets how each row's nearest neighbours are searched for its links; with "
                             "knn_links 0 there are none: leave link_ef out, or give knn_links")
        del params["link_ef"]  # not recorded: nothing uses it
    if kind == "pq" and dimension % params["m"]:
        raise QueryError(f"pq m={params['m']} does not divide the dimension {dimension}")
    if kind == "pq" and rows < PQ_CODES:
        raise QueryError(f"pq learns {PQ_CODES} codes for each sub-quantizer from the rows, so it needs at least "
                         f"{PQ_CODES} rows; this store has {rows:,}: use sq8, or the exact rows")
    if kind == "ivf" and params["nlist"] > rows:
        raise QueryError(f"ivf nlist={params['nlist']} is more than the {rows:,} rows")
    return params


UNIT_ROW_VALUE = 1e3  # past this no value of a "unit" row can be (see below)


def code_range_problem(index: faiss.Index) -> str | None:
    """Why an sq8 index's trained ranges cannot be those of unit rows, or None: found in
    O(dimension) when the index is opened, without reading a row. Unit rows lie within [-1, 1],
    except gensim's float32 unit rows of rows whose squares are subnormal (values near 1e-22),
    whose lengths come out several times too short (1.22 seen at one dimension; at most about
    sqrt(2 d)); so only ranges past UNIT_ROW_VALUE, or not numbers, are damage."""
    if not isinstance(index, faiss.IndexScalarQuantizer):
        return None
    trained = faiss.vector_to_array(index.sq.trained)
    low, width = trained[: index.d], trained[index.d: 2 * index.d]
    if len(trained) < 2 * index.d or not np.isfinite(trained).all() or (width < 0).any() \
            or (np.abs(low) > UNIT_ROW_VALUE).any() or (np.abs(low + width) > UNIT_ROW_VALUE).any():
        return "its trained ranges are not those of unit rows"
    return None


def fitted(rows: np.ndarray, width: int) -> np.ndarray:
    """``rows`` as contiguous float32, zero-padded on the right to ``width`` columns."""
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    if rows.shape[1] == width:
        return rows
    out = np.zeros((rows.shape[0], width), dtype=np.float32)
    out[:, : rows.shape[1]] = rows
    return out


def decoded(index: faiss.Index, dimension: int, ids=None) -> np.ndarray:
    """Rows of ``index`` decoded to float32 (all, or ``ids``), without any padding columns."""
    if ids is None:
        rows = index.reconstruct_n(0, index.ntotal)
    elif len(ids) == 0:
        return np.empty((0, dimension), dtype=np.float32)
    else:
        rows = np.stack([index.reconstruct(int(i)) for i in ids])
    return np.ascontiguousarray(rows[:, :dimension], dtype=np.float32)


def _training_sample(rows: np.ndarray) -> np.ndarray:
    if rows.shape[0] <= TRAINING_ROWS:
        return np.ascontiguousarray(rows)
    picks = np.sort(np.random.default_rng(1234).choice(rows.shape[0], TRAINING_ROWS, replace=False))
    return np.ascontiguousarray(rows[picks])


def build(kind: str, rows: np.ndarray, params: dict[str, int],
          progress: Callable[[int, int], None] | None = None, chunk: int = 20_000) -> tuple[faiss.Index, float]:
    """Build a ``kind`` index over unit ``rows``; returns (index, seconds)."""
    started = time.perf_counter()
    count, dimension = rows.shape[0], stored_width(kind, rows.shape[1])
    ip = faiss.METRIC_INNER_PRODUCT
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, params["m"], ip)
        index.hnsw.efConstruction = params["ef_construction"]
    elif kind == "ivf":
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFFlat(quantizer, dimension, params["nlist"], ip)
        index.own_fields = True
        quantizer.this.disown()
    elif kind == "sq8":
        index = faiss.IndexScalarQuantizer(dimension, faiss.ScalarQuantizer.QT_8bit, ip)
    elif kind == "pq":
        index = faiss.IndexPQ(dimension, params["m"], 8, ip)
        index.pq.cp.min_points_per_centroid = 1  # (only FAISS's warning: one per sub-quantizer on a small store)
    else:
        raise QueryError(f"unknown index kind {kind!r}")
    if kind == "ivf":
        index.cp.min_points_per_centroid = 1  # the same warning; recall is measured after the build anyway
    if not index.is_trained:
        index.train(fitted(_training_sample(rows), dimension))
    links = params.get("knn_links", 0) if kind == "hnsw" else 0
    steps = count + count // 2 if links else count  # linking takes about 40% of the graph's time
    for start in range(0, count, chunk):
        index.add(fitted(rows[start: start + chunk], dimension))
        if progress:
            progress(min(start + chunk, count), steps)
    if links:
        link_nearest(index, rows, 0, links, params["link_ef"],
                     progress=(lambda done, _: progress(count + done // 2, steps)) if progress else None)
    return index, time.perf_counter() - started


def add_rows(kind: str, index: faiss.Index, params: dict[str, int], rows: np.ndarray) -> None:
    """Add unit ``rows`` to a built ``kind`` index, linked as its parameters say.

    An hnsw index built before links existed has no ``knn_links`` and gets none; one built
    before ``link_ef`` existed links them as it was built, by a search from the top of the
    graph at ``ef_construction``.
    """
    start = index.ntotal
    index.add(fitted(rows, index.d))
    if kind == "hnsw":
        links = _recorded_build_setting(kind, params, "knn_links", absent=0)
        if "link_ef" in params:
            link_nearest(index, rows, start, links, _recorded_build_setting(kind, params, "link_ef"))
        else:
            link_nearest(index, rows, start, links, _recorded_build_setting(kind, params, "ef_construction"),
                         from_rows=False)


def _recorded_build_setting(kind: str, params: dict, name: str, absent: int | None = None) -> int:
    """A build setting as recorded with an index (``_recorded``), or ``absent`` if the record has none."""
    if name not in params and absent is not None:
        return absent
    return _recorded(next(p for p in PARAMETERS[kind] if p.name == name), params)


def search_parameters(kind: str, params: dict[str, int], id_limit: int | None
                      ) -> tuple[faiss.SearchParameters | None, faiss.SearchParameters | None]:
    """FAISS search parameters for ``kind``: its search-time settings and an ID range.

    Returns two: for vector queries, and for queries that are stored words, which hnsw
    searches from the word itself (the same object for other kinds).
    IndexPQ accepts no search parameters, so for pq the caller filters IDs itself.
    FAISS only reads them, so one object serves every query with the same settings.
    A setting missing from an older record takes the value of the setting that stood for
    it, else its default: an hnsw index built before links searches words as before.
    """
    searched = tuple(sorted((p.name, _recorded(p, params)) for p in PARAMETERS.get(kind, ()) if p.search_time))
    vectors = _search_parameters(kind, searched, id_limit, False)
    return vectors, (_search_parameters(kind, searched, id_limit, True) if kind == "hnsw" else vectors)


@functools.lru_cache(maxsize=64)
def _search_parameters(kind: str, searched: tuple[tuple[str, int], ...], id_limit: int | None, words: bool):
    settings = dict(searched)
    if kind == "pq":
        return None
    if kind == "hnsw":
        search = faiss.SearchParametersHNSW()
        search.efSearch = settings["ef_search_words" if words else "ef_search"]
    elif kind == "ivf":
        search = faiss.SearchParametersIVF()
        search.nprobe = settings["nprobe"]
    elif id_limit is not None:
        search = faiss.SearchParameters()
    else:
        return None
    if id_limit is not None:
        selector = faiss.IDSelectorRange(0, int(id_limit))
        search.sel = selector
        search._selector = selector  # keep the selector alive as long as the parameters
    return search
