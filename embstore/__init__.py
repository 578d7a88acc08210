"""embstore: word embeddings in a SQLite catalog plus FAISS index files, queried like gensim.

    >>> from embstore import Store
    >>> Store.load("glove.6B.50d.txt", "glove.db")          # doctest: +SKIP
    >>> with Store.open("glove.db") as store:                # doctest: +SKIP
    ...     store.nearest("king", k=5)
    ...     store.analogy("man", "king", "woman")
    >>> kv = KeyedVectors.open("glove.db")                   # doctest: +SKIP
    >>> kv.most_similar(positive=["woman", "king"], negative=["man"], topn=1)  # gensim's API
"""

from .errors import (
    CatalogMismatchError,
    EmbstoreError,
    FormatError,
    NotAStoreError,
    QueryError,
    StoreBusyError,
    StoreChangedError,
    StoreClosedError,
    StoreError,
    StoreNotFoundError,
    StoreReadOnlyError,
    UnknownWordError,
)
from .paths import default_store_path, resolve_store_path
from .results import Neighbour, QueryResult, Resolved
from .store import Store, StoreInfo


def __getattr__(name: str):
    """``KeyedVectors`` and ``LoadReport`` are imported when first asked for: a query needs neither."""
    if name == "KeyedVectors":
        from .gensim_view import KeyedVectors

        return KeyedVectors
    if name == "LoadReport":
        from .writes.loading import LoadReport

        return LoadReport
    raise AttributeError(f"module 'embstore' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "Store", "KeyedVectors", "LoadReport", "StoreInfo", "Neighbour", "QueryResult", "Resolved",
    "EmbstoreError", "FormatError", "UnknownWordError", "StoreError", "StoreNotFoundError",
    "NotAStoreError", "StoreBusyError", "StoreChangedError", "StoreClosedError", "StoreReadOnlyError", "CatalogMismatchError",
    "QueryError", "default_store_path", "resolve_store_path", "__version__",
]
