"""The store's metadata, read from the catalog's meta table and checked field by field."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import CatalogMismatchError

EXACT = "exact"
STORAGE_KINDS = (EXACT, "sq8")
APPROXIMATE_KINDS = ("hnsw", "ivf", "sq8", "pq")  # the kinds search/index_kinds.py builds
MAX_DIMENSION = 65_536
RAW_ROWS = "as loaded"  # meta.row_values of stores whose exact rows are the loaded values
NO_CHANGES = {"added": 0, "deleted": 0, "replaced": 0, "renamed": 0}


def now() -> str:
    """The time a record is written (``created_at``): UTC, to the second, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def changes_since_load(meta: dict[str, str]) -> dict[str, int]:
    """What add, delete and rename changed since the store was loaded (counts of words), as
    recorded by each change in meta.changes_since_load."""
    try:
        counts = json.loads(meta.get("changes_since_load") or "{}")
    except ValueError:
        counts = {}
    if not isinstance(counts, dict):
        counts = {}
    return {**NO_CHANGES, **{k: v for k, v in counts.items() if k in NO_CHANGES and isinstance(v, int)}}


@dataclass(frozen=True)
class StoreMeta:
    """What the meta table says, validated. ``raw`` keeps every key as stored."""

    raw: dict[str, str]
    dimension: int
    format_version: int
    generation: int
    rows_generation: int
    storage: str
    default_index: str
    raw_rows: bool  # the exact rows are the values as loaded (else unit rows, from before 0.2)

    @classmethod
    def parse(cls, raw: dict[str, str], path: Path) -> "StoreMeta":
        """Raises CatalogMismatchError naming the field, its value and what to do."""
        def whole(key: str, low: int, high: int, default: int | None = None) -> int:
            value = raw.get(key)
            if value is None and default is not None:
                return default
            try:
                number = int(value)
            except (TypeError, ValueError):
                number = None
            if number is None or not low <= number <= high:
                what = "is missing" if value is None else f"is {str(value)[:40]!r}, not a whole number from {low} to {high}"
                raise CatalogMismatchError(f"meta.{key} {what}")
            return number

        generation = whole("generation", 0, 1 << 62, default=0)
        storage = raw.get("storage", EXACT)
        if storage not in STORAGE_KINDS:
            raise CatalogMismatchError(f"meta.storage is {storage[:40]!r}, not one of {', '.join(STORAGE_KINDS)}")
        return cls(raw=raw, dimension=whole("dimension", 1, MAX_DIMENSION),
                   format_version=whole("format_version", 1, 1 << 30), generation=generation,
                   rows_generation=whole("rows_generation", 0, 1 << 62, default=generation), storage=storage,
                   default_index=raw.get("default_index") or EXACT, raw_rows=raw.get("row_values") == RAW_ROWS)

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.raw.get(key, default)
