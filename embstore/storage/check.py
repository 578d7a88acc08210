"""``check``: prove a store is whole, reading the catalog and every file, never trusting one
to describe the other. What it finds is sorted by the part that is damaged, so that
``repair`` knows what it can rebuild from what is intact.

Opening a store checks sizes, headers, row counts, IDs and the exact rows' SHA-256 (see
``store_files``); ``check`` adds SQLite's integrity check of the catalog, the schema,
every metadata value, norms, ranks, duplicates, every index file's SHA-256 and
leftovers.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CatalogDamagedError, CatalogMismatchError, EmbstoreError, NotAStoreError, StoreNotFoundError
from ..paths import resolve_store_path
from .catalog import Catalog
from .catalog_indexes import IndexFileRecord, parse_record
from .catalog_shards import parse_shard_record
from .catalog_subwords import parse_subword_record
from .file_names import index_file_path, is_subword_file, leftover_files, subword_file_path
from ..row_norms import row_norms
from .index_files import open_exact_rows, open_index_file, open_regular, rows_before_sketch_intact, stored_width
from .index_settings import setting_problems
from .schema import FORMAT_VERSION, UNIT_ROWS
from .shard_files import check_ranges, open_graph as open_shard_graph, open_rows as open_shard_rows
from .store_meta import APPROXIMATE_KINDS, EXACT, RAW_ROWS, StoreMeta
from .subword_file import open_subword_file, open_subword_rows

ROWS = "rows"  # the exact rows, the words table or the metadata describing them
RANKS = "ranks"
DEFAULT = "default"
STORAGE = "storage"  # meta.storage names codes while the exact rows are there: repair says exact again
META = "meta"  # a generation or the format version, which repair can derive again
DERIVABLE_META = ("format_version", "generation", "rows_generation")
ROW_VALUES = "row values"  # meta.row_values is missing or says unit rows that are not: repair reads the rows
ROW_VALUE_SAMPLE = 4096
SUBWORDS = "subwords"  # a fastText store's n-gram rows file or its record: repair copies them again from the model
SHARDS = "shards"  # a sharded store's shard files or their records: repair writes them again from the rows
SKETCH = "sketch"  # a sketched rows file whose sketch is damaged, its rows intact: repair writes it again
SHARD_MIGRATION = "0008_shard_files"


@dataclass
class CheckReport:
    path: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    damaged: set[str] = field(default_factory=set)  # ROWS, RANKS, DEFAULT, or 'index:<kind>'
    stale: set[str] = field(default_factory=set)  # approximate kinds built from older rows (SHARDS: the graphs)
    leftovers: list[Path] = field(default_factory=list)
    row_values: str | None = None  # what the exact rows are, judged from a sample of them

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, part: str, message: str) -> None:
        self.damaged.add(part)
        self.problems.append(message)


def index_part(kind: object) -> str:
    """The part of a store a problem with the ``kind`` index names (``CheckReport.damaged``); the
    kind as stored, which in a damaged catalog may be no text (its repr then)."""
    return f"index:{kind}"


def check_store(path: str | os.PathLike | None = None) -> CheckReport:
    """Verify the store at ``path``. Raises StoreError subclasses for a missing or foreign
    file; every other finding is collected in the report."""
    path = resolve_store_path(path)
    if not os.path.lexists(path):
        raise StoreNotFoundError(f"no store at {path}")
    report = CheckReport(str(path))
    try:
        catalog = Catalog.open(path)  # an older schema is upgraded, as any open does
    except CatalogDamagedError as exc:
        report.problem(ROWS, str(exc))
        return report
    except NotAStoreError:
        catalog = Catalog.open(path, upgrade=False)  # a schema record that is damaged: reported below
    try:
        with catalog.read_snapshot():
            _check_catalog(catalog, report)
    except (sqlite3.DatabaseError, UnicodeDecodeError, ValueError) as exc:
        report.problem(ROWS, f"the catalog cannot be read: {exc}")
    finally:
        catalog.close()
    return report


def _check_catalog(catalog: Catalog, report: CheckReport) -> None:
    path = catalog.path
    integrity = [row[0] for row in catalog.conn.execute("PRAGMA integrity_check(20)")]
    if integrity != ["ok"]:
        report.problem(ROWS, "SQLite's integrity check of the catalog failed: " + "; ".join(integrity)[:500])
    applied, known = catalog.applied_migrations(), catalog.known_migrations()
    if set(applied) != set(known[: len(applied)]) or (len(applied) < len(known) and not catalog.readonly):
        report.problem(ROWS, f"schema migrations {applied} do not match this embstore's {known}")
    report.checked.append(f"schema: {len(applied)} migrations (this embstore writes format {FORMAT_VERSION})")
    raw = catalog.meta()
    for key in DERIVABLE_META:
        if key in raw and not str(raw[key]).isdigit():
            report.problem(META, f"meta.{key} is {str(raw[key])[:40]!r}, not a whole number")
            raw[key] = "1"  # check the rest as if it were right: repair derives it again
    try:
        meta = StoreMeta.parse(raw, path)
    except EmbstoreError as exc:
        report.problem(ROWS, f"metadata: {exc}")
        return
    count = _check_words(catalog, report)
    records: dict[str, IndexFileRecord] = {}
    for row in catalog.index_file_rows():
        kind = row[0]
        part = ROWS if kind == meta.storage else index_part(kind)
        try:
            records[kind] = parse_record(row)
        except EmbstoreError as exc:
            report.problem(part, f"index record: {exc}")
            continue
        if kind != EXACT and kind not in APPROXIMATE_KINDS:
            report.problem(part, f"the catalog records an index of unknown kind {kind!r}")
    if meta.storage not in records:
        report.problem(ROWS, f"no {meta.storage} index holding the rows is recorded")
    if meta.storage != EXACT and EXACT in records:
        report.problem(STORAGE, f"meta.storage says the rows are {meta.storage} codes, but the exact rows are recorded")
    for kind, record in records.items():
        part = ROWS if kind == meta.storage else index_part(kind)
        _check_index_file(path, record, meta, count, part, report, catalog)
    _check_subwords(catalog, meta, report)
    if count >= 0:
        _check_shards(catalog, meta, records.get(EXACT), count, report)
    if meta.default_index != EXACT and meta.default_index not in records \
            and index_part(meta.default_index) not in report.damaged:
        report.problem(DEFAULT, f"the default index {meta.default_index!r} does not exist")
    report.leftovers = leftover_files(path, catalog.recorded_file_names())
    for leftover in report.leftovers:
        if ROWS in report.damaged and not leftover.name.endswith(".tmp"):
            report.notes.append(f"{leftover.name} is not named by the catalog; while the rows are damaged it is kept, "
                                "since it may hold rows newer than the catalog knows of")
        elif SUBWORDS in report.damaged and is_subword_file(path, leftover.name):
            report.notes.append(f"{leftover.name} is not named by the catalog; while the n-gram record is damaged "
                                "it is kept: repair takes it back if it holds the recorded rows")
        else:
            report.notes.append(f"leftover from an interrupted write: {leftover.name} (repair removes it)")


def _check_words(catalog: Catalog, report: CheckReport) -> int:
    try:
        count, low, high = catalog.word_stats()
        report.checked.append(f"words: {count:,}")
        if count and (low != 0 or high != count - 1):
            report.problem(ROWS, f"word IDs run {low}..{high} for {count:,} words; they must be 0..{count - 1}")
        queries = {
            "words have a zero or non-finite norm": "SELECT count(*) FROM words WHERE NOT (norm > 0 AND norm < 1e308)",
            "words are not text": "SELECT count(*) FROM words WHERE typeof(word) != 'text'",
            "words appear more than once": "SELECT count(*) FROM (SELECT word FROM words GROUP BY word HAVING count(*) > 1)",
        }
        for what, sql in queries.items():
            found = catalog.conn.execute(sql).fetchone()[0]
            if found:
                report.problem(ROWS, f"{found} {what}")
        recorded = catalog.meta().get("words_digest")
        if recorded is not None and recorded != catalog.words_digest():
            report.problem(ROWS, "the words table does not match the digest its last commit recorded: a word, "
                                 "an ID or a norm was changed outside embstore")
        wrong = catalog.rows_with_wrong_digests()
        if wrong:
            report.problem(ROWS, f"{wrong:,} words do not match their stored digest (their text or norm was "
                                 "changed outside embstore)")
        misranked = catalog.conn.execute("SELECT count(*) FROM words WHERE rank IS NOT id").fetchone()[0]
        if misranked:
            report.problem(RANKS, f"{misranked} words have a frequency rank that differs from their ID")
        return count
    except sqlite3.DatabaseError as exc:
        report.problem(ROWS, f"the words table cannot be read: {exc}")
        return -1


def _check_index_file(path: Path, record: IndexFileRecord, meta: StoreMeta, words: int, part: str,
                      report: CheckReport, catalog: Catalog) -> None:
    """Open the file of ``record`` as queries do (name, size, SHA-256, FAISS's reading, rows
    and width), then compare its rows with the words."""
    label = f"{record.kind} index {record.file}"
    try:
        file = index_file_path(path, record.kind, record.file)
        checked = dict(rows=record.rows, size=record.bytes, checksum=record.checksum)
        if record.kind == EXACT:
            try:
                exact = open_exact_rows(file, **checked, dimension=meta.dimension)
            except EmbstoreError as exc:
                if not _only_the_sketch(file, record, meta):
                    raise
                report.problem(SKETCH, f"the rows' sketch in {record.file} is damaged ({exc}); the rows before it are "
                                       "intact (their own SHA-256 matches): repair writes the sketch again from them")
                return
            if exact.sketch is not None or exact.sketch_problem is not None:
                if isinstance(record.params.get("rows_checksum"), str) and not _only_the_sketch(file, record, meta):
                    # the whole file's SHA-256 matches: the record of the rows' own is what is wrong
                    report.problem(SKETCH, f"the catalog's checksum of the rows before the sketch in {record.file} "
                                           "is wrong (the whole file's matches): repair writes the sketch again")
                elif exact.sketch is not None:
                    report.checked.append(f"sketch: {exact.sketch.basis.shape[1]} directions, holding "
                                          f"{exact.sketch.held:.0%} of the rows")
            _check_row_values(exact.rows, meta, report, catalog)
            if exact.norms is not None:
                _check_norms(exact.rows, exact.norms, label, report)
            del exact
        else:
            open_index_file(file, **checked, dimension=stored_width(record.kind, meta.dimension), memory_map=True)
    except EmbstoreError as exc:
        report.problem(part, f"{record.kind} index: {exc}")
        return
    settings = setting_problems(record.kind, record.params, meta.dimension, record.rows)
    if settings:
        what = (f"{label} records settings that cannot be: {'; '.join(settings.values())}. embstore uses the "
                "defaults where it needs them")
        if part == ROWS:  # the codes holding the rows read the same whatever their record says
            report.notes.append(what)
        else:
            report.problem(part, f"{what}; repair builds it again with them")
    current = record.rows_generation == meta.rows_generation
    if part != ROWS and not current:
        report.stale.add(record.kind)
        report.notes.append(f"{label} is stale (the rows changed after it was built); queries use the exact rows "
                            f"until it is rebuilt (embstore index build --kind {record.kind}, or repair)")
    elif record.rows != words:
        report.problem(part, f"{label} holds {record.rows:,} rows for {words:,} words")
    elif not current:
        report.problem(part, f"{label} holds rows of generation {record.rows_generation}, the store "
                             f"{meta.rows_generation}")
    else:
        report.checked.append(f"{label}: {record.rows:,} rows, checksum ok")


def _only_the_sketch(file: Path, record: IndexFileRecord, meta: StoreMeta) -> bool:
    """Whether a sketched rows file that failed its checks has the part before its sketch intact."""
    if not isinstance(record.params.get("rows_checksum"), str):
        return False
    try:
        fd = open_regular(file)
    except EmbstoreError:
        return False
    try:
        return rows_before_sketch_intact(fd, record.rows, meta.dimension, record.params.get("rows_checksum"))
    finally:
        os.close(fd)


def _check_subwords(catalog: Catalog, meta: StoreMeta, report: CheckReport) -> None:
    """A fastText store's n-gram file: its record, name, size, header and SHA-256."""
    row = catalog.subword_row()
    if row is None:
        if meta.get("subwords") == "ngrams":
            report.problem(SUBWORDS, "the catalog has lost the record of its n-gram rows (meta.subwords says the "
                                     "store has them): words outside the vocabulary cannot get vectors; repair "
                                     "takes back the file that holds them, or copies them again from the model")
        return
    try:
        record = parse_subword_record(row, meta.dimension)
        path = subword_file_path(catalog.path, record.file)
        fd = open_subword_file(path)
        try:
            open_subword_rows(path, fd, rows=record.rows, dimension=record.dimension, size=record.bytes,
                              fingerprint=record.fingerprint, checksum=record.checksum)
        finally:
            os.close(fd)
    except EmbstoreError as exc:
        report.problem(SUBWORDS, f"n-gram rows: {exc} (words outside the vocabulary cannot get vectors; repair "
                                 "copies the rows again from the model file)")
        return
    report.checked.append(f"n-gram rows {record.file}: {record.rows:,} buckets, checksum ok")


def _check_shards(catalog: Catalog, meta: StoreMeta, rows_record: IndexFileRecord | None, words: int,
                  report: CheckReport) -> None:
    """A sharded store's records (ranges, generations), each shard file's SHA-256, and each
    shard's rows and norms compared with the store's own rows."""
    rows = catalog.shard_rows()
    recorded = meta.get("shards")
    if SHARD_MIGRATION in catalog.applied_migrations() and not catalog.has_shard_table():
        report.problem(SHARDS, "the catalog has lost its shard_files table (migration 0008 is recorded); repair "
                               "makes it again")
        return
    if not rows:
        if recorded is not None:
            report.problem(SHARDS, f"the catalog has lost the records of its {str(recorded)[:20]} shard files "
                                   "(meta.shards says the store is sharded); repair writes them again")
        return
    fix = " (repair writes the shards again from the store's rows)"
    try:
        records = [parse_shard_record(row) for row in rows]
        exact = [r for r in records if r.kind == EXACT]
        graphs = [r for r in records if r.kind != EXACT]
        if not exact:
            raise CatalogMismatchError("the catalog records HNSW shard graphs but no shard rows")
        check_ranges(exact, words)
        if recorded != str(len(exact)):
            raise CatalogMismatchError(f"meta.shards is {str(recorded)[:20]!r}, but {len(exact)} shards are recorded")
        stale = sorted({r.rows_generation for r in exact} - {meta.rows_generation})
        if stale:
            raise CatalogMismatchError(f"shard files hold rows of generation {stale[:3]}, the store "
                                       f"{meta.rows_generation}")
    except EmbstoreError as exc:
        report.problem(SHARDS, f"shards: {exc}{fix}")
        return
    report.checked.append(f"shards: {len(exact)} ranges cover word IDs 0 .. {words - 1:,}, rows of the current "
                          "generation")
    store_rows = None
    if rows_record is not None and meta.storage == EXACT and ROWS not in report.damaged:
        try:
            store_rows = open_exact_rows(index_file_path(catalog.path, EXACT, rows_record.file), rows=rows_record.rows,
                                         size=rows_record.bytes, checksum=None, dimension=meta.dimension)
        except EmbstoreError:
            store_rows = None
    current_graphs = bool(graphs) and all(r.rows_generation == meta.rows_generation for r in graphs)
    graphs_match = [(r.start, r.stop) for r in graphs] == [(r.start, r.stop) for r in exact]
    for record in exact + (graphs if current_graphs else []):
        label = f"shard {record.number}'s {'rows' if record.kind == EXACT else 'graph'} {record.file}"
        try:
            if record.kind == EXACT:
                held = open_shard_rows(catalog.path, record, meta.dimension, verify=True)
                if store_rows is not None and not (
                        np.array_equal(held.rows, store_rows.rows[record.start:record.stop])
                        and (held.norms is None or store_rows.norms is None
                             or np.array_equal(held.norms, store_rows.norms[record.start:record.stop]))):
                    raise CatalogMismatchError("its rows differ from the store's rows of the same word IDs")
                del held
            else:
                if not graphs_match:
                    raise CatalogMismatchError("it covers other word IDs than the shard's rows")
                open_shard_graph(catalog.path, record, meta.dimension, verify=True)
        except EmbstoreError as exc:
            report.problem(SHARDS, f"{label}: {exc}{fix}")
            continue
        report.checked.append(f"{label}: {record.rows:,} rows, checksum ok")
    if graphs and not current_graphs:
        report.stale.add(SHARDS)
        report.notes.append(f"the shards' HNSW graphs are stale (the rows changed after they were built); shard "
                            f"actors build their own until 'embstore shard --shards {len(exact)} --graphs' (or "
                            "repair) writes them again")


def row_values_of(rows: np.ndarray, catalog: Catalog) -> str:
    """What a sample of the exact rows says they are: values as loaded when their lengths are
    the norms the catalog recorded at load (also for vectors that were unit length already),
    unit length when they are 1 and the recorded norms are not (a store from before 0.2)."""
    if not len(rows):
        return RAW_ROWS
    ids = np.unique(np.linspace(0, len(rows) - 1, min(len(rows), ROW_VALUE_SAMPLE)).astype(np.int64))
    lengths = np.linalg.norm(rows[ids].astype(np.float64), axis=1)
    try:  # a damaged words table may lack some of these IDs, or hold a norm that is not a number
        recorded = dict(catalog.conn.execute(
            "SELECT id, norm FROM words WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(ids.tolist()),)))
        norms = np.array([float(recorded.get(i, np.nan)) for i in ids.tolist()])
    except (sqlite3.DatabaseError, TypeError, ValueError):
        norms = np.full(len(ids), np.nan)
    known = np.isfinite(norms)
    if known.sum() * 2 > len(ids) and np.allclose(lengths[known], norms[known], rtol=1e-5, atol=0):
        return RAW_ROWS
    return UNIT_ROWS if np.all(np.abs(lengths - 1) < 1e-4) else RAW_ROWS


def _check_norms(rows: np.ndarray, norms: np.ndarray, label: str, report: CheckReport) -> None:
    """The norms stored after the rows must be the rows' norms (the SHA-256 covers both, but
    a file written wrong would pass it)."""
    wrong = 0
    for start in range(0, len(rows), 65_536):
        block = rows[start: start + 65_536]
        wrong += int(np.count_nonzero(row_norms(block) != norms[start: start + 65_536]))
    if wrong:
        report.problem(ROWS, f"{label}: {wrong:,} stored norms differ from their rows' norms")


def _check_row_values(rows: np.ndarray, meta: StoreMeta, report: CheckReport, catalog: Catalog) -> None:
    """meta.row_values must be there, and must not call rows unit length that are not (queries
    would then skip dividing by their norms and rank wrongly)."""
    report.row_values = found = row_values_of(rows, catalog)
    # a store from before migration 0006 that this process cannot upgrade (read-only) has unit rows
    stated = meta.get("row_values", None if catalog.has_counts() else UNIT_ROWS)
    if stated not in (RAW_ROWS, UNIT_ROWS):
        report.problem(ROW_VALUES, f"meta.row_values is {str(stated)[:40]!r}, not {RAW_ROWS!r} or {UNIT_ROWS!r}; "
                                   f"the rows are {found} (repair records that)")
    elif stated == UNIT_ROWS and found == RAW_ROWS:
        report.problem(ROW_VALUES, f"meta.row_values says the rows are {UNIT_ROWS}, but they are not: queries "
                                   "would rank by raw products (repair records what the rows are)")
    else:
        report.checked.append(f"row values: {stated}")


__all__ = ["CheckReport", "check_store", "row_values_of"]
