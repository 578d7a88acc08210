"""Questions in words: the one path words -> IDs (vocabulary) -> rows and search (searcher)
-> IDs -> words -> result, for single queries and batches alike. Semantics are gensim's.

On a fastText store a word outside the vocabulary is resolved to the vector built from its
character n-grams (``Resolved.built``, ID -1): it is searched with like any other word, but
being no stored row, it excludes nothing from the answers (as in gensim)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .errors import QueryError, UnknownWordError
from .results import Neighbour, QueryResult, Resolved
from .search.engine import mean_direction, unit
from .search.searcher import ANALOGY_METHODS, EXACT, Choice, Searcher
from .subwords.compose import SubwordVectors
from .vocabulary.vocabulary import Vocabulary, word_list, word_problem


def checked_k(k: object) -> int:
    """``k`` as a count of answers (0 gives none, as gensim's topn=0 does); QueryError otherwise."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise QueryError(f"k (the number of answers) must be a whole number, 0 or more, not {k!r:.40}")
    return int(k)


def checked_restrict(restrict: object) -> int | None:
    """``restrict`` (search only the N most frequent words) as a count, or None; QueryError otherwise."""
    if restrict is None:
        return None
    if isinstance(restrict, bool) or not isinstance(restrict, (int, np.integer)) or restrict < 1:
        raise QueryError(f"restrict must be a whole number of at least 1 (or None for every word), "
                         f"not {restrict!r:.40}")
    return int(restrict)


def _one_word(word: object, what: str) -> str:
    if not isinstance(word, str):
        raise TypeError(f"{what} takes words as strings, not {type(word).__name__} {word!r:.40}")
    return word


class WordQueries:
    """Nearest words, analogies, similarities and vectors of one store generation."""

    def __init__(self, vocabulary: Vocabulary, searcher: Searcher,
                 subwords: Callable[[], SubwordVectors | None] | None = None):
        self.vocabulary = vocabulary
        self.searcher = searcher
        self._subwords = subwords  # a fastText store's n-gram vectors (opened when first needed)

    # -- words to rows ----------------------------------------------------------------

    def _resolve(self, words: Sequence[str], on_unknown: str = "raise", case_insensitive: bool = False,
                 what: str = "words") -> list[Resolved | UnknownWordError]:
        """``Vocabulary.resolve_many``; on a fastText store a word not stored exactly gets the
        vector of its n-grams, as fastText and gensim give it, before any case-insensitive match
        (which is only for a word with no n-grams). Unknown words keep their suggestions."""
        if self._subwords is None:
            return self.vocabulary.resolve_many(words, on_unknown, case_insensitive)
        words = word_list(words, what)
        resolved = self.vocabulary.resolve_many(words, "report", False, suggest=False)
        unknown = [i for i, r in enumerate(resolved) if not isinstance(r, Resolved)]
        reasons: dict[int, str] = {}
        if unknown:
            builder = self._subwords()
            buildable = []
            for i in unknown:
                problem = word_problem(words[i])
                if problem:
                    reasons[i] = f"not a word: it {problem}"
                else:
                    buildable.append(i)
            asked = [words[i] for i in buildable]
            vectors, counts = builder.for_words(asked)
            lengths = np.linalg.norm(vectors.astype(np.float64), axis=1)
            for i, word, vector, count, length in zip(buildable, asked, vectors, counts.tolist(), lengths.tolist()):
                if count and 0 < length < float("inf"):
                    resolved[i] = Resolved(word, word, -1, built=vector, ngrams=count)
                elif count:
                    reasons[i] = f"its {count} n-gram rows add up to no usable vector (zero, or not finite)"
                else:
                    reasons[i] = (f"it has no character n-grams of {builder.minn} to {builder.maxn} characters to "
                                  "build a vector from")
        for i in unknown:
            if isinstance(resolved[i], Resolved):
                continue
            if case_insensitive:
                folded = self.vocabulary.resolve_many([words[i]], "report", True, suggest=False)[0]
                if isinstance(folded, Resolved):
                    resolved[i] = folded
                    continue
            resolved[i] = self.vocabulary.unknown(words[i], reasons.get(i))
            if on_unknown == "raise":
                raise resolved[i]
        return resolved

    def _unit_rows(self, resolved: Sequence[Resolved]) -> np.ndarray:
        """Unit-length rows of resolved words: stored rows, or the n-gram vectors of words outside the vocabulary."""
        if all(r.id >= 0 for r in resolved):
            return self.searcher.vectors([r.id for r in resolved])
        out = np.empty((len(resolved), self.searcher.dimension), dtype=np.float32)
        stored = [j for j, r in enumerate(resolved) if r.id >= 0]
        if stored:
            out[stored] = self.searcher.vectors([resolved[j].id for j in stored])
        for j, r in enumerate(resolved):
            if r.id < 0:
                out[j] = unit(r.built)
        return out

    def _result(self, query: str, hits: list[tuple[int, float]], resolved: Sequence[Resolved],
                choice: Choice | None = None, asked: tuple[int, int | None] | None = None) -> QueryResult:
        """``asked``: (k, id_limit) of the search, to say when an approximate index gave fewer answers."""
        words = self.vocabulary.words_for(i for i, _ in hits)
        if choice is not None and (choice.kind in self.searcher.damaged or  # found damaged by this search:
                                   choice.kind == EXACT and choice.note is None and self.searcher.sketch_problem):
            choice = self.searcher.choose(choice.kind)  # the exact rows answered, and the note says why
        notes = [r.note for r in resolved if r.note] + ([choice.note] if choice and choice.note else [])
        if asked is not None and choice is not None and choice.kind != EXACT:
            short = self._shortfall(choice.kind, len(hits), *asked, excluded=self._ids(resolved))
            notes += [short] if short else []
        return QueryResult(query, [Neighbour(words[i], float(s)) for i, s in hits], notes)

    def _shortfall(self, kind: str, found: int, k: int, id_limit: int | None, excluded: Sequence[int]) -> str | None:
        """A note when an approximate index answered with fewer than the ``k`` rows there are to
        give (an HNSW graph over many identical vectors can leave some unreachable)."""
        expected = self.searcher.rows_to_give(k, excluded, id_limit)
        if found >= expected:
            return None
        return (f"the {kind} index found only {found:,} of the {expected:,} answers asked for (an approximate "
                f"index can miss rows, many identical vectors for one); the exact rows find them all "
                f"(--index exact, or index='exact')")

    def _ids(self, resolved: Sequence[Resolved]) -> list[int]:
        """IDs of the resolved words that are stored rows (what a query excludes from its answers)."""
        return [r.id for r in resolved if r.id >= 0]

    def nearest(self, word: str, k: int = 10, restrict: int | None = None, index: str | None = None,
                case_insensitive: bool = False) -> QueryResult:
        """The ``k`` words most similar to ``word`` by cosine (gensim's ``most_similar(word)``)."""
        if not isinstance(word, str):
            raise TypeError(f"nearest takes one word as a string, not {type(word).__name__}; "
                            "use nearest_many for several")
        k, restrict = checked_k(k), checked_restrict(restrict)
        if restrict is None and k >= 1:  # the short path: a stored word through a current hnsw index
            choice = self.searcher.choose(index)
            if choice.kind == "hnsw" and not self.searcher.holds_rows("hnsw"):
                word_id = self.vocabulary.id_of(word)
                if word_id is not None:
                    hits = self.searcher.search_word("hnsw", word_id, k)
                    return self._result(word, hits, [Resolved(word, word, word_id)], choice, (k, None))
        return self.nearest_many([word], k=k, restrict=restrict, index=index, case_insensitive=case_insensitive)[0]

    def nearest_many(self, words: Sequence[str], k: int = 10, restrict: int | None = None,
                     on_unknown: str = "raise", index: str | None = None,
                     case_insensitive: bool = False) -> list[QueryResult]:
        """``nearest`` for many words in one batched search. With ``on_unknown="report"`` an
        unknown word gives a result with ``error`` set instead of raising UnknownWordError."""
        k, restrict = checked_k(k), checked_restrict(restrict)
        resolved = self._resolve(word_list(words, "nearest_many"), on_unknown, case_insensitive)
        choice = self.searcher.choose(index)
        if k == 0:
            return [QueryResult(r.asked, [], [r.note] if r.note else []) if isinstance(r, Resolved)
                    else QueryResult(r.word, [], error=str(r)) for r in resolved]
        id_limit = self.vocabulary.id_limit(restrict)
        hits: dict[int, list] = {}
        stored = [j for j, r in enumerate(resolved) if isinstance(r, Resolved) and r.id >= 0]
        if stored:  # stored rows: an HNSW search starts at each word's own node
            ids = [resolved[j].id for j in stored]
            hits.update(zip(stored, self.searcher.search(choice.kind, self.searcher.vectors(ids), k,
                                                         [{i} for i in ids], id_limit, row_ids=ids)))
        built = [j for j, r in enumerate(resolved) if isinstance(r, Resolved) and r.id < 0]
        if built:  # words outside the vocabulary: their n-gram vectors, excluding nothing
            queries = self._unit_rows([resolved[j] for j in built])
            hits.update(zip(built, self.searcher.search(choice.kind, queries, k, [set()] * len(built), id_limit)))
        return [self._result(r.asked, hits[j], [r], choice, (k, id_limit)) if isinstance(r, Resolved)
                else QueryResult(r.word, [], error=str(r)) for j, r in enumerate(resolved)]

    def nearest_to_vector(self, vector: Sequence[float] | np.ndarray, k: int = 10,
                          restrict: int | None = None, index: str | None = None) -> QueryResult:
        """The ``k`` words whose vectors have the highest cosine with ``vector``."""
        k, restrict = checked_k(k), checked_restrict(restrict)
        try:
            vector = np.asarray(vector, dtype=np.float32).ravel()
        except (TypeError, ValueError):
            raise QueryError(f"a vector is a sequence of {self.searcher.dimension} numbers") from None
        if vector.shape[0] != self.searcher.dimension:
            raise QueryError(f"the vector has {vector.shape[0]} values; this store's dimension is "
                             f"{self.searcher.dimension}")
        choice = self.searcher.choose(index)
        direction = unit(vector)
        if k == 0:
            return QueryResult("<vector>", [])
        id_limit = self.vocabulary.id_limit(restrict)
        hits = self.searcher.search(choice.kind, direction[None, :], k, [set()], id_limit)
        return self._result("<vector>", hits[0], [], choice, (k, id_limit))

    def most_similar(self, positive: Sequence[str] = (), negative: Sequence[str] = (), k: int = 10,
                     restrict: int | None = None, index: str | None = None,
                     case_insensitive: bool = False) -> QueryResult:
        """gensim's ``most_similar(positive, negative)``: cosine with the normalised mean direction."""
        k, restrict = checked_k(k), checked_restrict(restrict)
        pos = self._resolve(word_list(positive, "positive"), case_insensitive=case_insensitive)
        neg = self._resolve(word_list(negative, "negative"), case_insensitive=case_insensitive)
        direction = mean_direction(self._unit_rows(pos), self._unit_rows(neg))
        choice = self.searcher.choose(index)
        label = " + ".join(r.asked for r in pos) + "".join(f" - {r.asked}" for r in neg)
        if k == 0:
            return QueryResult(label, [], [r.note for r in pos + neg if r.note])
        id_limit = self.vocabulary.id_limit(restrict)
        hits = self.searcher.search(choice.kind, direction[None, :], k, [set(self._ids(pos + neg))], id_limit)
        return self._result(label, hits[0], pos + neg, choice, (k, id_limit))

    def analogy_many(self, questions: Sequence[tuple[str, str, str]], k: int = 10, method: str = "add",
                     restrict: int | None = None, on_unknown: str = "raise",
                     index: str | None = None, case_insensitive: bool = False) -> list[QueryResult]:
        """A is to B as C is to ? for many (a, b, c) questions, batched through one search:
        3CosAdd (``add``, gensim ``most_similar(positive=[b, c], negative=[a])``) or 3CosMul
        (``mul``, ``most_similar_cosmul``). Query words are never answers."""
        if method not in ANALOGY_METHODS:
            raise QueryError(f"method must be one of {', '.join(ANALOGY_METHODS)}")
        k, restrict = checked_k(k), checked_restrict(restrict)
        if isinstance(questions, (str, bytes, bytearray)):
            raise TypeError("analogy_many takes a list of (a, b, c) word triples, not a string")
        questions = [word_list(question, "each question of analogy_many") for question in questions]
        if any(len(question) != 3 for question in questions):
            raise TypeError("analogy_many takes a list of (a, b, c) word triples")
        flat = self._resolve([w for q in questions for w in q], on_unknown, case_insensitive)
        triples = [flat[i: i + 3] for i in range(0, len(flat), 3)]
        known = [t for t in triples if all(isinstance(r, Resolved) for r in t)] if k else []
        choice = self.searcher.choose(index) if method == "add" else Choice("exact")
        id_limit = self.vocabulary.id_limit(restrict)
        hits = iter(self._analogy_hits(known, k, method, id_limit, choice.kind))
        results = []
        for question, triple in zip(questions, triples):
            label = f"{question[0]} : {question[1]} :: {question[2]} : ?"
            errors = [r for r in triple if not isinstance(r, Resolved)]
            results.append(QueryResult(label, [], error=str(errors[0])) if errors
                           else self._result(label, next(hits) if k else [], triple, choice, (k, id_limit)))
        return results

    def _analogy_hits(self, triples: list[list[Resolved]], k: int, method: str, id_limit: int | None,
                      kind: str) -> list:
        """Hits for each (a, b, c) triple, in order: stored words through the ID batch engine,
        triples with a word outside the vocabulary through their vectors."""
        stored = [j for j, t in enumerate(triples) if all(r.id >= 0 for r in t)]
        built = [j for j, t in enumerate(triples) if any(r.id < 0 for r in t)]
        hits: dict[int, list] = {}
        if stored:
            ids = np.array([[r.id for r in triples[j]] for j in stored], dtype=np.int64).reshape(-1, 3)
            hits.update(zip(stored, self.searcher.analogy_hits(ids, k, method, id_limit, kind)))
        if built:
            terms = np.stack([self._unit_rows(triples[j]) for j in built])
            exclude = [{r.id for r in triples[j] if r.id >= 0} for j in built]
            hits.update(zip(built, self.searcher.analogy_hits_for_vectors(terms, k, exclude, method, id_limit, kind)))
        return [hits[j] for j in range(len(triples))]

    def similarity(self, first: str, second: str, case_insensitive: bool = False) -> float:
        """Cosine similarity of two words."""
        one, two = self._resolve([_one_word(first, "similarity"), _one_word(second, "similarity")],
                                 case_insensitive=case_insensitive)
        a, b = self._unit_rows([one, two])
        return float(self.searcher.checked_similarities(np.array([np.dot(a, b)]))[0])

    def doesnt_match(self, words: Sequence[str], case_insensitive: bool = False) -> tuple[str, list[Neighbour]]:
        """gensim's ``doesnt_match``: the word least similar to the mean of all of them.
        Returns (odd word, every word with its cosine to the mean, least similar first)."""
        resolved = self._resolve(word_list(words, "doesnt_match"), case_insensitive=case_insensitive)
        if len(resolved) < 2:
            raise QueryError("odd-one-out needs at least two words")
        vectors = self._unit_rows(resolved)
        scores = vectors @ mean_direction(vectors, vectors[:0])
        ranked = sorted(zip(scores.tolist(), [r.word for r in resolved]))
        return ranked[0][1], [Neighbour(w, float(s)) for s, w in ranked]

    def resolve_many(self, words: Sequence[str], on_unknown: str = "raise",
                     case_insensitive: bool = False) -> list[Resolved | UnknownWordError]:
        """Each word resolved to a stored word or, on a fastText store, to its n-gram vector."""
        return self._resolve(word_list(words, "resolve_many"), on_unknown, case_insensitive)

    def resolve(self, word: str, case_insensitive: bool = False) -> Resolved:
        return self._resolve([_one_word(word, "a word")], case_insensitive=case_insensitive)[0]

    def unit_vector(self, word: str, case_insensitive: bool = False) -> np.ndarray:
        """The unit-length vector of ``word`` (a copy)."""
        return np.array(self._unit_rows([self.resolve(word, case_insensitive)])[0])

    def vector(self, word: str, case_insensitive: bool = False) -> np.ndarray:
        """The vector of ``word`` exactly as loaded (float32, a copy). Stores written before 0.2
        and compressed stores keep unit rows: their vector is the unit row times the stored norm."""
        resolved = self.resolve(word, case_insensitive)
        if resolved.built is not None:
            return np.array(resolved.built)
        stored = self.searcher.stored_vectors([resolved.id])
        if stored is not None:
            return stored[0]
        norm = self.vocabulary.norms([resolved.id])[0]
        return (self.searcher.vectors([resolved.id])[0].astype(np.float64) * norm).astype(np.float32)
