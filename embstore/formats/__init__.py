"""Embedding file formats: readers and writers. Nothing here knows of SQLite or FAISS."""

from .reading import (
    FORMAT_ALIASES,
    FORMATS,
    UNICODE_ERRORS,
    GLOVE,
    WORD2VEC_BINARY,
    WORD2VEC_TEXT,
    Chunk,
    EmbeddingReader,
    normalise_format_name,
    read_embeddings,
)
from .writing import EXPORT_FORMATS, write_embeddings

__all__ = [
    "FORMAT_ALIASES", "UNICODE_ERRORS", "FORMATS", "GLOVE", "WORD2VEC_BINARY", "WORD2VEC_TEXT", "Chunk", "EmbeddingReader",
    "normalise_format_name", "read_embeddings", "EXPORT_FORMATS", "write_embeddings",
]
