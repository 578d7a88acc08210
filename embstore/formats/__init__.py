"""Embedding file formats: readers and writers. Nothing here knows of SQLite or FAISS.

Names are imported from ``reading`` and ``writing`` when first asked for, so that a module
that needs one small part (``float_text``) does not load the readers' compression libraries.
"""

from __future__ import annotations

import importlib

_FROM = {
    "reading": ("FORMAT_ALIASES", "FORMATS", "UNICODE_ERRORS", "GLOVE", "WORD2VEC_BINARY", "WORD2VEC_TEXT", "Chunk",
                "EmbeddingReader", "normalise_format_name", "read_embeddings"),
    "writing": ("EXPORT_FORMATS", "write_embeddings"),
    "opening": ("open_embeddings",),
    "fasttext_model": ("FASTTEXT_FORMAT", "FastTextModelReader"),
}
_MODULE_OF = {name: module for module, names in _FROM.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name in _MODULE_OF:
        return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
