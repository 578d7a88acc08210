"""The SQLite catalog: its connection, transactions, snapshots, metadata and schema upgrades.

Knows nothing of FAISS. Words (``catalog_words``) and index file records
(``catalog_indexes``) are the catalog's two tables of content; this module holds the
connection they share. Every value travels as a bound parameter, never as SQL text.

The database file itself is never opened except through SQLite: POSIX drops all of a
process's locks on a file when any descriptor of that file is closed, so a plain
``open()`` and ``close()`` of the catalog would silently release this process's SQLite
locks and let another process delete the WAL index under it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ..errors import (CatalogDamagedError, InterruptedAfterCommit, NotAStoreError, StoreBusyError, StoreChangedError,
                      StoreError, StoreReadOnlyError)
from .catalog_indexes import IndexRecords
from .catalog_shards import ShardRecords
from .catalog_subwords import SubwordRecords
from .catalog_words import WordQueries
from .file_names import store_of
from .schema import (APPLICATION_ID, APPLIED_MARKERS, FORMAT_VERSION, MIGRATIONS_TABLE, MIGRATION_SET,
                     build_word_indexes, known_migrations, migrations)

if TYPE_CHECKING:
    import sqlite_utils

SQLITE_FULL = 13  # sqlite3.SQLITE_FULL: the disk (or the file system's quota) is full
SQLITE_IOERR = 10  # sqlite3.SQLITE_IOERR: what opening gives when the -wal or -shm file cannot be made
FULL_DISK_BYTES = 1 << 20  # less free space than this beside the catalog: the disk is called full


def _primary_code(exc: sqlite3.Error) -> int | None:
    """SQLite's primary result code of ``exc``: Python gives the extended one (SQLITE_IOERR_SHMOPEN
    is SQLITE_IOERR | 18 << 8), whose low byte is the primary."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def _open_failure(path: Path, exc: sqlite3.OperationalError) -> StoreError:
    """The error for a catalog SQLite could not open because the file system failed (found by a
    hostile test: a full disk made every command call the store 'not an embstore database')."""
    try:
        stats = os.statvfs(path.parent)
        full = stats.f_bavail * stats.f_frsize < FULL_DISK_BYTES
    except OSError:
        full = False
    if full:
        return StoreError(f"cannot open store {path}: the disk is full (SQLite needs room beside the catalog for its "
                          "-wal and -shm files); nothing was changed. Free some space and run the command again")
    return StoreError(f"cannot open store {path}: the file system failed ({exc}); the store was not changed")

BUSY_TIMEOUT_VARIABLE = "EMBSTORE_BUSY_TIMEOUT"
DEFAULT_BUSY_TIMEOUT_SECONDS = 10.0


def busy_timeout_seconds() -> float:
    """How long a writer waits for another: $EMBSTORE_BUSY_TIMEOUT seconds, else 10."""
    text = os.environ.get(BUSY_TIMEOUT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_BUSY_TIMEOUT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 86_400:
        raise StoreError(f"{BUSY_TIMEOUT_VARIABLE}={text!r} is not a number of seconds from 0 to 86400")
    return seconds


def check_catalog_path(path: Path) -> None:
    """Refuse what cannot be a catalog (a directory, a FIFO, a device) without opening it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise NotAStoreError(f"no store at {path}") from None
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise NotAStoreError(f"{path} is a directory, not an embstore database")
    if not stat.S_ISREG(mode):
        raise NotAStoreError(f"{path} is not a regular file, so it cannot be an embstore database")


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


class Catalog(WordQueries, IndexRecords, SubwordRecords, ShardRecords):
    """An open catalog database. Use ``create`` for a new one and ``open`` for an existing one."""

    def __init__(self, path: Path, conn: sqlite3.Connection, readonly: bool = False):
        self.path = path
        self.conn = conn
        self.readonly = readonly
        self.lost_migrations: list[str] = []  # records a repairing open put back
        self._db: sqlite_utils.Database | None = None
        self.live = True  # False for an in-memory copy (mode 'snapshot'): it never sees later commits

    @property
    def db(self) -> "sqlite_utils.Database":
        """sqlite-utils' view of the connection, for schema changes."""
        if self._db is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(self.conn)
        return self._db

    # -- opening ------------------------------------------------------------------

    @staticmethod
    def _connect(path: Path, mode: str = "rw") -> sqlite3.Connection:
        """``mode``: rw; ro (read-only, sharing the WAL index with the writers, which needs the
        -shm file to exist or be creatable); snapshot (read-only where no -shm file can be had:
        see ``_snapshot``)."""
        if mode == "snapshot":
            return Catalog._snapshot(path)
        timeout = busy_timeout_seconds()
        if mode == "rw":
            conn = sqlite3.connect(str(path), isolation_level=None, timeout=timeout, check_same_thread=False)
        else:
            query = "?mode=ro" if mode == "ro" else "?mode=ro&immutable=1"
            conn = sqlite3.connect(path.absolute().as_uri() + query, uri=True, isolation_level=None,
                                   timeout=timeout, check_same_thread=False)
        # No memory map of the catalog (PRAGMA mmap_size stays 0): it saved ~10 us an answer, but a
        # catalog file shortened in place by another program (cp over it, truncate) then kills
        # the process with SIGBUS instead of giving an error.
        return conn

    @staticmethod
    def _snapshot(path: Path, attempts: int = 3) -> sqlite3.Connection:
        """The catalog copied whole into memory, for a reader that can create no -shm file
        (a folder it cannot write, and no other process has the store open). On a read-only
        file system nothing can change it; elsewhere the copy is taken only while the file
        stays the same from start to end and no WAL holds changes, so it is one consistent
        generation that later writes by the owner cannot tear."""
        wal = path.with_name(path.name + "-wal")

        def state() -> tuple:
            info = os.stat(path)
            return info.st_ino, info.st_size, info.st_mtime_ns, os.path.exists(wal) and os.path.getsize(wal) > 0

        for _ in range(attempts):
            before = state()
            if before[3]:
                raise StoreReadOnlyError(
                    f"{path} has committed changes in {wal.name} that only a process allowed to write the store can "
                    "apply (its last writer stopped before it could): run any embstore command on it as its owner, "
                    "then try again")
            source = sqlite3.connect(path.absolute().as_uri() + "?mode=ro&immutable=1", uri=True)
            copy = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            try:
                source.backup(copy)
            finally:
                source.close()
            if state() == before:
                return copy
            copy.close()
        raise StoreBusyError(f"store {path} kept changing while it was being read; try again")

    @classmethod
    def create(cls, path: Path) -> "Catalog":
        """Create a new catalog at ``path`` (which must not exist), schema and all."""
        conn = cls._connect(path)
        conn.execute("PRAGMA journal_mode=OFF")  # a new catalog is built in a temporary file
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        catalog = cls(path, conn)
        migrations().apply(catalog.db)
        catalog.set_meta(format_version=FORMAT_VERSION)
        return catalog

    def finish_bulk_insert(self) -> None:
        """Build the word indexes that ``delete_all_words`` dropped for a bulk insert, once and
        sorted, inside the current transaction; record the words' digest."""
        build_word_indexes(self.db)
        self.record_words_digest()

    @classmethod
    def open(cls, path: Path, readonly: bool = False, repairing: bool = False, upgrade: bool = True) -> "Catalog":
        """Open an existing catalog, checking it is one of ours and not from a newer embstore.

        A store that this process cannot write (read-only folder, file or mount) is opened
        read-only, so that it still answers queries; writes then raise StoreReadOnlyError.
        """
        check_catalog_path(path)
        modes = ["rw"] if _writable(path) and not readonly else ["ro", "snapshot"]
        for mode in modes:
            conn = application_id = None
            try:
                conn = cls._connect(path, mode)
                application_id = conn.execute("PRAGMA application_id").fetchone()[0]
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                break
            except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
                if conn is not None:
                    conn.close()
                if isinstance(exc, sqlite3.OperationalError) and mode != modes[-1] and (
                        "unable to open" in str(exc) or "readonly" in str(exc)):
                    continue
                if isinstance(exc, sqlite3.OperationalError) and (
                        _primary_code(exc) in (SQLITE_FULL, SQLITE_IOERR)
                        or "disk is full" in str(exc) or "disk I/O error" in str(exc)):
                    raise _open_failure(path, exc) from None  # the file system failed, not the file
                if application_id == APPLICATION_ID:  # ours, but damaged
                    raise CatalogDamagedError(f"{path}: the catalog is damaged ({exc}). To repair: "
                                              f"'embstore repair --db {path}'") from None
                raise NotAStoreError(f"{path} is not an embstore database ({exc})") from None
        if application_id != APPLICATION_ID:
            conn.close()
            raise NotAStoreError(
                f"{path} is an SQLite database but not an embstore store "
                "(create one with: embstore load FILE --db PATH)"
            )
        catalog = cls(path, conn, readonly=mode != "rw")
        catalog.live = mode != "snapshot"
        try:
            return cls._checked(catalog, repairing, upgrade)
        except (sqlite3.DatabaseError, UnicodeDecodeError, ValueError) as exc:
            conn.close()
            raise CatalogDamagedError(f"{path}: the catalog is damaged ({exc}). To repair: "
                                      f"'embstore repair --db {path}'") from None
        except BaseException:
            conn.close()
            raise

    @classmethod
    def _checked(cls, catalog: "Catalog", repairing: bool, upgrade: bool) -> "Catalog":
        """``catalog`` after checking its version and upgrading its schema (see ``open``)."""
        try:
            version = catalog.format_version()
        except NotAStoreError:
            if not repairing:
                raise
            version = FORMAT_VERSION  # repair puts right what it can tell
        if version > FORMAT_VERSION:
            raise StoreError(f"{catalog.path} was written by a newer embstore (store format {version}; this one "
                             f"reads up to {FORMAT_VERSION}): upgrade embstore to open it")
        if repairing:
            catalog.lost_migrations = catalog.rerecord_migrations()
        if upgrade:
            catalog.upgrade_schema()
        return catalog

    def upgrade_schema(self) -> None:
        """Apply the migrations this catalog lacks (not on a read-only store, which is read as it is)."""
        applied = self.applied_migrations()
        missing = [name for name in known_migrations() if name not in applied]
        if not missing or self.readonly:
            return
        if set(applied) != set(known_migrations()[: len(applied)]):
            raise NotAStoreError(
                f"{self.path}: the catalog's record of schema migrations {applied} does not match this "
                f"embstore's {known_migrations()}; run 'embstore check --db {self.path}'")
        try:
            with self.write_transaction():
                if [name for name in known_migrations() if name not in self.applied_migrations()]:
                    migrations().apply(self.db)
        except StoreError as exc:
            raise NotAStoreError(f"{self.path}: the catalog's schema cannot be brought up to date ({exc}); run "
                                 f"'embstore repair --db {self.path}'") from None

    def rerecord_migrations(self) -> list[str]:
        """Record again the migrations whose record was lost but whose work is in the schema."""
        applied = set(self.applied_migrations())
        lost = [name for name in known_migrations() if name not in applied
                and self.conn.execute(APPLIED_MARKERS[name]).fetchone()]
        if lost and not self.readonly:
            with self.write_transaction():
                self.conn.executemany(f"INSERT INTO {MIGRATIONS_TABLE}(migration_set, name, applied_at) "
                                      "VALUES (?, ?, datetime('now'))", [(MIGRATION_SET, name) for name in lost])
        return lost

    def finish_creation(self) -> None:
        """Switch a freshly built catalog to WAL, sync it to disk and close it."""
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.close()
        with open(self.path, "rb+") as handle:  # a temporary file no other connection uses
            os.fsync(handle.fileno())

    def close(self) -> None:
        self.conn.close()

    def format_version(self) -> int:
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
        except sqlite3.DatabaseError:
            raise NotAStoreError(f"{self.path} has no embstore metadata table") from None
        if row is None:
            raise NotAStoreError(f"{self.path} has no embstore format version")
        try:
            return int(row[0])
        except (TypeError, ValueError):
            raise NotAStoreError(f"{self.path}: meta.format_version is {row[0]!r}, not a number; the catalog "
                                 "is damaged: load the source file again with --replace") from None

    # -- transactions ---------------------------------------------------------------

    def hold_snapshot(self) -> None:
        """Start a read transaction that pins what this connection sees until ``release_snapshot``.

        An open store holds one, so every catalog read agrees with the files it opened,
        whatever other processes commit meanwhile (SQLite WAL keeps the old pages for it).
        """
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")
            self.conn.execute("SELECT count(*) FROM meta").fetchone()

    def release_snapshot(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")

    def require_writable(self) -> None:
        """StoreReadOnlyError, before any work is done, if this store cannot be written here."""
        if self.readonly:
            raise StoreReadOnlyError(f"store {self.path} is read-only here (its file, folder or disk cannot "
                                     "be written): queries work, changes do not")

    @contextlib.contextmanager
    def write_transaction(self) -> Iterator[None]:
        """Hold SQLite's write lock for the block; commit at its end or roll back on error."""
        self.require_writable()
        self.release_snapshot()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreBusyError(f"store {self.path} is busy: another process is writing to it") from None
            if "readonly" in str(exc):
                raise StoreReadOnlyError(f"store {self.path} is read-only: {exc}") from None
            raise
        committing = False
        try:
            yield
            committing = True
            self.conn.execute("COMMIT")
        except BaseException as exc:
            if committing and not self.conn.in_transaction and isinstance(exc, KeyboardInterrupt):
                raise InterruptedAfterCommit() from None  # too late to undo: the callers keep the files
            if self.conn.in_transaction:
                try:
                    self.conn.execute("ROLLBACK")
                except sqlite3.DatabaseError:
                    pass
            if isinstance(exc, sqlite3.DatabaseError):  # a full disk, a damaged catalog, or one SQLite will not write
                store = store_of(self.path)
                if _primary_code(exc) == SQLITE_FULL or "disk is full" in str(exc):
                    raise StoreError(f"store {store}: the disk is full, so the catalog could not be written; nothing "
                                     "was changed. Free some space and run the command again") from None
                if store != self.path:  # a new store's catalog, not yet in place: nothing to check
                    raise StoreError(f"store {store}: its new catalog could not be written ({exc}); nothing "
                                     "was stored") from None
                raise CatalogDamagedError(f"store {self.path}: the catalog could not be written ({exc}); run "
                                          f"'embstore check --db {self.path}'") from None
            raise

    @contextlib.contextmanager
    def commit_at(self, generation: int | None, doing: str, rows_generation: int | None = None) -> Iterator[int]:
        """A write transaction that commits only if the store is still at ``generation`` (when
        given) and its rows at ``rows_generation`` (when given); yields the next generation,
        which the commit records. Otherwise raises StoreChangedError naming what was ``doing``."""
        with self.write_transaction():
            current = self.generation()
            if (generation is not None and current != generation) or (
                    rows_generation is not None and self.rows_generation() != rows_generation):
                raise StoreChangedError(f"the store {self.path} changed while {doing}; run it again")
            yield current + 1
            self.set_meta(generation=current + 1)

    @contextlib.contextmanager
    def read_snapshot(self) -> Iterator[None]:
        """Read several statements from one consistent snapshot."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    # -- metadata -------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta"))

    def set_meta(self, **values: object) -> None:
        self.conn.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(key, str(value)) for key, value in values.items()],
        )

    def delete_meta(self, key: str) -> None:
        self.conn.execute("DELETE FROM meta WHERE key = ?", (key,))

    def _meta_int(self, key: str) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        try:
            return int(row[0]) if row else 0
        except (TypeError, ValueError):
            raise StoreError(f"{self.path}: meta.{key} is {row[0]!r}, not a number; "
                             f"run 'embstore repair --db {self.path}'") from None

    def safe_generation(self, key: str = "generation") -> int:
        """meta.``key`` as a whole number, or 0 where it is missing or damaged (for writes that
        replace everything, such as load --replace, which must work on a damaged catalog)."""
        try:
            return max(0, self._meta_int(key))
        except StoreError:
            return 0

    def generation(self) -> int:
        """Bumped by every commit: a reader whose generation differs has missed a change."""
        return self._meta_int("generation")

    def rows_generation(self) -> int:
        """Bumped by every commit that changes rows or IDs; indexes record the one they were built from."""
        return self._meta_int("rows_generation")

    # -- schema ---------------------------------------------------------------------

    def has_table(self, name: str) -> bool:
        """Whether the catalog has the table ``name`` (tables later migrations add may be missing
        from a read-only store that was not upgraded)."""
        return self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                 (name,)).fetchone() is not None

    def applied_migrations(self) -> list[str]:
        """The migrations applied to this catalog, in order, read from sqlite-utils' record."""
        if not self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                 (MIGRATIONS_TABLE,)).fetchone():
            return []
        return [row[0] for row in self.conn.execute(
            f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = ? ORDER BY rowid", (MIGRATION_SET,))]

    def known_migrations(self) -> list[str]:
        return known_migrations()
