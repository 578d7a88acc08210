"""A gensim-compatible view of a store: ``KeyedVectors``."""

from .keyed_vectors import KeyedVectors

__all__ = ["KeyedVectors"]
