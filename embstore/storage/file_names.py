"""Which files are this store's own: one strict name pattern, claims on files being written,
and the leftovers an interrupted writer left.

A store ``emb.db`` owns ``emb.db.<kind>.<8 hex>.faiss`` beside it, a fastText store also
``emb.db.ngrams.<8 hex>.f32`` (its n-gram rows), a sharded store
``emb.db.shard<4 digits>-<exact or hnsw>.<8 hex>.faiss`` (one shard's rows or graph: the ``-``
keeps it from being the name of another store's file, such as the rows of a store named
``emb.db.shard0000``), and while writing, the same names with a
leading ``.`` and a trailing ``.tmp``, and ``.emb.db.<8 hex>.tmp`` (a new catalog). A
catalog record naming anything else (``../victim.txt``, an absolute path, another
store's file) is damage: it is never opened or deleted. A writer holds an exclusive
``flock`` on each file it writes until its commit is over, so that no leftover scan,
in this process or another, can take a file that is still being written for a leftover.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..errors import CatalogMismatchError, InterruptedAfterCommit

_KIND = r"[a-z][a-z0-9]{0,15}"
_TOKEN = r"[0-9a-f]{8}"
_SHARD = r"[0-9]{4}"


def _token() -> str:
    """8 random hex digits for a new file's name (``secrets`` is imported only by writers)."""
    import secrets

    return secrets.token_hex(4)


def _index_pattern(store_name: str) -> re.Pattern:
    return re.compile(rf"{re.escape(store_name)}\.({_KIND})\.{_TOKEN}\.faiss")


def _subword_pattern(store_name: str) -> re.Pattern:
    return re.compile(rf"{re.escape(store_name)}\.ngrams\.{_TOKEN}\.f32")


def _shard_pattern(store_name: str) -> re.Pattern:
    return re.compile(rf"{re.escape(store_name)}\.shard({_SHARD})-(exact|hnsw)\.{_TOKEN}\.faiss")


def store_of(catalog: Path) -> Path:
    """The store a catalog file belongs to: itself, or for a new catalog's temporary file
    (``new_catalog_file``) the store it becomes once complete: what messages should name."""
    match = re.fullmatch(rf"\.(.+)\.{_TOKEN}\.tmp", catalog.name)
    return catalog.with_name(match.group(1)) if match else catalog


def _temporary_pattern(store_name: str) -> re.Pattern:
    return re.compile(rf"\.{re.escape(store_name)}\.(?:{_KIND}\.{_TOKEN}\.faiss|ngrams\.{_TOKEN}\.f32|"
                      rf"shard{_SHARD}-(?:exact|hnsw)\.{_TOKEN}\.faiss|{_TOKEN})\.tmp")


def new_index_file(store: Path, kind: str) -> tuple[Path, Path]:
    """(temporary path, final path) for a new ``kind`` file of the store at ``store``."""
    name = f"{store.name}.{kind}.{_token()}.faiss"
    if not _index_pattern(store.name).fullmatch(name):
        raise ValueError(f"not an index kind: {kind!r}")
    return store.with_name(f".{name}.tmp"), store.with_name(name)


def new_subword_file(store: Path) -> tuple[Path, Path]:
    """(temporary path, final path) for a new n-gram rows file of the store at ``store``."""
    name = f"{store.name}.ngrams.{_token()}.f32"
    return store.with_name(f".{name}.tmp"), store.with_name(name)


def subword_file_path(store: Path, name: object) -> Path:
    """The path of the n-gram file the catalog names ``name``; CatalogMismatchError if that is
    not a plain name of this store's own pattern."""
    if not isinstance(name, str) or _subword_pattern(store.name).fullmatch(name) is None:
        raise CatalogMismatchError(
            f"the catalog names the n-gram file {str(name)[:80]!r}, which is not a file of this store "
            f"(expected {store.name}.ngrams.<8 hex digits>.f32 beside it); it is not opened or removed")
    return store.with_name(name)


def is_subword_file(store: Path, name: str) -> bool:
    """Whether ``name`` is an n-gram rows file name of this store (not a temporary one)."""
    return isinstance(name, str) and _subword_pattern(store.name).fullmatch(name) is not None


def new_shard_file(store: Path, kind: str, number: int) -> tuple[Path, Path]:
    """(temporary path, final path) for a new file of shard ``number`` (kind exact or hnsw)."""
    name = f"{store.name}.shard{number:04d}-{kind}.{_token()}.faiss"
    if not _shard_pattern(store.name).fullmatch(name):
        raise ValueError(f"not a shard file: {kind!r}, {number!r}")
    return store.with_name(f".{name}.tmp"), store.with_name(name)


def shard_file_path(store: Path, kind: str, number: int, name: object) -> Path:
    """The path of the file the catalog names ``name`` for shard ``number`` of ``kind``;
    CatalogMismatchError if that is not a plain name of this store's own pattern for them."""
    match = _shard_pattern(store.name).fullmatch(name) if isinstance(name, str) else None
    if match is None or (int(match.group(1)), match.group(2)) != (number, kind):
        expected = f"shard{number:04d}-{kind}" if isinstance(number, int) and isinstance(kind, str) else "shard<N>-<kind>"
        raise CatalogMismatchError(
            f"the catalog names the file {str(name)[:80]!r} for shard {str(number)[:20]} ({str(kind)[:20]}), which is "
            f"not a file of this store (expected {store.name}.{expected}.<8 hex digits>.faiss beside it); it is not "
            "opened or removed")
    return store.with_name(name)


def is_shard_file(store: Path, name: str) -> bool:
    """Whether ``name`` is a shard file name of this store (not a temporary one)."""
    return isinstance(name, str) and _shard_pattern(store.name).fullmatch(name) is not None


def own_shard_paths(store: Path, named: Iterable[tuple[str, int, str]]) -> list[Path]:
    """The paths of the (kind, number, file name) shard records that name this store's own files."""
    return _named_paths(functools.partial(shard_file_path, store), named)


def new_catalog_file(store: Path) -> Path:
    """A temporary path for a new catalog, renamed to ``store`` once it is complete."""
    return store.with_name(f".{store.name}.{_token()}.tmp")


def index_file_path(store: Path, kind: str, name: str) -> Path:
    """The path of the ``kind`` file the catalog names ``name``; CatalogMismatchError if that
    is not a plain name of this store's own pattern for that kind."""
    match = _index_pattern(store.name).fullmatch(name) if isinstance(name, str) else None
    if match is None or match.group(1) != kind:
        raise CatalogMismatchError(
            f"the catalog names the {kind} index file {str(name)[:80]!r}, which is not a file of this store "
            f"(expected {store.name}.{kind}.<8 hex digits>.faiss beside it); it is not opened or removed")
    return store.with_name(name)


def _named_paths(path_of: Callable[..., Path], named: Iterable[tuple]) -> list[Path]:
    """``path_of(*entry)`` for each entry that names one of this store's own files; any other
    name (a hostile or damaged record's) is left out, so it is never touched."""
    paths = []
    for entry in named:
        try:
            paths.append(path_of(*entry))
        except CatalogMismatchError:
            continue
    return paths


def own_paths(store: Path, named: Iterable[tuple[str, str]]) -> list[Path]:
    """The paths of the (kind, file name) index records that name this store's own files."""
    return _named_paths(functools.partial(index_file_path, store), named)


def own_subword_paths(store: Path, names: Iterable[str]) -> list[Path]:
    """The paths of the n-gram file names that are this store's own."""
    return _named_paths(functools.partial(subword_file_path, store), [(name,) for name in names])


def kind_of_file(store: Path, name: str) -> str | None:
    """The kind an index file of this store holds, read from its name; None for any other name."""
    match = _index_pattern(store.name).fullmatch(name) if isinstance(name, str) else None
    return match.group(1) if match else None


def is_own_file(store: Path, name: str) -> bool:
    """Whether ``name`` has the shape of one of this store's index or temporary files."""
    return bool(_index_pattern(store.name).fullmatch(name) or _subword_pattern(store.name).fullmatch(name)
                or _shard_pattern(store.name).fullmatch(name) or _temporary_pattern(store.name).fullmatch(name))


def is_store_file(store: Path, path: str | os.PathLike) -> bool:
    """Whether ``path`` (after links) is the store's catalog, its WAL, SHM or journal file, or
    one of its index or temporary files: files nothing but the store itself may open."""
    target = Path(os.path.realpath(path))
    if target.parent != Path(os.path.realpath(store)).parent:
        return False
    catalog = {store.name, f"{store.name}-wal", f"{store.name}-shm", f"{store.name}-journal"}
    return target.name in catalog or is_own_file(store, target.name)


class Claim:
    """An exclusive flock on a file this process is writing, held until ``release``."""

    def __init__(self, path: Path):
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class NewFiles:
    """The files one write creates: claimed while written, removed if the write fails,
    released once the commit is over (see ``written``)."""

    def __init__(self) -> None:
        self.claims: list[Claim] = []
        self.paths: list[Path] = []

    def claim(self, temporary: Path, final: Path) -> Path:
        """Create and claim ``temporary``; the writer renames it to ``final``."""
        self.claims.append(Claim(temporary))
        self.paths += [temporary, final]
        return temporary

    def discard(self) -> None:
        for path in self.paths:
            path.unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        for claim in self.claims:
            claim.release()
        self.claims = []

    @contextlib.contextmanager
    def written(self) -> Iterator["NewFiles"]:
        """Discard the files if the block fails, release the claims when it ends. A Ctrl-C that
        came after the block's commit went through keeps them: the store names them now."""
        try:
            yield self
        except InterruptedAfterCommit:
            self.release()
            raise
        except BaseException:
            self.discard()
            raise
        self.release()


def _in_use(path: Path) -> bool:
    """Whether a writer holds a claim on ``path`` (a file that cannot be opened counts as in use)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def leftover_files(store: Path, referenced: Iterable[str]) -> list[Path]:
    """This store's files that an interrupted writer left: temporaries and index files the
    catalog does not reference, and no writer is still writing."""
    referenced = set(referenced)
    found = []
    for candidate in store.parent.iterdir():
        if candidate.name in referenced or not is_own_file(store, candidate.name) or candidate.is_symlink():
            continue
        if candidate.is_file() and not _in_use(candidate):
            found.append(candidate)
    return sorted(found)


def remove_files(paths: Iterable[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
