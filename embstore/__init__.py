"""embstore: word embeddings in a SQLite catalog plus FAISS index files, queried like gensim.

    >>> from embstore import Store
    >>> Store.load("glove.6B.50d.txt", "glove.db")          # doctest: +SKIP
    >>> with Store.open("glove.db") as store:                # doctest: +SKIP
    ...     store.nearest("king", k=5)
    ...     store.analogy("man", "king", "woman")
"""

from .errors import (
    CatalogMismatchError,
    EmbstoreError,
    FormatError,
    NotAStoreError,
    QueryError,
    StoreBusyError,
    StoreError,
    StoreNotFoundError,
    UnknownWordError,
)
from .paths import default_store_path, resolve_store_path
from .queries import Neighbour, QueryResult
from .store import LoadReport, Store, StoreInfo

__version__ = "0.1.0"

__all__ = [
    "Store", "LoadReport", "StoreInfo", "Neighbour", "QueryResult",
    "EmbstoreError", "FormatError", "UnknownWordError", "StoreError", "StoreNotFoundError",
    "NotAStoreError", "StoreBusyError", "CatalogMismatchError", "QueryError",
    "default_store_path", "resolve_store_path", "__version__",
]
