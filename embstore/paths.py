"""Where a store lives: resolved here and nowhere else, once, to its real path."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import StoreError

STORE_ENV_VAR = "EMBSTORE_DB"


def default_store_path() -> Path:
    """``$XDG_DATA_HOME/embstore/store.db``, i.e. ``~/.local/share/embstore/store.db`` by default."""
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "embstore" / "store.db"


def resolve_store_path(explicit: str | os.PathLike | None = None) -> Path:
    """The store path: ``explicit`` if given, else $EMBSTORE_DB, else ``default_store_path()``.

    A symbolic link is followed to the real file, so that the catalog and its index files
    are always looked for, written and removed beside the real catalog.
    """
    if explicit is not None and not str(explicit).strip():
        raise StoreError("the store path is empty; give --db PATH (or unset it to use the default store)")
    chosen = explicit or os.environ.get(STORE_ENV_VAR) or default_store_path()
    return Path(os.path.realpath(Path(chosen).expanduser()))
