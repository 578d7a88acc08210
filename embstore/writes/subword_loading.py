"""The n-gram rows of a fastText model, copied into the store's own file and recorded in the
catalog inside the load's transaction (so they commit with the words, or not at all)."""

from __future__ import annotations

from pathlib import Path

from ..storage.catalog import Catalog
from ..storage.catalog_subwords import SubwordRecord
from ..storage.file_names import NewFiles, new_subword_file
from ..storage.store_meta import now
from ..storage.subword_file import write_subword_file


def record_subwords(catalog: Catalog, store: Path, reader, files: NewFiles) -> list[str]:
    """Write the reader's bucket rows beside ``store`` and record them; returns notes for the report."""
    settings = reader.subwords
    if settings.bucket == 0 or settings.maxn == 0:
        return [f"{reader.name} has no n-grams (bucket {settings.bucket}, maxn {settings.maxn}): only its "
                "vocabulary words have vectors"]
    reader.check_bucket_rows()  # a row no vocabulary word uses is checked too: any word may need it
    tmp, final = new_subword_file(store)
    written = write_subword_file(reader.bucket_rows(), files.claim(tmp, final), final)
    params = {**settings.as_params(), "model": reader.model, "file_version": reader.version,
              "encoding": reader.encoding}
    params.pop("dimension")
    catalog.record_subwords(SubwordRecord(file=written.path.name, rows=written.rows, dimension=settings.dimension,
                                          bytes=written.bytes, checksum=written.checksum,
                                          fingerprint=written.fingerprint, params=params, created_at=now()))
    return []


def copy_subwords_again(store: Path, source: str | None, encoding: str = "utf-8") -> tuple[bool, str]:
    """Repair's part for a fastText store's n-gram rows: take back a file beside the store that
    holds exactly the recorded rows (same SHA-256) when only the record's file name is wrong,
    else copy the rows again from the model the store was loaded from, committed only if they
    are the rows recorded (or, when the record itself is lost, any rows that model holds).
    A file that may hold the rows is never removed here. Returns (done, what happened)."""
    from ..errors import CatalogMismatchError, EmbstoreError
    from ..formats.opening import open_embeddings
    from ..storage.catalog_subwords import NGRAMS
    from ..storage.file_names import is_subword_file, leftover_files, remove_files, subword_file_path
    from ..storage.index_files import file_checksum

    catalog = Catalog.open(store)
    try:
        row = catalog.subword_row()
        recorded_checksum = row[5] if row is not None and row[0] == NGRAMS and isinstance(row[5], str) else None
        old = row[1] if row is not None else None
        if recorded_checksum is not None:
            named = [store.with_name(old)] if is_subword_file(store, old) else []
            candidates = named + [p for p in leftover_files(store, catalog.recorded_file_names())
                                  if is_subword_file(store, p.name)]
            for candidate in candidates:
                if candidate.is_file() and not candidate.is_symlink() and file_checksum(candidate) == recorded_checksum:
                    with catalog.commit_at(None, "the store was being repaired"):
                        catalog.conn.execute("UPDATE subword_files SET file = ? WHERE name = ?", (candidate.name, NGRAMS))
                    return True, f"the catalog names {candidate.name} again: it holds exactly the n-gram rows recorded"
        if not source or not Path(source).is_file():
            return False, (f"the n-gram rows are damaged and the model {source or '(unknown)'} they came from is not "
                           "available: load the model again with --replace (files that may hold them are kept)")
        files = NewFiles()
        try:
            with files.written(), open_embeddings(source, encoding=encoding) as reader:
                if not hasattr(reader, "subwords"):
                    return False, f"the n-gram rows are damaged and {source} is no longer a fastText model"
                with catalog.commit_at(None, "the store was being repaired"):
                    record_subwords(catalog, store, reader, files)
                    copied = catalog.subword_row()
                    if copied is None or (recorded_checksum is not None and copied[5] != recorded_checksum):
                        raise CatalogMismatchError("changed")
                    catalog.set_meta(subwords="ngrams")
        except CatalogMismatchError:
            return False, (f"the n-gram rows are damaged, and the model {source} now holds other n-gram rows than "
                           "those recorded: load the right model again with --replace")
        except EmbstoreError as exc:
            return False, f"the n-gram rows are damaged, and copying them again from {source} failed: {exc}"
    finally:
        catalog.close()
    try:
        if old is not None and recorded_checksum is not None:  # the damaged copy of rows now held whole again
            remove_files([subword_file_path(store, old)])
    except CatalogMismatchError:
        pass  # a record naming something not ours: never touched
    return True, f"copied the n-gram rows again from {source}" + (
        " (the same SHA-256 as recorded)" if recorded_checksum is not None else " (their record had been lost)")
