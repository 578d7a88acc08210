"""``check`` and ``repair``: prove a store is whole, or make it whole from what is intact.

Part of the store layer (with ``store.py``): it reads the catalog and the index files
together, but never trusts one to describe the other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


from .catalog import FORMAT_VERSION, Catalog
from .errors import CatalogMismatchError, StoreNotFoundError
from .paths import resolve_store_path

REQUIRED_META = ("format_version", "dimension", "metric", "normalisation")


@dataclass
class CheckReport:
    path: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_store(path: str | os.PathLike | None = None) -> CheckReport:
    """Verify schema and version, row counts, every index file's checksum and that every ID resolves.

    Raises StoreError subclasses for a missing or foreign file; everything else is
    collected in the report.
    """
    from .store import EXACT, leftover_files

    path = resolve_store_path(path)
    if not path.exists():
        raise StoreNotFoundError(f"no store at {path}")
    report = CheckReport(str(path))
    # Read-write on purpose: a read-only SQLite connection cannot clean up the WAL files
    # it leaves beside the store. check itself changes nothing.
    catalog = Catalog.open(path)
    try:
        with catalog.read_snapshot():
            applied = catalog.applied_migrations()
            known = catalog.known_migrations()
            if applied != known[: len(applied)] or len(applied) < len(known):
                report.problems.append(f"schema migrations {applied} do not match this embstore's {known}")
            report.checked.append(f"schema: {len(applied)} migrations, format version {catalog.format_version()}"
                                  f" (this embstore writes {FORMAT_VERSION})")
            meta = catalog.meta()
            missing = [k for k in REQUIRED_META if k not in meta]
            if missing:
                report.problems.append(f"metadata lacks {', '.join(missing)}")
            count, low, high = catalog.word_stats()
            report.checked.append(f"words: {count:,}")
            if count and (low != 0 or high != count - 1):
                report.problems.append(f"word IDs run {low}..{high} for {count:,} words; they must be 0..{count - 1}")
            bad_norms = catalog.conn.execute(
                "SELECT count(*) FROM words WHERE NOT (norm > 0 AND norm < 1e308)").fetchone()[0]
            if bad_norms:
                report.problems.append(f"{bad_norms} words have a zero or non-finite norm")
            misranked = catalog.conn.execute("SELECT count(*) FROM words WHERE rank != id").fetchone()[0]
            if misranked:
                report.problems.append(f"{misranked} words have a frequency rank that differs from their ID")
            duplicates = catalog.conn.execute(
                "SELECT count(*) FROM (SELECT word FROM words GROUP BY word HAVING count(*) > 1)").fetchone()[0]
            if duplicates:
                report.problems.append(f"{duplicates} words appear more than once")
            records = catalog.index_files()
            dimension = int(meta.get("dimension", 0))
            storage = meta.get("storage", EXACT)
            if not any(r.kind == storage for r in records):
                report.problems.append(f"no {storage} index holding the rows is recorded")
            for record in records:
                _check_index_file(path, record, count, dimension, report)
            for leftover in leftover_files(path, catalog):
                report.notes.append(f"leftover from an interrupted write: {leftover.name} (repair removes it)")
    finally:
        catalog.close()
    return report


def _check_index_file(path: Path, record, words: int, dimension: int, report: CheckReport) -> None:
    """Open the file of ``record`` as queries do (size, SHA-256, FAISS's reading, rows and
    dimension) and then compare its rows with the word count."""
    from .store import open_record

    label = f"{record.kind} index {record.file}"
    try:
        open_record(path.parent, record, dimension, memory_map=True)
    except CatalogMismatchError as exc:
        report.problems.append(f"{record.kind} index: {exc}")
        return
    if record.stale:
        report.notes.append(f"{label} is stale (rows changed since it was built); it is rebuilt when next used")
    elif record.rows != words:
        report.problems.append(f"{label} holds {record.rows:,} rows for {words:,} words")
    else:
        report.checked.append(f"{label}: {record.rows:,} rows, checksum ok")


@dataclass
class RepairReport:
    path: str
    actions: list[str] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)


def repair_store(path: str | os.PathLike | None = None) -> RepairReport:
    """Rebuild what can be rebuilt from what is intact, and say what was done.

    Removes leftovers; rebuilds damaged or stale approximate indexes from intact exact
    rows; reloads from the recorded source file when the exact rows or the word table
    are damaged and that file still exists.
    """
    from .store import EXACT, Store, remove_leftovers

    path = resolve_store_path(path)
    report = RepairReport(str(path))
    before = check_store(path)
    catalog = Catalog.open(path)
    try:
        with catalog.write_transaction():
            removed = remove_leftovers(path, catalog)
        meta = catalog.meta()
        records = catalog.index_files()
    finally:
        catalog.close()
    report.actions += [f"removed leftover {p.name}" for p in removed]
    exact_damaged = any(
        EXACT in problem or "word IDs" in problem or "words for" in problem or "no exact" in problem
        or "words appear" in problem or "norm" in problem
        for problem in before.problems
    )
    if exact_damaged:
        source = meta.get("source")
        if source and Path(source).is_file():
            Store.load(source, path, format=meta.get("source_format"), replace=True)
            report.actions.append(f"reloaded the store from its source {source}")
        else:
            report.remaining.append(
                "the exact rows or the word table are damaged and the source file "
                f"{source or '(unknown)'} is not available: load the embeddings again with --replace")
            return report
    else:
        with Store.open(path, verify=False) as store:
            for record in records:
                if record.kind == EXACT:
                    continue
                damaged = any(record.file in problem for problem in before.problems)
                if damaged or record.stale:
                    params = {k: v for k, v in record.params.items() if k != "build_seconds"}
                    store.build_index(record.kind, **params)
                    report.actions.append(f"rebuilt the {record.kind} index from the exact rows")
    after = check_store(path)
    report.remaining += after.problems
    if not report.actions:
        report.actions.append("nothing needed repair")
    return report


__all__ = ["CheckReport", "RepairReport", "check_store", "repair_store"]
