"""``embstore neighbours --all``: every word's k nearest, streamed block by block to TSV or Parquet.

TSV: one line per word, the word then each neighbour and its cosine (6 decimals), tab
separated, the layout of ``nearest --batch``. Parquet (needs pyarrow): columns ``word``
(string), ``neighbours`` (list of strings), ``scores`` (list of float32), one row group per
block. Rows are in word-ID (frequency) order. The file appears only when the job succeeds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..errors import EmbstoreError, QueryError
from ..results import QueryResult
from .blocks import DEFAULT_BLOCK, id_ranges
from .job_runner import run_job
from .jobs import JobSpec, Progress
from .output_file import atomic_output

if TYPE_CHECKING:
    from ..store import Store

FORMATS = ("tsv", "parquet")


@dataclass(frozen=True)
class NeighboursReport:
    path: Path
    words: int
    blocks: int
    index: str


def tsv_lines(results: Sequence[QueryResult]) -> list[str]:
    return ["\t".join([r.query] + [f"{n.word}\t{n.score:.6f}" for n in r.neighbours]) + "\n" for r in results]


def _parquet_writer(handle):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise EmbstoreError("--format parquet needs pyarrow: pip install 'embstore[ray]' (or pip install pyarrow)") \
            from None
    schema = pa.schema([("word", pa.string()), ("neighbours", pa.list_(pa.string())),
                        ("scores", pa.list_(pa.float32()))])

    def write(results: Sequence[QueryResult]) -> None:
        writer.write_table(pa.table({
            "word": [r.query for r in results],
            "neighbours": [[n.word for n in r.neighbours] for r in results],
            "scores": [[n.score for n in r.neighbours] for r in results],
        }, schema=schema))

    writer = pq.ParquetWriter(handle, schema)
    return write, writer.close


def write_all_neighbours(store: "Store", output: str | os.PathLike, k: int = 10, *, format: str = "tsv",
                         index: str | None = None, address: str | None = None, block: int = DEFAULT_BLOCK,
                         progress: Progress | None = None, max_retries: int | None = None) -> NeighboursReport:
    """Write every word's ``k`` nearest (itself excluded) to ``output``, one batched search per
    ``block`` words, here or as Ray tasks on the cluster at ``address``; the output is the
    same either way. Raises QueryError, ClusterError; ``output`` is never left partial."""
    if format not in FORMATS:
        raise QueryError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    kind = store.index_kind(index)
    spec = JobSpec("neighbours", {"k": k, "index": index})
    blocks = 0
    with atomic_output(output, binary=format == "parquet") as handle:
        if format == "parquet":
            write, finish = _parquet_writer(handle)
        else:
            write, finish = (lambda results: handle.writelines(tsv_lines(results))), (lambda: None)
        for answer in run_job(store, spec, id_ranges(len(store), block), address, progress=progress,
                              max_retries=max_retries):
            write(answer.results)
            blocks += 1
        finish()
    return NeighboursReport(Path(output), len(store), blocks, kind)
