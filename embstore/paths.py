"""Where a store lives when the user does not say: resolved here and nowhere else."""

from __future__ import annotations

import os
from pathlib import Path

STORE_ENV_VAR = "EMBSTORE_DB"


def default_store_path() -> Path:
    """``$XDG_DATA_HOME/embstore/store.db``, i.e. ``~/.local/share/embstore/store.db`` by default."""
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "embstore" / "store.db"


def resolve_store_path(explicit: str | os.PathLike | None = None) -> Path:
    """The store path: ``explicit`` if given, else $EMBSTORE_DB, else ``default_store_path()``."""
    if explicit:
        return Path(explicit).expanduser()
    from_env = os.environ.get(STORE_ENV_VAR)
    if from_env:
        return Path(from_env).expanduser()
    return default_store_path()
