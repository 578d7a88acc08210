"""``repair``: make a store whole from what is intact, and never lose committed data silently.

What can be fixed in place is fixed in place: leftovers are removed (only files of this
store's own pattern that no writer is writing, and unreferenced index files only while
the rows they might be needed for are intact), ranks are renumbered, a default that
names no index is reset, damaged or stale approximate indexes, and damaged shard files or
stale shard graphs, are written again from the exact rows. Only when the rows themselves
are damaged does repair reload the recorded source file, and it refuses to if that would drop changes made since the load, unless
told ``discard_changes``; the approximate indexes are rebuilt after the reload.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CatalogDamagedError, EmbstoreError, QueryError, StoreNotFoundError
from .paths import resolve_store_path
from .search.index_kinds import KINDS
from .storage.index_settings import valid_settings
from .storage.catalog import Catalog
from .storage.catalog_shards import MAX_SHARDS
from .storage.check import (DEFAULT, DERIVABLE_META, RANKS, ROW_VALUES, ROWS, SHARD_MIGRATION, SHARDS, SKETCH, STORAGE,
                            SUBWORDS, CheckReport, check_store, index_part)
from .storage.file_names import (index_file_path, is_shard_file, is_subword_file, kind_of_file, leftover_files,
                                  remove_files)
from .storage.index_files import file_checksum
from .storage.schema import FORMAT_VERSION
from .storage.store_meta import EXACT, STORAGE_KINDS, changes_since_load
from .store import Store


@dataclass
class RepairReport:
    path: str
    actions: list[str] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)


def repair_store(path: str | os.PathLike | None = None, *, discard_changes: bool = False) -> RepairReport:
    """Repair the store at ``path``; the report says what was done and what is still wrong."""
    path = resolve_store_path(path)
    report = RepairReport(str(path))
    if not os.path.lexists(path):
        raise StoreNotFoundError(f"no store at {path}")
    meta, indexes, _ = _read_what_can_be_read(path)  # before anything is mended: every index there was
    shards = _shard_layout_recorded(path)  # and the shard layout (None: not sharded, or beyond reading)
    try:
        before = _repair_in_place(path, report)
        damaged, problems, stale = before.damaged, before.problems, before.stale
        meta, now, recorded = _read_what_can_be_read(path)
        indexes = {**indexes, **now}
    except (CatalogDamagedError, sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        damaged, problems, stale, recorded = {ROWS}, [f"the catalog cannot be repaired in place: {exc}"], set(), set()
    if ROWS in damaged:
        if not _reload(path, meta, indexes, discard_changes, report):
            report.remaining += problems
            return report
        rebuild = dict(indexes)
    else:
        rebuild = {kind: params for kind, params in indexes.items()
                   if index_part(kind) in damaged or kind in stale or kind not in recorded}
        if SKETCH in damaged:  # the rows are intact: only their sketch is written again
            from .writes.row_sketching import write_sketch_again

            try:
                done, message = write_sketch_again(path)
            except EmbstoreError as exc:
                done, message = False, f"the rows' sketch could not be written again: {exc}"
            (report.actions if done else report.remaining).append(message)
        if SUBWORDS in damaged:  # the rows are intact: only the n-gram rows are copied again
            from .writes.subword_loading import copy_subwords_again

            done, message = copy_subwords_again(path, meta.get("source"), _load_options(meta).get("encoding", "utf-8"))
            (report.actions if done else report.remaining).append(message)
    if rebuild:
        with Store.open(path) as store:
            for kind, params in rebuild.items():  # one that cannot be rebuilt does not stop the others
                try:
                    store.build_index(kind, **params)
                except QueryError as exc:  # a kind this store can no longer hold (pq below 256 rows, say)
                    report.remaining.append(f"the {kind} index could not be rebuilt: {exc}; queries use the exact "
                                            f"rows meanwhile ('embstore index drop {kind}' removes it)")
                    continue
                report.actions.append(f"rebuilt the {kind} index from the exact rows")
    if shards and (ROWS in damaged or SHARDS in damaged or SHARDS in stale):
        _shard_again(path, *shards, report, rows_too=ROWS in damaged or SHARDS in damaged)
    elif SHARDS in damaged:  # records that say no usable number of shards: the layout is dropped
        try:
            with Store.open(path) as store:
                store.drop_shards()
            report.actions.append("dropped the shard layout, whose records name no usable number of shards "
                                  "('embstore shard --shards N' writes one again)")
        except EmbstoreError as exc:
            report.remaining.append(f"the shard layout could not be dropped: {exc}")
    report.remaining += check_store(path).problems
    if not report.actions:
        report.actions.append("nothing needed repair" if not report.remaining else "nothing could be repaired")
    return report


def _shard_layout_recorded(path: Path) -> tuple[int, bool] | None:
    """(shards, whether they had HNSW graphs) that a catalog, perhaps damaged, records; None if not sharded."""
    try:
        catalog = Catalog.open(path, upgrade=False)
    except EmbstoreError:
        return None
    try:
        rows = catalog.shard_rows()
        recorded = catalog.meta().get("shards")
    except (sqlite3.DatabaseError, UnicodeDecodeError, ValueError):
        return None
    finally:
        catalog.close()
    graphs = any(row[0] == "hnsw" for row in rows)
    for count in (int(recorded) if str(recorded).isdigit() else 0, len({row[1] for row in rows if row[0] == EXACT})):
        if 1 <= count <= MAX_SHARDS:  # meta.shards, else as many as the rows records
            return count, graphs
    return None


def _shard_again(path: Path, shards: int, graphs: bool, report: RepairReport, rows_too: bool) -> None:
    """Write the shard files (``rows_too``), or only their stale graphs, again from the store's rows."""
    try:
        with Store.open(path) as store:
            shards = min(shards, len(store))
            store.shard(shards, graphs=graphs, reuse_rows=not rows_too)
        catalog = Catalog.open(path)
        try:  # files named by records too damaged to name them again (a kind or number that is not one)
            leftovers = [p for p in leftover_files(path, catalog.recorded_file_names()) if is_shard_file(path, p.name)]
        finally:
            catalog.close()
        remove_files(leftovers)
    except EmbstoreError as exc:
        report.remaining.append(f"the shards could not be written again: {exc}")
        return
    written = f"the {shards} shard files{' and their HNSW graphs' if graphs else ''}" if rows_too else \
        f"the HNSW graphs of the {shards} shards"
    report.actions.append(f"wrote {written} again from the store's rows")
    report.actions += [f"removed leftover {p.name}" for p in leftovers]


def _approximate_indexes(catalog: Catalog) -> dict[str, dict]:
    """{kind: build parameters} of the approximate indexes recorded (damaged records too, with defaults)."""
    found = {}
    storage = catalog.meta().get("storage")
    storage = storage if storage in STORAGE_KINDS else EXACT  # a damaged storage names no index to leave out
    dimension = catalog.meta().get("dimension")
    dimension = int(dimension) if str(dimension).isdigit() else 0
    rows = catalog.word_stats()[0]  # what a rebuild would index
    for kind, params, name in catalog.conn.execute("SELECT kind, params, file FROM index_files"):
        if kind not in KINDS:  # a damaged kind: the file name still says which
            kind = kind_of_file(catalog.path, name) or kind
        if kind in KINDS and kind != storage and kind not in found:
            try:
                given = json.loads(params)
                found[kind] = valid_settings(kind, given, dimension, rows)  # one that cannot be a setting: its default
            except (TypeError, ValueError, AttributeError):
                found[kind] = {}
    return found


def _repair_in_place(path: Path, report: RepairReport) -> CheckReport:
    """What can be mended without reloading; returns what check found before (after the
    generations and migration records were put right)."""
    catalog = Catalog.open(path, repairing=True)  # re-records lost migration records
    try:
        if catalog.lost_migrations:
            report.actions.append(f"recorded again the schema migrations whose record was lost: "
                                  f"{', '.join(catalog.lost_migrations)}")
        if _fix_meta(catalog, report):
            report.actions.append("derived the store's generations and format version again")
        readopted = _readopt_files(catalog)
        report.actions += [f"the catalog names {name} again: it holds exactly the rows recorded" for name in readopted]
    finally:
        catalog.close()
    before = check_store(path)
    catalog = Catalog.open(path)
    try:
        with catalog.commit_at(None, "the store was being repaired"):
            _fix_catalog(catalog, before.damaged, report, before.row_values)
            # While the rows are damaged, an unreferenced index file may be the newest rows: keep it.
            leftovers = [p for p in leftover_files(path, catalog.recorded_file_names())
                         if (ROWS not in before.damaged or p.name.endswith(".tmp"))
                         and not (SUBWORDS in before.damaged and is_subword_file(path, p.name))]
        remove_files(leftovers)
        report.actions += [f"removed leftover {p.name}" for p in leftovers]
    finally:
        catalog.close()
    return before


def _read_what_can_be_read(path: Path) -> tuple[dict[str, str], dict[str, dict], set[str]]:
    """(meta, approximate indexes' build parameters, kinds recorded) from a catalog that may be
    damaged; empty where unreadable."""
    try:
        catalog = Catalog.open(path, upgrade=False)
    except EmbstoreError:
        return {}, {}, set()
    try:
        return catalog.meta(), _approximate_indexes(catalog), {row[0] for row in catalog.index_file_rows()}
    except (sqlite3.DatabaseError, UnicodeDecodeError, ValueError):
        return {}, {}, set()
    finally:
        catalog.close()


def _readopt_files(catalog: Catalog) -> list[str]:
    """Point a record whose file is missing, or whose name is not this store's own, at an
    unreferenced file of this store that holds exactly the recorded bytes (same size and
    SHA-256): a renamed or misnamed file, not a loss."""
    path = catalog.path
    candidates = leftover_files(path, catalog.recorded_file_names())
    readopted = []
    for kind, name, rows, size, checksum, *_ in catalog.index_file_rows():
        try:
            if index_file_path(path, kind, name).is_file():
                continue
        except EmbstoreError:
            pass
        for candidate in candidates:
            if kind_of_file(path, candidate.name) == kind and isinstance(size, int) \
                    and candidate.stat().st_size == size and file_checksum(candidate) == checksum:
                with catalog.write_transaction():
                    catalog.conn.execute("UPDATE index_files SET file = ? WHERE kind = ?", (candidate.name, kind))
                readopted.append(candidate.name)
                break
    return readopted


def _recorded_names(path: Path) -> set[str]:
    """The file names the catalog records; none if its records cannot be read (a damaged
    schema), so that every rows file beside it counts as one it may not know of."""
    try:
        catalog = Catalog.open(path, upgrade=False)
    except EmbstoreError:
        return set()
    try:
        return catalog.recorded_file_names()
    except (sqlite3.DatabaseError, UnicodeDecodeError, ValueError):
        return set()
    finally:
        catalog.close()


def _load_options(meta: dict[str, str]) -> dict:
    """The options the store was loaded with (format, limit, ...), so that a reload gives it back."""
    try:
        options = json.loads(meta.get("load_options") or "{}")
    except ValueError:
        options = {}
    known = {"format", "limit", "unicode_errors", "zero_vectors", "bad_words", "storage", "encoding", "sketch"}
    options = {k: v for k, v in options.items() if k in known} if isinstance(options, dict) else {}
    options.setdefault("format", meta.get("source_format"))
    return options


def _fix_meta(catalog: Catalog, report: RepairReport) -> bool:
    """Put back a format version or generation that is not a whole number (from the records)."""
    raw = catalog.meta()
    bad = [key for key in DERIVABLE_META if key in raw and not str(raw[key]).isdigit()]
    if not bad:
        return False
    recorded = {row[0]: row[-1] for row in catalog.index_file_rows() if isinstance(row[-1], int) and row[-1] >= 0}
    generations = list(recorded.values())
    exact = [recorded[kind] for kind in (raw.get("storage", EXACT),) if kind in recorded]
    rows_generation = exact[0] if exact else max(generations, default=1)
    fixes = {"format_version": FORMAT_VERSION, "rows_generation": rows_generation,
             "generation": max(generations, default=rows_generation) + 1}
    with catalog.write_transaction():
        catalog.set_meta(**{key: fixes[key] for key in bad})
    return True


def _fix_catalog(catalog: Catalog, damaged: set[str], report: RepairReport, row_values: str | None = None) -> None:
    """What can be mended in the catalog itself, inside the repair's transaction."""
    if ROW_VALUES in damaged and row_values is not None:
        catalog.set_meta(row_values=row_values)
        report.actions.append(f"recorded what the exact rows are, read from them: {row_values}")
    if RANKS in damaged:
        report.actions.append(f"renumbered {catalog.reset_ranks():,} frequency ranks to match the IDs")
    if STORAGE in damaged:
        catalog.set_meta(storage=EXACT)
        report.actions.append("meta.storage named codes while the exact rows are there: the store reads its exact "
                              "rows again")
    if SHARDS in damaged and not catalog.has_shard_table():
        from .storage.schema import MIGRATION_STEPS

        dict(MIGRATION_STEPS)[SHARD_MIGRATION](catalog.db)  # the step's own table, as the migration made it
        report.actions.append("made the catalog's shard_files table again")
    if DEFAULT in damaged:
        catalog.delete_meta("default_index")
        report.actions.append("reset the default index, which named no index, to exact")
    for kind in [row[0] for row in catalog.index_file_rows()]:  # a damaged index of a known kind keeps its
        # record until its rebuild replaces it, so a killed repair forgets nothing; the kind as stored (text,
        # or a BLOB or NULL in a damaged catalog: check names it with its repr), so the delete matches it
        if index_part(kind) in damaged and kind != EXACT and (not isinstance(kind, str) or kind not in KINDS):
            catalog.delete_index_file(kind)
            report.actions.append(f"removed the record of an index of unknown kind {kind!r}")


def _reload(path: Path, meta: dict[str, str], indexes: dict, discard_changes: bool, report: RepairReport) -> bool:
    """Reload from the recorded source when that loses nothing (or loss is accepted); False if refused."""
    source = meta.get("source")
    if not source or not Path(source).is_file():
        report.remaining.append(f"the exact rows or the word table are damaged and the source file "
                                f"{source or '(unknown)'} is not available: load the embeddings again with --replace")
        return False
    recorded = meta.get("source_bytes")
    if recorded and recorded != str(Path(source).stat().st_size):
        report.remaining.append(f"the exact rows are damaged and the source file {source} has changed since it was "
                                f"loaded ({recorded} bytes then); load the right file again with --replace")
        return False
    newer = [p.name for p in leftover_files(path, _recorded_names(path)) if kind_of_file(path, p.name) == EXACT]
    if newer and not discard_changes:
        report.remaining.append(
            f"the exact rows are damaged, and {', '.join(newer)} beside the store holds rows the catalog does not "
            "name: it may hold changes newer than the catalog knows of (a lost WAL file, say). Reloading the "
            "source would delete it, so nothing was changed. Keep a copy of it; 'embstore repair "
            "--discard-changes' reloads anyway")
        return False
    changes = {k: v for k, v in changes_since_load(meta).items() if v}
    if changes and not discard_changes:
        listed = ", ".join(f"{count:,} {what}" for what, count in changes.items())
        report.remaining.append(
            f"the exact rows are damaged; the only way to repair them is to reload {source}, which would lose the "
            f"changes made since it was loaded ({listed} words); nothing was changed. Run 'embstore repair "
            f"--discard-changes' to reload and lose them")
        return False
    try:
        Store.load(source, path, replace=True, **_load_options(meta))
    except EmbstoreError as exc:
        report.remaining.append(f"reloading {source} failed: {exc}")
        return False
    lost = f" (discarding changes since the load: {changes})" if changes else ""
    report.actions.append(f"reloaded the store from its source {source}{lost}")
    return True


__all__ = ["RepairReport", "repair_store"]
