"""embstore.KeyedVectors against gensim's KeyedVectors on the same file: every query method,
odd arguments, evaluation, counts and the methods a store refuses."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest
from gensim.models import KeyedVectors as GensimKeyedVectors
from gensim.test.utils import datapath

from embstore import KeyedVectors, QueryError, Store


@pytest.fixture(scope="module")
def pair(glove_small, tmp_path_factory):
    """(embstore view, gensim KeyedVectors) of the same 20,000 x 50 GloVe file."""
    db = tmp_path_factory.mktemp("view") / "v.db"
    ours = KeyedVectors.load_word2vec_format(glove_small, no_header=True, db=db)
    theirs = GensimKeyedVectors.load_word2vec_format(str(glove_small), no_header=True)
    yield ours, theirs
    ours.close()


def same(a, b, atol=1e-6):
    """Lists of (word, score) equal word for word, scores within ``atol``; arrays within ``atol``."""
    if isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, atol=atol)
        return
    assert [w for w, _ in a] == [w for w, _ in b]
    assert all(type(s) is float for _, s in a)
    np.testing.assert_allclose([s for _, s in a], [s for _, s in b], atol=atol)


QUERIES = [
    ("most_similar", dict(positive="king")),
    ("most_similar", dict(positive=["king", "woman"], negative=["man"], topn=7)),
    ("most_similar", dict(positive=[("king", 2.0), "woman"], negative=[("man", 0.5)])),
    ("most_similar", dict(positive=["paris"], topn=5, restrict_vocab=3000)),
    ("most_similar", dict(positive=["paris"], topn=5, clip_start=100, clip_end=9000)),
    ("most_similar", dict(positive=["paris"], topn=None)),
    ("most_similar", dict(positive=["water"], topn=0)),
    ("most_similar", dict(positive=["water"], topn=30_000)),
    ("most_similar", dict(positive=[17], topn=3)),
    ("most_similar", dict(positive=[np.int64(17)], topn=3)),
    ("most_similar_cosmul", dict(positive=["king", "woman"], negative=["man"])),
    ("most_similar_cosmul", dict(positive=["king", "woman", "crown"], negative=["man", "boy"], topn=4)),
    ("most_similar_cosmul", dict(positive="king", topn=None)),
    ("similar_by_word", dict(word="computer", topn=4)),
    ("similar_by_key", dict(key="computer", topn=4, restrict_vocab=5000)),
    ("distances", dict(word_or_vector="king", other_words=["queen", "car", "man"])),
    ("distances", dict(word_or_vector="king")),
    ("closer_than", dict(key1="king", key2="prince")),
    ("rank", dict(key1="king", key2="monarch")),
    ("doesnt_match", dict(words=["breakfast", "cereal", "dinner", "lunch"])),
    ("rank_by_centrality", dict(words=["breakfast", "cereal", "dinner", "lunch"])),
    ("most_similar_to_given", dict(key1="king", keys_list=["queen", "car", "apple"])),
    ("relative_cosine_similarity", dict(wa="king", wb="queen", topn=10)),
    ("get_mean_vector", dict(keys=["king", "queen"], weights=[1.0, -0.5], post_normalize=True)),
    ("get_mean_vector", dict(keys=["king", "nosuchword"], pre_normalize=False)),
    ("get_vector", dict(key="king", norm=True)),
]


@pytest.mark.parametrize("method, arguments", QUERIES, ids=[f"{m}-{i}" for i, (m, _) in enumerate(QUERIES)])
def test_each_query_equals_gensims(pair, method, arguments):
    ours, theirs = pair
    got, expected = getattr(ours, method)(**arguments), getattr(theirs, method)(**arguments)
    if isinstance(expected, list) and expected and isinstance(expected[0], tuple) and isinstance(expected[0][0], str):
        same(got, expected)
    elif isinstance(expected, list) and expected and isinstance(expected[0], tuple):  # rank_by_centrality
        assert [w for _, w in got] == [w for _, w in expected]
        np.testing.assert_allclose([s for s, _ in got], [s for s, _ in expected], atol=1e-6)
    elif isinstance(expected, np.ndarray):
        same(got, expected)
    else:
        assert type(got) is type(expected) and got == pytest.approx(expected, abs=1e-6)


def test_scalars_and_vectors_match_bit_for_bit(pair):
    ours, theirs = pair
    for word in ("king", "the", "kilometers"):
        assert ours[word].tobytes() == theirs[word].tobytes()
    assert ours[["king", "queen"]].tobytes() == theirs[["king", "queen"]].tobytes()
    for a, b in (("king", "queen"), ("car", "apple"), ("war", "war")):
        assert ours.similarity(a, b) == theirs.similarity(a, b)  # float32, the same steps as gensim
        assert ours.distance(a, b) == theirs.distance(a, b)
    assert ours.n_similarity(["king", "man"], ["queen", "woman"]) == theirs.n_similarity(["king", "man"],
                                                                                        ["queen", "woman"])
    assert np.array_equal(ours.get_normed_vectors()[:100], theirs.get_normed_vectors()[:100])
    assert np.array_equal(ours.norms, theirs.norms)
    assert ours.vectors.shape == theirs.vectors.shape and not ours.vectors.flags.writeable
    assert ours.index_to_key == theirs.index_to_key
    assert ours.key_to_index["king"] == theirs.key_to_index["king"] and len(ours.key_to_index) == len(theirs)
    assert str(ours) == str(theirs)


def test_the_same_exceptions_as_gensim(pair):
    ours, theirs = pair
    for view in (ours, theirs):
        with pytest.raises(KeyError):
            view["nosuchword"]
        with pytest.raises(KeyError):
            view.most_similar("nosuchword")
        with pytest.raises(KeyError):
            view.similarity("king", "nosuchword")
        with pytest.raises(ValueError):
            view.get_mean_vector([])
        with pytest.raises(ZeroDivisionError):
            view.n_similarity([], ["king"])
        assert "nosuchword" not in view and view.get_index("nosuchword", -1) == -1
    with pytest.raises(KeyError, match="did you mean 'king'"):  # embstore's KeyError also suggests
        ours["kingg"]


def test_doesnt_match_drops_unknown_words_with_a_warning(pair, caplog):
    ours, theirs = pair
    with caplog.at_level(logging.WARNING, logger="embstore"):
        assert ours.doesnt_match(["breakfast", "cereal", "dinner", "lunch", "qqqzz"]) == \
            theirs.doesnt_match(["breakfast", "cereal", "dinner", "lunch", "qqqzz"])
    assert "qqqzz" in caplog.text
    with pytest.raises(TypeError, match="not a string"):  # gensim would read 'king' as k, i, n, g
        ours.doesnt_match("king")


def test_evaluation_returns_what_gensim_returns(pair, tmp_path):
    ours, theirs = pair
    analogies = tmp_path / "questions.txt"  # 150 questions of each section: gensim asks them one by one
    sections: dict[str, list[str]] = {}
    for line in open(datapath("questions-words.txt"), encoding="utf-8"):
        if line.startswith(":"):
            current = sections.setdefault(line, [])
        elif len(current) < 150:
            current.append(line)
    analogies.write_text("".join(header + "".join(lines) for header, lines in sections.items()), encoding="utf-8")
    for kwargs in ({}, {"restrict_vocab": 5000, "case_insensitive": False}, {"dummy4unknown": True}):
        score, sections = ours.evaluate_word_analogies(analogies, **kwargs)
        expected_score, expected_sections = theirs.evaluate_word_analogies(analogies, **kwargs)
        assert score == pytest.approx(expected_score, abs=1e-12)
        assert [s["section"] for s in sections] == [s["section"] for s in expected_sections]
        for got, expected in zip(sections, expected_sections):
            assert got["correct"] == expected["correct"] and got["incorrect"] == expected["incorrect"]
    for pairs in ("wordsim353.tsv", "simlex999.txt"):
        for kwargs in ({}, {"dummy4unknown": True}, {"restrict_vocab": 3000}):
            pearson, spearman, oov = ours.evaluate_word_pairs(datapath(pairs), **kwargs)
            expected_pearson, expected_spearman, expected_oov = theirs.evaluate_word_pairs(datapath(pairs), **kwargs)
            assert pearson[0] == pytest.approx(expected_pearson[0], abs=1e-6)
            assert pearson[1] == pytest.approx(expected_pearson[1], rel=1e-4)
            assert spearman[0] == pytest.approx(expected_spearman[0], abs=1e-6)
            assert oov == pytest.approx(expected_oov)


def test_counts_load_save_and_attributes(tmp_path):
    source = datapath("word2vec_pre_kv_c")
    theirs = GensimKeyedVectors.load_word2vec_format(source)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(f"{w} {10 * (len(theirs) - i)}\n" for i, w in enumerate(theirs.index_to_key)),
                     encoding="utf-8")
    with_counts = GensimKeyedVectors.load_word2vec_format(source, fvocab=str(vocab))
    ours = KeyedVectors.load_word2vec_format(source, fvocab=vocab)
    plain = KeyedVectors.load_word2vec_format(source)
    try:
        for word in theirs.index_to_key[:20]:
            assert ours.get_vecattr(word, "count") == with_counts.get_vecattr(word, "count")
            assert plain.get_vecattr(word, "count") == theirs.get_vecattr(word, "count")  # gensim's stand-in
        for view, name in ((ours, "ours"), (with_counts, "theirs")):
            view.save_word2vec_format(str(tmp_path / f"{name}.bin"), fvocab=str(tmp_path / f"{name}.vocab"),
                                      binary=True)
        assert (tmp_path / "ours.bin").read_bytes() == (tmp_path / "theirs.bin").read_bytes()
        assert (tmp_path / "ours.vocab").read_text() == (tmp_path / "theirs.vocab").read_text()
    finally:
        ours.close()
        plain.close()


def test_an_empty_view_grows_and_its_folder_goes_with_it():
    view = KeyedVectors(4)
    assert len(view) == 0 and view.vectors.shape == (0, 4) and view.index_to_key == [] and "a" not in view
    with pytest.raises(KeyError):
        view["a"]
    view.add_vectors(["a", "b"], np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float64))
    view["c"] = np.array([1, 1, 0, 0])
    assert view.index_to_key == ["a", "b", "c"] and view.vectors.dtype == np.float32
    assert view.most_similar("c", topn=2)[0][1] == pytest.approx(np.sqrt(0.5))
    folder = view.store.path.parent
    view.close()
    assert not folder.exists()


def test_what_a_store_refuses_says_why(pair, tmp_path):
    ours, _ = pair
    for call in (lambda: ours.save(str(tmp_path / "x.kv")), lambda: KeyedVectors.load(str(tmp_path / "x.kv")),
                 lambda: pickle.dumps(ours), ours.unit_normalize_all, lambda: ours.init_sims(replace=True),
                 lambda: ours.vectors_for_all(["a"]), lambda: ours.set_vecattr("king", "count", 3),
                 lambda: ours.wmdistance(["a"], ["b"]), lambda: ours.resize_vectors()):
        with pytest.raises(NotImplementedError) as refused:
            call()
        assert len(str(refused.value)) > 40  # a sentence that says why
    with pytest.raises(NotImplementedError, match="float32"):
        KeyedVectors.load_word2vec_format(datapath("word2vec_pre_kv_c"), datatype=np.float16)


def test_a_view_of_an_open_store_follows_its_writes(store_copy):
    with Store.open(store_copy) as store:
        view = store.keyed_vectors()
        before = len(view)
        view.add_vector("brandnewword", np.ones(50))
        assert len(view) == before + 1 and view.index_to_key[-1] == "brandnewword"
        assert view.vectors.shape[0] == before + 1 and view.get_vecattr("brandnewword", "count") == 1
        view.close()
        assert len(store) == before + 1  # closing the view leaves the store open
        with pytest.raises(QueryError):
            store.keyed_vectors(index="hnsw").most_similar("king")  # no such index: said, not ignored


def test_view_fixes_found_by_a_hostile_run(pair, tmp_path, store_copy):
    ours, theirs = pair
    # get_vecattr reads cached counts (numpy ints, as gensim gives), not the catalog per call
    assert type(ours.get_vecattr("king", "count")) is type(theirs.get_vecattr("king", "count"))
    assert sorted(ours.index_to_key[:50], key=lambda k: -ours.get_vecattr(k, "count")) == ours.index_to_key[:50]
    # save_word2vec_format compresses by name, as gensim does
    ours.save_word2vec_format(str(tmp_path / "v.txt.gz"), fvocab=str(tmp_path / "vocab.gz"))
    back = GensimKeyedVectors.load_word2vec_format(str(tmp_path / "v.txt.gz"), fvocab=str(tmp_path / "vocab.gz"))
    assert back.index_to_key[:5] == theirs.index_to_key[:5] and np.array_equal(back.vectors, theirs.vectors)
    # the first add to an empty view checks words as any add does
    empty = KeyedVectors(3)
    with pytest.raises(QueryError, match="white space"):
        empty.add_vectors(["a b"], np.ones((1, 3)))
    empty.close()
    # through an approximate index: clip_end is honoured, and k beyond its candidate list is answered
    with Store.open(store_copy) as store:
        store.build_index("hnsw", m=8, ef_construction=32)
        view = store.keyed_vectors(index="hnsw")
        exact = store.keyed_vectors()
        assert [w for w, _ in view.most_similar("king", topn=3, clip_end=100)] == \
            [w for w, _ in exact.most_similar("king", topn=3, clip_end=100)]
        assert len(view.most_similar(positive=[store.vector("king")], topn=3000)) == 3000
        assert len(store.nearest_to_vector(store.vector("king"), k=3000, index="hnsw")) == 3000
