"""gensim's ``KeyedVectors`` over a store: the same names, signatures, defaults, return types
and exceptions, so that code written for gensim 4 runs on a store by changing the line that
makes the object.

    >>> from embstore import KeyedVectors
    >>> kv = KeyedVectors.open("glove.db")                                  # doctest: +SKIP
    >>> kv.most_similar(positive=["king", "woman"], negative=["man"], topn=1)  # doctest: +SKIP
    [('queen', 0.8523604273796082)]

The arithmetic is gensim's, in the same float32 steps: scores divide the stored rows'
products by their norms, so answers equal gensim's on the same vectors. ``vectors`` is the
store's own read-only array (no copy). What would change vectors in place, pickling and
training raise ``NotImplementedError`` saying why. Queries only read; ``add_vector(s)`` and
``__setitem__`` are atomic store writes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from numbers import Integral
from typing import Iterator

import numpy as np

from ..errors import QueryError, UnknownWordError
from ..row_norms import row_norms
from ..store import Store
from . import word2vec_files

logger = logging.getLogger("embstore")

REAL = np.float32
_KEY_TYPES = (str, int, np.integer)
_EXTENDED_KEY_TYPES = (str, int, np.integer, np.ndarray)

NOT_FOR_A_STORE = {
    "save": "a store is already saved: its files are the store. Open it again with KeyedVectors.open(path); "
            "export with save_word2vec_format",
    "load": "gensim's .kv files are pickles, and embstore never unpickles. Open a store with "
            "KeyedVectors.open(path), or read a word2vec file with KeyedVectors.load_word2vec_format",
    "unit_normalize_all": "it would overwrite the stored vectors; get_normed_vectors() gives unit rows without "
                          "changing them",
    "resize_vectors": "a store's rows change only through add_vectors and the store's delete_words",
    "sort_by_descending_frequency": "a store's IDs are its frequency ranks already (the file's order)",
    "allocate_vecattrs": "a store keeps its attributes (counts) in its catalog",
    "set_vecattr": "counts are set when the store is loaded (load_word2vec_format(fvocab=...), or "
                   "Store.load(counts=...))",
    "intersect_word2vec_format": "it would overwrite stored vectors in place; load the other file into a store "
                                 "of its own",
    "wmdistance": "Word Mover's Distance needs the POT package, which embstore does not depend on",
    "train": "a store holds trained vectors; train with gensim and load the result",
    "build_vocab": "a store holds trained vectors; train with gensim and load the result",
    "vectors_for_all": "it builds vectors for words not in the vocabulary, which needs a fastText model",
    "similarity_unseen_docs": "it needs a Doc2Vec model",
    "lowercase_entire_vocab": "it would rename stored words in place; rename words with Store.rename_word",
}


def _ensure_list(value):
    """gensim's rule: None is [], one key or vector is a list of it."""
    if value is None:
        return []
    if isinstance(value, _KEY_TYPES) or (isinstance(value, np.ndarray) and value.ndim == 1):
        return [value]
    return list(value)


def _best(scores: np.ndarray, topn: int) -> np.ndarray:
    """Indices of the ``topn`` highest scores, best first, chosen as gensim's ``matutils.argsort``
    chooses them (a partition, then a sort of the chosen), so exact ties fall as in gensim."""
    negated = -scores
    if topn >= negated.size:
        return np.argsort(negated)[:topn]
    chosen = np.argpartition(negated, topn)[:topn]
    return chosen.take(np.argsort(negated.take(chosen)))


def _unitvec(vector: np.ndarray) -> np.ndarray:
    """gensim's ``matutils.unitvec``: scaled in float64, given back in the input's type."""
    vector = np.asarray(vector)
    wide = vector.astype(np.float64)
    length = np.sqrt(np.dot(wide, wide))
    return (wide * (1.0 / length)).astype(vector.dtype) if length > 0 else vector


class KeyToIndex(Mapping):
    """``key_to_index`` without building a dict of every word: lookups go to the catalog."""

    def __init__(self, view: "KeyedVectors"):
        self._view = view

    def __getitem__(self, key):
        index = self._view.get_index(key, -1) if isinstance(key, str) else -1
        if index < 0:
            raise KeyError(key)
        return index

    def __contains__(self, key) -> bool:
        return isinstance(key, str) and self._view.has_index_for(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._view.index_to_key)

    def __len__(self) -> int:
        return len(self._view)


class KeyedVectors:
    """gensim 4's ``KeyedVectors`` API over an open ``Store`` (see the module's notes)."""

    def __init__(self, vector_size: Store | int, count: int = 0, dtype=REAL, mapfile_path=None, *,
                 index: str | None = None, owns_store: bool = False, db: str | os.PathLike | None = None):
        """A view of an open store (given as the first argument; gensim's name for it is kept);
        ``index``: an approximate index kind to answer ``most_similar``
        top-n queries over the whole vocabulary (None: the exact rows, gensim's answers).

        ``KeyedVectors(vector_size)`` is gensim's empty set of vectors: the first ``add_vectors``
        (or ``kv[keys] = vectors``) creates its store, at ``db`` or in a temporary folder that
        lives as long as the view."""
        self._store: Store | None = None
        self._finalizer = None
        self._cache_generation = None
        self._cache: dict[str, object] = {}
        self.index = index
        self._owns_store = owns_store
        self._db = db
        if isinstance(vector_size, Store):
            self._store = vector_size
            return
        if isinstance(vector_size, bool) or not isinstance(vector_size, (int, np.integer)) or vector_size < 1:
            raise TypeError(f"KeyedVectors takes an open Store, or gensim's vector_size (a whole number), "
                            f"not {vector_size!r:.40}; open a store with KeyedVectors.open(path)")
        if np.dtype(dtype) != np.float32:
            raise NotImplementedError("a store keeps float32 rows; dtype must be numpy.float32")
        if mapfile_path is not None:
            raise NotImplementedError("a store memory-maps its own files; mapfile_path is not used")
        self._vector_size = int(vector_size)
        self._owns_store = True

    @property
    def store(self) -> Store:
        """The open store (QueryError while an empty ``KeyedVectors(vector_size)`` has no vectors)."""
        if self._store is None:
            raise QueryError("this KeyedVectors holds no vectors yet: add some with add_vectors")
        return self._store

    @classmethod
    def open(cls, path: str | os.PathLike | None = None, *, index: str | None = None,
             words_in_memory: bool | None = None) -> "KeyedVectors":
        """Open the store at ``path`` as a gensim ``KeyedVectors``; close it with ``close()``."""
        return cls(Store.open(path, words_in_memory=words_in_memory), index=index, owns_store=True)

    @classmethod
    def load_word2vec_format(cls, fname, fvocab=None, binary=False, encoding="utf8", unicode_errors="strict",
                             limit=None, datatype=REAL, no_header=False, *, db=None, replace=False):
        """gensim's ``load_word2vec_format``: read a word2vec (or, with ``no_header``, GloVe) file into
        a store and open it. ``db``: where the store goes (kept); None puts it in a temporary folder
        that is removed when the view is closed or collected."""
        return word2vec_files.load(cls, fname, fvocab=fvocab, binary=binary, encoding=encoding,
                                   unicode_errors=unicode_errors, limit=limit, datatype=datatype,
                                   no_header=no_header, db=db, replace=replace)

    def save_word2vec_format(self, fname, fvocab=None, binary=False, total_vec=None, write_header=True,
                             prefix="", append=False, sort_attr="count"):
        """gensim's ``save_word2vec_format``: values written exactly (binary as stored, text as the
        shortest decimal of each float32), most frequent first."""
        word2vec_files.save(self, fname, fvocab=fvocab, binary=binary, total_vec=total_vec,
                            write_header=write_header, prefix=prefix, append=append, sort_attr=sort_attr)

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        elif self._owns_store and self._store is not None:
            self._store.close()

    def __enter__(self) -> "KeyedVectors":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getattr__(self, name: str):
        if name in NOT_FOR_A_STORE:
            def refuse(*args, **kwargs):
                raise NotImplementedError(f"KeyedVectors.{name} is not available on an embstore store: "
                                          f"{NOT_FOR_A_STORE[name]}")
            return refuse
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __str__(self) -> str:
        return f"KeyedVectors<vector_size={self.vector_size}, {len(self)} keys>"

    # -- what the store holds -----------------------------------------------------------

    def _cached(self, name: str, make):
        if self._store is None:
            return make()
        if self._cache_generation != self.store.generation:
            self._cache, self._cache_generation = {}, self.store.generation
        if name not in self._cache:
            self._cache[name] = make()
        return self._cache[name]

    @property
    def vectors(self) -> np.ndarray:
        """The stored rows, read-only: the store's own array, not a copy. (A store written before
        embstore 0.2, or one of compressed codes, computes it once from unit rows and norms.)"""
        def make():
            if self._store is None:
                empty = np.zeros((0, self.vector_size), dtype=REAL)
                empty.flags.writeable = False
                return empty
            searcher = self.store.searcher
            if searcher.raw_rows:
                return searcher.rows
            rows = np.concatenate([vectors for _, vectors in self.store.iter_vectors()]) if len(self) else \
                np.zeros((0, self.vector_size), dtype=REAL)
            rows.flags.writeable = False
            return rows
        return self._cached("vectors", make)

    @property
    def norms(self) -> np.ndarray:
        """The float32 length of each row."""
        def make():
            if self._store is not None and self.store.searcher.raw_rows:
                return self.store.searcher.norms
            return row_norms(self.vectors)
        return self._cached("norms", make)

    @property
    def vector_size(self) -> int:
        return self.store.dimension if self._store is not None else self._vector_size

    @property
    def index_to_key(self) -> list[str]:
        """Every word in ID order (the list is built once per store generation)."""
        return self._cached("index_to_key", self.store.vocabulary if self._store is not None else list)

    @property
    def key_to_index(self) -> Mapping:
        return KeyToIndex(self)

    @property
    def expandos(self) -> dict[str, np.ndarray]:
        """gensim's per-key attributes: {'count': array} (see ``get_vecattr``)."""
        return {"count": self._cached("counts", self._counts)}

    def _counts(self) -> np.ndarray:
        """Counts from the store, or where it has none gensim's stand-in: len - index."""
        size = len(self)
        counts = self.store.vocab.catalog.counts_for_ids(range(size)) if size and self._store is not None else []
        if not any(c is not None for c in counts):
            return np.arange(size, 0, -1, dtype=np.int64)
        return np.array([-1 if c is None else c for c in counts], dtype=np.int64)

    def get_vecattr(self, key, attr):
        """``attr`` of ``key``; only 'count' exists (the loaded count, or len - index as gensim gives)."""
        index = self.get_index(key)
        if attr != "count":
            raise KeyError(attr)
        count = self.expandos["count"][index]  # cached per store generation: a loop over words stays cheap
        return None if count < 0 else count

    def __len__(self) -> int:
        return len(self._store) if self._store is not None else 0

    def __contains__(self, key) -> bool:
        """As gensim's FastTextKeyedVectors: on a store with n-gram rows every word has a vector."""
        if isinstance(key, str) and self._store is not None and self.store.has_subwords:
            return True
        return self.has_index_for(key)

    def has_index_for(self, key) -> bool:
        return self.get_index(key, -1) >= 0

    def get_index(self, key, default=None):
        """The row of ``key`` (a word, or an int index that exists); ``default`` or KeyError otherwise."""
        if self._store is None:
            pass
        elif isinstance(key, str):
            index = self.store.vocab.id_of(key)
            if index is not None:
                return index
        elif isinstance(key, (int, np.integer)) and not isinstance(key, bool) and 0 <= key < len(self):
            return int(key)
        if default is not None:
            return default
        if isinstance(key, str):
            raise UnknownWordError(key, self.store.vocab.unknown(key).suggestions if self._store is not None else [])
        raise KeyError(f"Key '{key}' not present")

    def get_vector(self, key, norm=False) -> np.ndarray:
        """The stored vector of ``key`` (read-only), or divided by its length with ``norm``. On a
        fastText store a word outside the vocabulary gets its vector from its n-grams."""
        if isinstance(key, str) and self._store is not None and self.store.has_subwords \
                and self.store.vocab.id_of(key) is None:
            built = self.store.unit_vector(key) if norm else self.store.vector(key)
            built.setflags(write=False)
            return built
        index = self.get_index(key)
        result = self.vectors[index] / self.norms[index] if norm else self.vectors[index]
        result = np.array(result) if norm else result
        result.setflags(write=False)
        return result

    def word_vec(self, *args, **kwargs):
        return self.get_vector(*args, **kwargs)

    def __getitem__(self, key_or_keys):
        if isinstance(key_or_keys, _KEY_TYPES):
            return self.get_vector(key_or_keys)
        return np.vstack([self.get_vector(key) for key in key_or_keys])

    def get_normed_vectors(self) -> np.ndarray:
        """Every row at unit length (computed once per process, as gensim does)."""
        if self.store.searcher.raw_rows:
            return self.store.searcher.unit_rows
        return self._cached("normed", lambda: self.vectors / self.norms[:, None])

    def fill_norms(self, force=False) -> None:
        """Norms are computed when first needed; nothing to do."""

    def init_sims(self, replace=False) -> None:
        if replace:
            raise NotImplementedError("init_sims(replace=True) would overwrite the stored vectors with unit rows; "
                                      "get_normed_vectors() gives them without changing the store")

    # -- queries --------------------------------------------------------------------------

    def get_mean_vector(self, keys, weights=None, pre_normalize=True, post_normalize=False, ignore_missing=True):
        """gensim's weighted mean of keys (words, indexes or vectors), in the same float32 steps."""
        if len(keys) == 0:
            raise ValueError("cannot compute mean with no input")
        if isinstance(weights, list):
            weights = np.array(weights, dtype=REAL)
        if weights is None:
            weights = np.ones(len(keys), dtype=REAL)
        if len(keys) != weights.shape[0]:
            raise ValueError("keys and weights array must have same number of elements")
        mean = np.zeros(self.vector_size, REAL)
        total_weight = 0
        for idx, key in enumerate(keys):
            if isinstance(key, np.ndarray):
                mean += weights[idx] * key
                total_weight += abs(weights[idx])
            elif self.__contains__(key):
                mean += weights[idx] * self.get_vector(key, norm=pre_normalize)
                total_weight += abs(weights[idx])
            elif not ignore_missing:
                raise self._missing(key)
        if total_weight > 0:
            mean = mean / total_weight
        if post_normalize:
            mean = _unitvec(mean).astype(REAL)
        return mean

    def _missing(self, key) -> KeyError:
        if isinstance(key, str):
            return UnknownWordError(key, self.store.vocab.unknown(key).suggestions)
        return KeyError(f"Key '{key}' not present in vocabulary")

    def most_similar(self, positive=None, negative=None, topn=10, clip_start=0, clip_end=None,
                     restrict_vocab=None, indexer=None):
        """gensim's ``most_similar``: keys, vectors or (key, weight) pairs; ``topn=None`` gives every
        similarity as an array; keys asked about are never answers."""
        if isinstance(topn, Integral) and topn < 1:
            return []
        positive = _ensure_list(positive)
        negative = _ensure_list(negative)
        clip_end = clip_end or len(self)
        if restrict_vocab:
            clip_start, clip_end = 0, restrict_vocab
        keys = []
        weight = np.concatenate((np.ones(len(positive)), -1.0 * np.ones(len(negative))))
        for idx, item in enumerate(positive + negative):
            if isinstance(item, _EXTENDED_KEY_TYPES):
                keys.append(item)
            else:
                keys.append(item[0])
                weight[idx] = item[1]
        mean = self.get_mean_vector(keys, weight, pre_normalize=True, post_normalize=True, ignore_missing=False)
        all_keys = [self.get_index(key) for key in keys if isinstance(key, _KEY_TYPES) and self.has_index_for(key)]
        if indexer is not None and isinstance(topn, int):
            return indexer.most_similar(mean, topn)
        if topn and self.index is not None and clip_start == 0 and clip_end == len(self):
            return self._through_index(mean, topn, all_keys, restrict_vocab or None)
        dists = self._scores(mean, clip_start, clip_end)
        if not topn:
            return dists
        best = _best(dists, topn + len(all_keys))
        result = [(self.index_to_key_at(sim + clip_start), float(dists[sim]))
                  for sim in best.tolist() if (sim + clip_start) not in all_keys]
        return result[:topn]

    def _scores(self, mean: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Cosine of every row in [start, stop) with ``mean``: one pass, products over norms."""
        stop = len(self) if stop is None else stop
        return np.dot(self.vectors[start:stop], mean) / self.norms[start:stop]

    def _through_index(self, mean, topn, all_keys, restrict):
        searcher = self.store.searcher
        choice = searcher.choose(self.index)
        hits = searcher.search(choice.kind, mean[None, :].astype(REAL), topn, [set(all_keys)],
                               self.store.vocab.id_limit(restrict))[0]
        words = self.store.vocab.words_for(i for i, _ in hits)
        return [(words[i], float(s)) for i, s in hits]

    def index_to_key_at(self, index: int) -> str:
        if "index_to_key" in self._cache and self._cache_generation == self.store.generation:
            return self._cache["index_to_key"][index]
        return self.store.vocab.words_for([index])[index]

    def similar_by_word(self, word, topn=10, restrict_vocab=None):
        return self.similar_by_key(word, topn, restrict_vocab)

    def similar_by_key(self, key, topn=10, restrict_vocab=None):
        return self.most_similar(positive=[key], topn=topn, restrict_vocab=restrict_vocab)

    def similar_by_vector(self, vector, topn=10, restrict_vocab=None):
        return self.most_similar(positive=[vector], topn=topn, restrict_vocab=restrict_vocab)

    def most_similar_cosmul(self, positive=None, negative=None, topn=10, restrict_vocab=None):
        """3CosMul (Levy and Goldberg 2014) as gensim computes it, for any positive and negative
        keys or vectors. ``restrict_vocab`` limits the searched rows (gensim documents it but
        searches every row)."""
        if isinstance(topn, Integral) and topn < 1:
            return []
        positive = _ensure_list(positive)
        negative = _ensure_list(negative)
        all_words = {self.get_index(word) for word in positive + negative
                     if not isinstance(word, np.ndarray) and self.has_index_for(word)}
        positive = [self.get_vector(word, norm=True) if isinstance(word, _KEY_TYPES) else word for word in positive]
        negative = [self.get_vector(word, norm=True) if isinstance(word, _KEY_TYPES) else word for word in negative]
        if not positive:
            raise ValueError("cannot compute similarity with no input")
        stop = restrict_vocab or len(self)
        pos_dists = [((1 + self._scores(term, 0, stop)) / 2) for term in positive]
        neg_dists = [((1 + self._scores(term, 0, stop)) / 2) for term in negative]
        dists = np.prod(pos_dists, axis=0) / (np.prod(neg_dists, axis=0) + 0.000001)
        if not topn:
            return dists
        best = _best(dists, topn + len(all_words))
        result = [(self.index_to_key_at(sim), float(dists[sim])) for sim in best.tolist() if sim not in all_words]
        return result[:topn]

    def rank_by_centrality(self, words, use_norm=True):
        """Words sorted by cosine with their mean, most central first; unknown words are left out
        with a warning, as gensim does."""
        words = _word_list(words, "rank_by_centrality")
        used_words = [word for word in words if word in self]
        if len(used_words) != len(words):
            logger.warning("vectors for words %s are not present in the model, ignoring these words",
                           set(words) - set(used_words))
        if not used_words:
            raise ValueError("cannot select a word from an empty list")
        vectors = np.vstack([self.get_vector(word, norm=use_norm) for word in used_words]).astype(REAL)
        mean = self.get_mean_vector(vectors, post_normalize=True)
        dists = np.dot(vectors, mean)
        return sorted(zip(dists, used_words), reverse=True)

    def doesnt_match(self, words):
        """The word furthest from the mean of ``words`` (unknown words are left out with a warning)."""
        return self.rank_by_centrality(_word_list(words, "doesnt_match"))[-1][1]

    @staticmethod
    def cosine_similarities(vector_1, vectors_all):
        norm = np.linalg.norm(vector_1)
        all_norms = np.linalg.norm(vectors_all, axis=1)
        return np.dot(vectors_all, vector_1) / (norm * all_norms)

    def distances(self, word_or_vector, other_words=()):
        """1 - cosine from a key or vector to ``other_words``, or to every row when none are given."""
        if isinstance(word_or_vector, _KEY_TYPES):
            input_vector = self.get_vector(word_or_vector)
        else:
            input_vector = word_or_vector
        if not other_words:
            return 1 - self._scores(_unitvec(np.asarray(input_vector, dtype=REAL)))
        other_indices = [self.get_index(word) for word in _word_list(other_words, "other_words")]
        return 1 - self.cosine_similarities(input_vector, self.vectors[other_indices])

    def distance(self, w1, w2):
        return 1 - self.similarity(w1, w2)

    def similarity(self, w1, w2):
        return np.dot(_unitvec(self[w1]), _unitvec(self[w2]))

    def n_similarity(self, ws1, ws2):
        """Cosine between the means of two lists of keys."""
        ws1, ws2 = _word_list(ws1, "ws1"), _word_list(ws2, "ws2")
        if not (len(ws1) and len(ws2)):
            raise ZeroDivisionError("At least one of the passed list is empty.")
        mean1 = self.get_mean_vector(ws1, pre_normalize=False)
        mean2 = self.get_mean_vector(ws2, pre_normalize=False)
        return np.dot(_unitvec(mean1), _unitvec(mean2))

    def most_similar_to_given(self, key1, keys_list):
        keys_list = _word_list(keys_list, "keys_list")
        return keys_list[int(np.argmax([self.similarity(key1, key) for key in keys_list]))]

    def closer_than(self, key1, key2):
        """Every key closer to ``key1`` than ``key2`` is."""
        all_distances = self.distances(key1)
        e1_index = self.get_index(key1)
        e2_index = self.get_index(key2)
        closer = np.where(all_distances < all_distances[e2_index])[0]
        words = self.store.vocab.words_for(closer.tolist())
        return [words[index] for index in closer.tolist() if index != e1_index]

    def words_closer_than(self, word1, word2):
        return self.closer_than(word1, word2)

    def rank(self, key1, key2):
        return len(self.closer_than(key1, key2)) + 1

    def relative_cosine_similarity(self, wa, wb, topn=10):
        """Relative cosine similarity (Leeuwenberg et al. 2016), as gensim computes it."""
        sims = self.similar_by_word(wa, topn)
        if not sims:
            raise ValueError("Cannot calculate relative cosine similarity without any similar words.")
        return float(self.similarity(wa, wb)) / (sum(sim for _, sim in sims))

    # -- evaluation -----------------------------------------------------------------------

    def evaluate_word_analogies(self, analogies, restrict_vocab=300000, case_insensitive=True,
                                dummy4unknown=False, similarity_function="most_similar"):
        """gensim's return: (accuracy, sections), each section {'section', 'correct', 'incorrect'}
        with (a, b, c, expected) tuples; the last one is 'Total accuracy'."""
        if similarity_function not in ("most_similar", "most_similar_cosmul"):
            raise ValueError(f"similarity_function must be 'most_similar' or 'most_similar_cosmul', "
                             f"not {similarity_function!r}")
        result = self.store.evaluate_analogies(
            analogies, restrict=restrict_vocab, case_insensitive=case_insensitive, keep_outcomes=True,
            method="add" if similarity_function == "most_similar" else "mul", index=self.index or "exact")
        sections, by_name = [], {}
        for section, keys, right in result.outcomes:
            if section not in by_name:
                by_name[section] = {"section": section, "correct": [], "incorrect": []}
                sections.append(by_name[section])
            if right:
                by_name[section]["correct"].append(keys)
            elif right is not None or dummy4unknown:
                by_name[section]["incorrect"].append(keys)
        total = {"section": "Total accuracy",
                 "correct": [k for s in sections for k in s["correct"]],
                 "incorrect": [k for s in sections for k in s["incorrect"]]}
        answered = len(total["correct"]) + len(total["incorrect"])
        sections.append(total)
        return (len(total["correct"]) / answered if answered else 0.0), sections

    def evaluate_word_pairs(self, pairs, delimiter="\t", encoding="utf8", restrict_vocab=300000,
                            case_insensitive=True, dummy4unknown=False):
        """gensim's return: (Pearson result, Spearman result, percentage of pairs with unknown words)."""
        from scipy import stats

        if encoding.replace("-", "").lower() != "utf8":
            raise NotImplementedError("embstore reads word-pair files as UTF-8")
        result = self.store.evaluate_word_pairs(pairs, restrict=restrict_vocab, case_insensitive=case_insensitive,
                                                keep_pairs=True)  # the delimiter is recognised: tab, comma, space
        gold, model = list(result.gold), [float(s) for s in result.model]
        oov = result.pairs_skipped
        if dummy4unknown:
            gold += list(result.skipped_gold)
            model += [0.0] * len(result.skipped_gold)
        spearman = stats.spearmanr(gold, model)
        pearson = stats.pearsonr(gold, model)
        oov_ratio = float(oov) / (result.pairs_used + oov) * 100 if result.pairs_used + oov else 0.0
        return pearson, spearman, oov_ratio

    # -- changes (atomic store writes) -------------------------------------------------------

    def add_vector(self, key, vector) -> int:
        """Add one key with its vector; returns its index."""
        self.add_vectors([key], np.asarray(vector, dtype=REAL).reshape(1, -1))
        return self.get_index(key)

    def add_vectors(self, keys, weights, extras=None, replace=False) -> None:
        """Add keys with their vectors in one atomic change; existing keys keep their vectors
        unless ``replace``."""
        if extras:
            raise NotImplementedError("extra attributes cannot be stored; counts are set at load time")
        if isinstance(keys, _KEY_TYPES):
            keys, weights = [keys], np.asarray(weights, dtype=REAL).reshape(1, -1)
        weights = np.vstack([np.asarray(w, dtype=REAL) for w in weights]) if isinstance(weights, list) else weights
        if self._store is None:
            from ..writes.word_changes import check_new_word, checked_rows

            keys = [check_new_word(key, "add_vectors") for key in keys]
            checked_rows(keys, weights, self.vector_size, "add_vectors")  # the checks a store's add makes
            word2vec_files.create(self, keys, np.asarray(weights, dtype=REAL))
            return
        self.store.add_words(list(keys), weights, on_duplicate="replace" if replace else "skip")

    def __setitem__(self, keys, weights) -> None:
        if not isinstance(keys, list):
            keys = [keys]
            weights = np.asarray(weights, dtype=REAL).reshape(1, -1)
        self.add_vectors(keys, weights, replace=True)

    def save(self, *args, **kwargs):
        raise NotImplementedError("KeyedVectors.save is not available on an embstore store: " + NOT_FOR_A_STORE["save"])

    @classmethod
    def load(cls, *args, **kwargs):
        raise NotImplementedError("KeyedVectors.load is not available on an embstore store: " + NOT_FOR_A_STORE["load"])

    def __reduce__(self):
        raise NotImplementedError("a KeyedVectors view of a store cannot be pickled: " + NOT_FOR_A_STORE["save"])


def _word_list(words, argument: str) -> list:
    """gensim reads a bare string where a list is expected as its letters; refuse it instead."""
    if isinstance(words, (str, bytes)):
        raise TypeError(f"{argument} takes a list of keys, not a string: write [{words!r}] for one key")
    return list(words)


__all__ = ["KeyedVectors", "KeyToIndex", "QueryError", "NOT_FOR_A_STORE"]
