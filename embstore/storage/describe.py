"""What ``embstore info`` shows: a store generation described from its catalog and files."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import EmbstoreError
from .file_names import index_file_path
from .index_files import rows_file_size
from .store_files import StoreFiles
from .store_meta import EXACT, changes_since_load


@dataclass(frozen=True)
class StoreInfo:
    path: str
    words: int
    dimension: int
    metric: str
    normalisation: str
    format_version: int
    source: str | None
    source_format: str | None
    created_at: str | None
    catalog_bytes: int
    indexes: list[dict]
    default_index: str = EXACT
    storage: str = EXACT
    changes_since_load: dict | None = None
    vectors: str = ""  # how exactly vectors are given back
    counts: int = 0  # words with a count (load --counts)
    counts_source: str | None = None
    subwords: dict | None = None  # a fastText store's n-gram rows: file, buckets, minn, maxn, bytes (or damage)
    shards: dict | None = None  # a sharded store: shards, graphs, stale graphs, bytes (or damage)
    sketch: dict | None = None  # a sketched store (load --sketch): its width and bytes


def describe(files: StoreFiles) -> StoreInfo:
    """The store's size, metadata and index files (each with whether it is stale)."""
    indexes = []
    for kind, record in files.records.items():
        try:
            file = index_file_path(files.path, kind, record.file)
            size = file.stat().st_size if file.exists() else None
            shown = str(file)
        except EmbstoreError:
            shown, size = record.file, None
        indexes.append({"kind": kind, "file": shown, "rows": record.rows, "bytes_on_disk": size,
                        "checksum": record.checksum, "params": record.params, "recall": record.recall,
                        "created_at": record.created_at, "stale": not files.is_current(kind)})
    # a damaged record's kind may be b'', NULL or a number: shown as its repr
    indexes += [{"kind": kind if isinstance(kind, str) else repr(kind), "file": None, "rows": None,
                 "bytes_on_disk": None, "checksum": None, "params": {},
                 "recall": None, "created_at": None, "stale": False, "damaged": why}
                for kind, why in files.broken.items()]
    meta = files.meta
    if meta.storage != EXACT:
        vectors = f"approximate: {meta.storage} codes times the stored norms"
    elif meta.raw_rows:
        vectors = "exact: the float32 values as loaded"
    else:
        vectors = ("unit rows times the stored norms, within about 1 ulp of the values loaded (a store written "
                   "before embstore 0.2: load the source again for exact values)")
    sketch = None
    if files.sketch is not None:
        sketch = {"width": files.sketch.basis.shape[1], "held": round(files.sketch.held, 4),
                  "bytes": rows_file_size(files.size, meta.dimension, True) - rows_file_size(files.size, meta.dimension)}
    elif files.sketch_problem is not None:
        sketch = {"damaged": files.sketch_problem}
    counts, _ = files.catalog.count_stats()
    subwords = None
    if files.subword_file is not None:
        record = files.subword_file.record
        subwords = {"file": str(files.subword_file.path), "buckets": record.rows, "bytes_on_disk": record.bytes,
                    "minn": record.minn, "maxn": record.maxn, "hash": record.params.get("hash"),
                    "model": record.params.get("model"), "checksum": record.checksum}
    elif files.subword_problem is not None:
        subwords = {"damaged": files.subword_problem}
    try:
        layout = files.shard_layout()
        problems = layout.file_problems(files.path) if layout is not None else []
        shards = None if layout is None else {"damaged": "; ".join(problems)} if problems else {
            "shards": layout.shards, "graphs": bool(layout.graphs), "stale_graphs": layout.stale_graphs,
            "bytes_on_disk": layout.bytes}
    except EmbstoreError as exc:
        shards = {"damaged": str(exc)}
    return StoreInfo(
        path=str(files.path), words=files.size, dimension=meta.dimension, metric=meta.get("metric", "cosine"),
        normalisation=meta.get("normalisation", ""), format_version=meta.format_version,
        source=meta.get("source"), source_format=meta.get("source_format"), created_at=meta.get("created_at"),
        catalog_bytes=files.path.stat().st_size, indexes=indexes, default_index=meta.default_index,
        storage=meta.storage, changes_since_load=changes_since_load(meta.raw), vectors=vectors, counts=counts,
        counts_source=meta.get("counts_source") or None, subwords=subwords, shards=shards, sketch=sketch)
