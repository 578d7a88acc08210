"""Query answers against numpy brute force and against gensim on the same real vectors."""

from __future__ import annotations

import numpy as np
import pytest

from embstore import QueryError, UnknownWordError

WORDS = ["king", "paris", "computer", "good", "run", "water", "france", "science"]


def unit_rows(matrix):
    return matrix / np.linalg.norm(matrix.astype(np.float64), axis=1, keepdims=True)


def assert_same_ranking(ours, theirs, tolerance=1e-5):
    """Same words in the same order with scores within ``tolerance``; near-ties may swap."""
    assert len(ours) == len(theirs)
    for (word, score), (their_word, their_score) in zip(ours, theirs):
        assert abs(score - their_score) <= tolerance, (word, score, their_word, their_score)
        if word != their_word:
            their_scores = dict(theirs)
            assert word in their_scores and abs(their_scores[word] - score) <= tolerance, (word, their_word)


def pairs(result):
    return [(n.word, n.score) for n in result.neighbours]


def test_nearest_matches_numpy_brute_force(small_store, small_matrix):
    words, matrix = small_matrix
    rows = unit_rows(matrix)
    index = {w: i for i, w in enumerate(words)}
    for word in WORDS:
        scores = rows @ rows[index[word]]
        scores[index[word]] = -np.inf
        order = np.argsort(-scores)[:10]
        expected = [(words[i], float(scores[i])) for i in order]
        assert_same_ranking(pairs(small_store.nearest(word, k=10)), expected)


def test_nearest_many_equals_single_queries(small_store):
    batched = small_store.nearest_many(WORDS, k=7)
    for word, result in zip(WORDS, batched):
        assert_same_ranking(pairs(result), pairs(small_store.nearest(word, k=7)), tolerance=1e-6)


def test_nearest_matches_gensim(small_store, gensim_small):
    for word in WORDS:
        assert_same_ranking(pairs(small_store.nearest(word, k=10)), gensim_small.most_similar(word, topn=10))


def test_restrict_matches_gensim_restrict_vocab(small_store, gensim_small):
    for word in ["king", "science"]:
        ours = pairs(small_store.nearest(word, k=10, restrict=2000))
        assert_same_ranking(ours, gensim_small.most_similar(word, topn=10, restrict_vocab=2000))
        assert all(gensim_small.key_to_index[w] < 2000 for w, _ in ours)


@pytest.mark.parametrize("a,b,c", [("man", "king", "woman"), ("france", "paris", "italy"), ("good", "better", "bad")])
def test_analogy_add_matches_gensim(small_store, gensim_small, a, b, c):
    ours = pairs(small_store.analogy(a, b, c, k=10, method="add"))
    assert_same_ranking(ours, gensim_small.most_similar(positive=[b, c], negative=[a], topn=10))
    assert not {a, b, c} & {w for w, _ in ours}


@pytest.mark.parametrize("a,b,c", [("man", "king", "woman"), ("france", "paris", "italy")])
def test_analogy_mul_matches_gensim(small_store, gensim_small, a, b, c):
    ours = pairs(small_store.analogy(a, b, c, k=10, method="mul"))
    assert_same_ranking(ours, gensim_small.most_similar_cosmul(positive=[b, c], negative=[a], topn=10))


def test_king_queen_analogy_on_real_vectors(small_store):
    assert small_store.analogy("man", "king", "woman", k=1).neighbours[0].word == "queen"


def test_analogy_many_batches_both_methods(small_store):
    questions = [("man", "king", "woman"), ("france", "paris", "italy"), ("big", "bigger", "small")]
    for method in ("add", "mul"):
        batched = small_store.analogy_many(questions, k=5, method=method)
        single = [small_store.analogy(*q, k=5, method=method) for q in questions]
        for ours, theirs in zip(batched, single):
            assert_same_ranking(pairs(ours), pairs(theirs), tolerance=1e-6)


def test_similarity_and_odd_one_out_match_gensim(small_store, gensim_small):
    for a, b in [("king", "queen"), ("water", "computer"), ("good", "bad")]:
        assert small_store.similarity(a, b) == pytest.approx(float(gensim_small.similarity(a, b)), abs=1e-6)
    for group in (["breakfast", "cereal", "dinner", "lunch"], ["france", "germany", "italy", "banana"]):
        odd, ranked = small_store.doesnt_match(group)
        assert odd == gensim_small.doesnt_match(group)
        assert ranked[0].word == odd


def test_nearest_to_vector_and_vector_roundtrip(small_store, small_matrix):
    words, matrix = small_matrix
    king = matrix[words.index("king")]
    np.testing.assert_allclose(small_store.vector("king"), king, rtol=1e-6, atol=1e-7)
    result = small_store.nearest_to_vector(king * 3.0, k=3)
    assert result.neighbours[0].word == "king"
    assert result.neighbours[0].score == pytest.approx(1.0, abs=1e-6)


def test_case_folded_fallback_is_asked_for_and_says_so(small_store):
    result = small_store.nearest("KING", k=3, case_insensitive=True)
    assert pairs(result) == pairs(small_store.nearest("king", k=3))
    assert result.notes and "'king'" in result.notes[0]
    assert small_store.similarity("KING", "Queen", case_insensitive=True) == small_store.similarity("king", "queen")
    # Without asking, the API is strict, as gensim is: 'KING' is not in the store.
    assert "KING" not in small_store
    for query in (lambda: small_store.nearest("KING"), lambda: small_store.vector("KING"),
                  lambda: small_store.most_similar(["KING"]), lambda: small_store.analogy("man", "KING", "woman"),
                  lambda: small_store.similarity("KING", "queen"), lambda: small_store.doesnt_match(["KING", "a"])):
        with pytest.raises(KeyError, match="unknown word 'KING'; did you mean 'king'"):
            query()


def test_unknown_word_suggests_close_words(small_store):
    with pytest.raises(UnknownWordError) as caught:
        small_store.nearest("kingg")
    assert caught.value.word == "kingg"
    assert "king" in caught.value.suggestions
    assert "did you mean" in str(caught.value)


def test_bad_queries_raise_query_error(small_store):
    with pytest.raises(QueryError):
        small_store.nearest_to_vector([0.0] * 50)
    with pytest.raises(QueryError):
        small_store.nearest_to_vector([1.0] * 3)
    with pytest.raises(QueryError):
        small_store.doesnt_match(["king"])
    with pytest.raises(QueryError):
        small_store.analogy("man", "king", "woman", method="sub")


def test_python_api_container_protocol(small_store, small_matrix):
    words, _ = small_matrix
    assert len(small_store) == len(words)
    assert "king" in small_store and "kingg" not in small_store and 3 not in small_store
    assert list(small_store)[:5] == words[:5]
    assert sum(1 for _ in small_store) == len(words)
