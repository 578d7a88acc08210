"""fastText native .bin models: loading, vectors for any word, queries, changes, damage.

The reference is gensim's ``load_facebook_vectors`` on the same file, for gensim's own
fixture models and for models trained here with gensim's ``FastText`` and saved with
``save_facebook_model``.
"""

from __future__ import annotations

import json
import random
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

from embstore import FormatError, Store, UnknownWordError
from embstore.storage.check import check_store
from embstore.repair import repair_store

fasttext = pytest.importorskip("gensim.models.fasttext")
from gensim.test.utils import datapath  # noqa: E402

FIXTURES = [  # (file, encoding, load options)
    ("lee_fasttext.bin", "utf-8", {}),            # the format before version numbers
    ("lee_fasttext_new.bin", "utf-8", {}),        # version 11
    ("crime-and-punishment.bin", "utf-8", {}),    # version 12, Cyrillic words
    ("non_ascii_fasttext.bin", "utf-8", {}),
    ("cp852_fasttext.bin", "cp852", {}),
    ("toy-model.bin", "utf-8", {}),               # cbow
    ("toy-model-pretrained.bin", "utf-8", {"bad_words": "skip", "zero_vectors": "skip"}),  # an empty word
]


def reference(name: str, encoding: str = "utf-8"):
    return fasttext.load_facebook_vectors(datapath(name) if "/" not in name else name, encoding=encoding)


def oov_words(vocabulary: list[str], count: int, seed: int = 0) -> list[str]:
    """Words built from the vocabulary's own characters (and some foreign ones) that it does not hold."""
    rng = random.Random(seed)
    alphabet = sorted(set("".join(vocabulary)) | set("éßü日本語😀"))
    known = set(vocabulary)
    found: list[str] = []
    while len(found) < count:
        if rng.random() < 0.5:  # a misspelt or inflected vocabulary word
            word = rng.choice(vocabulary) + rng.choice(["s", "ing", "x", "é", "日"])
        else:
            word = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 14)))
        if word not in known and word.strip() == word and word:
            found.append(word)
    return found


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    """A skipgram model trained here with gensim on a generated corpus, saved in fastText's format."""
    rng = random.Random(7)
    stems = ["king", "queen", "man", "woman", "prince", "princess", "boy", "girl", "city", "town", "river",
             "lake", "run", "walk", "swim", "fly", "red", "blue", "green", "über", "café", "naïve", "日本"]
    suffixes = ["", "s", "ing", "ed", "ly", "er"]
    sentences = [[rng.choice(stems) + rng.choice(suffixes) for _ in range(12)] for _ in range(600)]
    model = fasttext.FastText(vector_size=16, window=3, min_count=2, min_n=2, max_n=5, bucket=5000, epochs=3,
                              workers=1, seed=3)
    model.build_vocab(corpus_iterable=sentences)
    model.train(corpus_iterable=sentences, total_examples=len(sentences), epochs=model.epochs)
    path = tmp_path_factory.mktemp("ft") / "trained.bin"
    fasttext.save_facebook_model(model, str(path))
    return path


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory, trained_model):
    path = tmp_path_factory.mktemp("ftstore") / "trained.db"
    Store.load(trained_model, path)
    return path


@pytest.mark.parametrize("name, encoding, options", FIXTURES, ids=[f[0] for f in FIXTURES])
def test_fixture_models_give_gensims_vectors_for_every_word(tmp_path, name, encoding, options):
    kv = reference(name, encoding)
    report = Store.load(datapath(name), tmp_path / "ft.db", encoding=encoding, **options)
    assert report.format == "fasttext-bin"
    with Store.open(tmp_path / "ft.db", verify=True) as store:
        words = store.vocabulary()
        assert words == [w for w in kv.index_to_key if w]  # the empty word is skipped, as asked
        stored = np.stack([store.vector(w) for w in words])
        expected = np.stack([kv[w] for w in words])
        assert np.array_equal(stored, expected)  # fastText's sums, in its order: the same bits
        unknown = oov_words(words, 300, seed=len(name))
        built = np.stack([store.vector(w) for w in unknown])
        assert np.allclose(built, np.stack([kv[w] for w in unknown]), rtol=0, atol=1e-6)
        result = store.nearest_many(["", "a b", words[0]], on_unknown="report")  # never words, n-grams or not
        assert "unknown word '' (not a word: it is empty)" == result[0].error
        assert "not a word: it holds U+0020 SPACE" in result[1].error
        counts = dict(store.catalog.conn.execute("SELECT word, count FROM words"))
        assert all(counts[w] == kv.get_vecattr(w, "count") for w in words)


def test_trained_model_answers_equal_gensims(trained_model, trained_store):
    kv = reference(str(trained_model))
    with Store.open(trained_store) as store:
        assert store.has_subwords
        vocabulary = store.vocabulary()
        unknown = oov_words(vocabulary, 200, seed=1) + ["kingdomly", "ÜBERING", "日本語s", "x"]
        assert np.allclose(np.stack([store.vector(w) for w in unknown]), np.stack([kv[w] for w in unknown]),
                           rtol=0, atol=1e-6)
        for word in unknown[:40] + vocabulary[:10]:
            ours = store.nearest(word, k=10)
            theirs = kv.most_similar(word, topn=15)
            _same_answers(ours, theirs, 10)
            if word not in vocabulary:
                assert ours.notes == [f"{word!r} is not in the vocabulary: vector built from its "
                                      f"{len(fasttext.ft_ngram_hashes(word, 2, 5, 5000))} character n-grams"]
        a, b = vocabulary[0], vocabulary[1]
        for c in unknown[:10]:
            _same_answers(store.analogy(a, b, c, k=5), kv.most_similar(positive=[b, c], negative=[a], topn=10), 5)
            _same_answers(store.analogy(a, b, c, k=5, method="mul"),
                          kv.most_similar_cosmul(positive=[b, c], negative=[a], topn=10), 5)
            _same_answers(store.most_similar([c, a], [b], k=5), kv.most_similar(positive=[c, a], negative=[b], topn=10), 5)
            assert store.similarity(a, c) == pytest.approx(float(kv.similarity(a, c)), abs=1e-6)
        group = [vocabulary[2], vocabulary[3], unknown[5], unknown[6]]
        assert store.doesnt_match(group)[0] == kv.doesnt_match(group)


def _same_answers(ours, theirs, k: int) -> None:
    """Our first ``k`` are gensim's, in the same order with scores within 1e-5, apart from exact
    ties. ``theirs`` runs past ``k``: a word tied with gensim's last may come just after it
    (seen with a model trained on another machine, whose neighbours all scored 0.9999...)."""
    assert len(ours.neighbours) == k and len(theirs) > k
    for (word, score), (their_word, their_score) in zip(ours.neighbours, theirs):
        assert score == pytest.approx(their_score, abs=1e-5)
        if word != their_word:
            tied = [s for w, s in theirs if w == word]
            assert tied and tied[0] == pytest.approx(their_score, abs=1e-6), (word, their_word)


def test_batches_mix_stored_and_built_words(trained_store):
    with Store.open(trained_store) as store:
        vocabulary = store.vocabulary()
        asked = [vocabulary[0], "zzqqxy", vocabulary[5], "kingzzz", "k"]
        results = store.nearest_many(asked, k=5, on_unknown="report")
        for word, result in zip(asked, results):
            assert result.neighbours == store.nearest(word, k=5).neighbours
            if word in vocabulary:
                assert word not in result.words()  # a stored word never answers itself
        # A built word's vector is a real query: brute force over the rows agrees.
        rows = np.array(store.searcher.rows, dtype=np.float64)
        query = store.vector("kingzzz").astype(np.float64)
        scores = rows @ query / np.linalg.norm(rows, axis=1) / np.linalg.norm(query)
        expected = [vocabulary[i] for i in np.argsort(-scores, kind="stable")[:5]]
        assert store.nearest("kingzzz", k=5).words() == expected
        triples = [(vocabulary[0], vocabulary[1], "kingzzz"), (vocabulary[0], vocabulary[1], vocabulary[2])]
        batch = store.analogy_many(triples, k=3)
        assert [r.neighbours for r in batch] == [store.analogy(*t, k=3).neighbours for t in triples]


def test_cli_accepts_words_outside_the_vocabulary(trained_store, run):
    result = run("nearest", "kingzzz", "--db", str(trained_store), "-k", "3")
    assert result.exit_code == 0, result.output
    assert "note: 'kingzzz' is not in the vocabulary: vector built from its" in result.stderr
    for command in (["analogy", "man", "king", "womanzz"], ["similarity", "king", "kingzz"],
                    ["odd-one-out", "king", "queen", "riverzz"], ["vector", "kingzz"]):
        result = run(*command, "--db", str(trained_store))
        assert result.exit_code == 0, result.output
        assert "vector built from its" in result.stderr
    info = run("info", "--db", str(trained_store))
    assert "5,000 n-gram buckets of 2-5 characters" in info.stdout
    exported = run("export", "-", "--format", "word2vec", "--db", str(trained_store))
    assert exported.exit_code == 0 and "not part of the word2vec format" in exported.stderr


def test_a_word_with_no_ngram_long_enough_stays_unknown_with_the_reason(tmp_path):
    data = bytearray(open(datapath("crime-and-punishment.bin"), "rb").read())
    data[44:48] = struct.pack("<i", 5)  # minn 5 (maxn 6): '<ab>' has no n-gram
    model = tmp_path / "minn5.bin"
    model.write_bytes(bytes(data))
    kv = reference(str(model))
    Store.load(model, tmp_path / "m.db")
    with Store.open(tmp_path / "m.db") as store:
        assert np.array_equal(store.vector("abcdef"), kv["abcdef"])
        with pytest.raises(UnknownWordError, match=r"no character n-grams of 5 to 6 characters"):
            store.nearest("ab")
        assert not kv["ab"].any()  # gensim gives the origin, which has no direction to search with


def test_the_ngram_vector_comes_before_a_case_insensitive_match(trained_store, trained_model, run):
    """On a fastText store 'King' (not stored) is its n-gram vector, as in gensim, even where the
    CLI would otherwise fall back to 'king'."""
    kv = reference(str(trained_model))
    with Store.open(trained_store) as store:
        assert "King" not in store and "king" in store
        ours = store.nearest("King", k=5, case_insensitive=True)
        _same_answers(ours, kv.most_similar("King", topn=10), 5)
        assert "vector built from its" in ours.notes[0]
    result = run("nearest", "King", "-k", "3", "--json", "--db", str(trained_store))
    assert [n["word"] for n in json.loads(result.stdout)["neighbours"]] == [w for w, _ in kv.most_similar("King", topn=3)]


def test_stores_without_subwords_still_refuse_unknown_words(small_store):
    with pytest.raises(UnknownWordError, match="did you mean") as caught:
        small_store.nearest("kingg")
    assert "n-grams" not in str(caught.value)


def test_the_gensim_view_takes_words_outside_the_vocabulary(trained_model, trained_store):
    from embstore import KeyedVectors

    kv = reference(str(trained_model))
    view = KeyedVectors.open(trained_store)
    assert np.allclose(view["kingzzz"], kv["kingzzz"], atol=1e-6)
    assert "kingzzz" in view and "kingzzz" not in view.key_to_index  # as FastTextKeyedVectors
    for ours, theirs in [(view.most_similar("kingzzz", topn=5), kv.most_similar("kingzzz", topn=5)),
                         (view.most_similar_cosmul(["kingzzz", "queen"], ["man"], topn=5),
                          kv.most_similar_cosmul(["kingzzz", "queen"], ["man"], topn=5)),
                         (view.most_similar(["kingzzz", "queen"], ["man"], topn=5),
                          kv.most_similar(["kingzzz", "queen"], ["man"], topn=5))]:
        assert [w for w, _ in ours] == [w for w, _ in theirs]
        assert np.allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)
    assert view.doesnt_match(["king", "queen", "riverzz"]) == kv.doesnt_match(["king", "queen", "riverzz"])


def test_changes_keep_the_ngram_rows(tmp_path, trained_model):
    db = tmp_path / "ft.db"
    Store.load(trained_model, db)
    kv = reference(str(trained_model))
    with Store.open(db) as store:
        word = store.vocabulary()[3]
        store.delete_words([word])
        # Now outside the vocabulary: its vector is built from its n-grams, as gensim would for it.
        assert not np.array_equal(store.vector(word), kv[word])
        ngram_only = np.mean([kv.vectors_ngrams[h] for h in fasttext.ft_ngram_hashes(word, 2, 5, 5000)], axis=0)
        assert np.allclose(store.vector(word), ngram_only, atol=1e-6)
        store.add_words(["brandnew"], np.ones((1, 16), dtype=np.float32))
        assert np.array_equal(store.vector("brandnew"), np.ones(16, dtype=np.float32))
        store.rename_word(store.vocabulary()[0], "renamed")
        assert store.nearest("kingzzz", k=3).neighbours
    assert check_store(db).ok, check_store(db).problems


def _ngram_file(db):
    return next(db.parent.glob(db.name + ".ngrams.*.f32"))


def _store_of_a_copied_model(tmp_path, trained_model):
    """(model copy, store loaded from it, the n-gram vector of 'kingzzz' there)."""
    model = tmp_path / "model.bin"
    shutil.copy(trained_model, model)
    db = tmp_path / "ft.db"
    Store.load(model, db)
    with Store.open(db) as store:
        return model, db, store.vector("kingzzz")


def test_check_finds_a_flipped_byte_and_repair_copies_the_rows_again(tmp_path, trained_model):
    model, db, expected = _store_of_a_copied_model(tmp_path, trained_model)
    path = _ngram_file(db)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    report = check_store(db)
    assert not report.ok and any("n-gram rows" in p for p in report.problems)
    with Store.open(db) as store:  # vocabulary words still answer; the damage shows only when it matters
        assert store.nearest(store.vocabulary()[0], k=2).neighbours
    repaired = repair_store(db)
    assert any("copied the n-gram rows again" in a for a in repaired.actions), repaired
    assert check_store(db).ok
    with Store.open(db, verify=True) as store:
        assert np.array_equal(store.vector("kingzzz"), expected)
    # Without the model, repair says what to do and changes nothing.
    _ngram_file(db).write_bytes(b"\0" * 100)
    model.unlink()
    repaired = repair_store(db)
    assert any("is not available" in r for r in repaired.remaining), repaired


def test_a_truncated_ngram_file_is_an_error_not_a_crash(tmp_path, trained_model):
    db = tmp_path / "ft.db"
    Store.load(trained_model, db)
    path = _ngram_file(db)
    with Store.open(db) as store:
        with open(path, "r+b") as handle:
            handle.truncate(1000)
        with pytest.raises(Exception) as caught:
            store.vector("kingzzz")
        assert "n-gram file" in str(caught.value)
        assert store.nearest(store.vocabulary()[0], k=1).neighbours  # the rest still works


def test_a_reader_keeps_its_ngram_rows_while_a_writer_replaces_the_store(tmp_path, trained_model):
    db = tmp_path / "ft.db"
    Store.load(trained_model, db)
    other = datapath("lee_fasttext_new.bin")
    with Store.open(db) as reader:
        before = reader.vector("kingzzz")  # maps the n-gram file
        Store.load(other, db, replace=True)
        assert np.array_equal(reader.vector("kingzzz"), before)  # the old generation, whole
        assert reader.refresh()
        assert reader.dimension == 10 and np.allclose(reader.vector("kingzzz"), reference("lee_fasttext_new.bin")["kingzzz"],
                                                      atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ft.db.ngrams")) == [_ngram_file(db).name]


def _corrupt(source, tmp_path, name, change):
    data = bytearray(source.read_bytes())
    change(data)
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("cut", [6, 40, 300, 5000, -4000, -1])
def test_a_truncated_model_is_refused_and_leaves_no_store(tmp_path, cut):
    source = datapath("lee_fasttext_new.bin")
    data = open(source, "rb").read()
    path = tmp_path / "cut.bin"
    path.write_bytes(data[:cut])
    with pytest.raises(FormatError, match="truncated|not a fastText|damaged|not plausible|expected"):
        Store.load(path, tmp_path / "cut.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.bin"]


def test_unsupported_models_are_named(tmp_path):
    with pytest.raises(FormatError, match="supervised fastText model"):
        Store.load(datapath("pang_lee_polarity_fasttext.bin"), tmp_path / "a.db")
    source = open(datapath("crime-and-punishment.bin"), "rb").read()
    newer = tmp_path / "v13.bin"
    newer.write_bytes(source[:4] + struct.pack("<i", 13) + source[8:])
    with pytest.raises(FormatError, match="file format version 13.*versions 11 and 12"):
        Store.load(newer, tmp_path / "b.db")
    # The quantize flag before the input matrix: a .ftz model.
    reader_offset = _input_matrix_flag_offset(datapath("crime-and-punishment.bin"))
    quantized = tmp_path / "q.ftz"
    quantized.write_bytes(source[:reader_offset] + b"\x01" + source[reader_offset + 1:])
    with pytest.raises(FormatError, match="quantized"):
        Store.load(quantized, tmp_path / "c.db")
    import gzip

    packed = tmp_path / "m.bin.gz"
    packed.write_bytes(gzip.compress(source))
    with pytest.raises(FormatError, match="compressed fastText model"):
        Store.load(packed, tmp_path / "d.db")
    assert not any(p.suffix == ".db" for p in tmp_path.iterdir())


def _input_matrix_flag_offset(path) -> int:
    from embstore.formats.fasttext_model import FastTextModelReader

    with FastTextModelReader(path) as reader:
        return reader.matrix_offset - 17  # the bool, then two int64


def test_cli_errors_for_bad_models_are_one_line(tmp_path):
    cut = tmp_path / "cut.bin"
    cut.write_bytes(open(datapath("lee_fasttext_new.bin"), "rb").read()[:-100])
    completed = subprocess.run([sys.executable, "-m", "embstore_cli", "load", str(cut), "--db", str(tmp_path / "x.db")],
                               capture_output=True, text=True)
    assert completed.returncode == 1
    assert completed.stderr.count("Error:") == 1 and "Traceback" not in completed.stderr
    assert "truncated" in completed.stderr and "fetch the model again" in completed.stderr


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=14), max_size=20), st.integers(0, 4), st.integers(0, 4),
       st.sampled_from([1, 7, 1000, 2_000_000]))
def test_ngram_buckets_equal_gensims_for_any_text(words, minn, extra, bucket):
    from embstore.subwords.ngrams import buckets_of_word, word_ngram_buckets

    maxn = minn + extra
    expected = [fasttext.ft_ngram_hashes(w, minn, maxn, bucket) for w in words]
    found, offsets = word_ngram_buckets(words, minn, maxn, bucket)
    assert [found[offsets[i]: offsets[i + 1]].tolist() for i in range(len(words))] == expected
    assert [buckets_of_word(w, minn, maxn, bucket) for w in words] == expected


def _model_bytes(words, dimension, bucket, rows=None):
    rng = np.random.default_rng(0)
    count = len(words) + bucket
    matrix = rng.standard_normal((count, dimension)).astype(np.float32) if rows is None else rows
    return b"".join([
        struct.pack("<2i", 793712314, 12), struct.pack("<12id", dimension, 5, 5, 1, 5, 1, 2, 2, bucket, 3, 6, 100, 1e-4),
        struct.pack("<3iqq", len(words), len(words), 0, 10, -1),
        b"".join(w.encode() + b"\0" + struct.pack("<qb", 1, 0) for w in words),
        b"\0" + struct.pack("<2q", count, dimension), matrix.tobytes(),
        b"\0" + struct.pack("<2q", len(words), dimension), np.zeros((len(words), dimension), np.float32).tobytes()])


@pytest.mark.parametrize("row, what", [(1, "entry 2: the vector of 'beta' is not finite: its word row"),
                                       (3 + 7, "n-gram bucket row 7 holds NaN")])
def test_a_model_with_nan_rows_is_refused_by_entry_or_row(tmp_path, row, what):
    rows = np.random.default_rng(0).standard_normal((3 + 40, 4)).astype(np.float32)
    rows[row, 2] = np.nan
    model = tmp_path / "nan.bin"
    model.write_bytes(_model_bytes(["alpha", "beta", "gamma"], 4, 40, rows))
    with pytest.raises(FormatError, match=what):
        Store.load(model, tmp_path / "nan.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.bin"]


def test_a_model_wider_than_a_store_is_refused(tmp_path):
    model = tmp_path / "wide.bin"
    model.write_bytes(_model_bytes(["a", "b"], 70_000, 1))
    with pytest.raises(FormatError, match="70,000 values; a store holds at most 65,536"):
        Store.load(model, tmp_path / "wide.db")


@pytest.mark.parametrize("damage", ["UPDATE subword_files SET file = '../x'", "DELETE FROM subword_files"])
def test_repair_never_removes_the_file_that_holds_the_ngram_rows(tmp_path, trained_model, damage):
    import sqlite3

    model, db, expected = _store_of_a_copied_model(tmp_path, trained_model)
    kept = _ngram_file(db)
    conn = sqlite3.connect(db)
    conn.execute(damage)
    conn.commit()
    conn.close()
    assert not check_store(db).ok  # a lost record is damage, not a leftover
    moved = tmp_path / "away.bin"
    model.rename(moved)  # without the model, nothing may be removed
    repaired = repair_store(db)
    assert kept.exists()
    if damage.startswith("UPDATE"):  # the record's checksum finds the file again
        assert check_store(db).ok, repaired
    else:
        assert any("not available" in r for r in repaired.remaining), repaired
        moved.rename(model)  # with it, the rows are copied again
        repaired = repair_store(db)
        assert check_store(db).ok, repaired
    with Store.open(db, verify=True) as store:
        assert np.array_equal(store.vector("kingzzz"), expected)
