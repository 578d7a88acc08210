"""Round trips through every export format, and gensim reading what we write."""

from __future__ import annotations

import numpy as np
import pytest

from embstore import Store, UnknownWordError
from embstore.formats import read_embeddings

FORMATS = {"word2vec": "out.w2v.txt", "word2vec-bin": "out.bin", "glove": "out.glove.txt.gz", "npy": "out.npy"}


@pytest.mark.parametrize("format_name", sorted(FORMATS))
def test_round_trip_through_each_format(run, tmp_path, small_store_path, small_matrix, format_name):
    words, matrix = small_matrix
    out = tmp_path / FORMATS[format_name]
    result = run("export", out, "--format", format_name, "--db", small_store_path)
    assert result.exit_code == 0, result.output
    if format_name == "npy":
        loaded = np.load(out)
        vocab = (tmp_path / "out.vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
        assert vocab == words
        np.testing.assert_allclose(loaded, matrix, rtol=1e-6, atol=1e-7)
        return
    reloaded_words, reloaded = read_embeddings(out)
    assert reloaded_words == words
    np.testing.assert_allclose(reloaded, matrix, rtol=1e-6, atol=1e-7)
    # And back into a store: the same answers as the original.
    db = tmp_path / "again.db"
    assert run("load", out, "--db", db).exit_code == 0
    with Store.open(db) as again, Store.open(small_store_path) as original:
        for word in ("king", "water"):
            assert [n.word for n in again.nearest(word).neighbours] == [n.word for n in original.nearest(word).neighbours]


@pytest.mark.parametrize("binary", [False, True])
def test_gensim_reads_our_word2vec(tmp_path, small_store, gensim_small, binary):
    from gensim.models import KeyedVectors

    out = tmp_path / ("ours.bin" if binary else "ours.txt")
    small_store.export(out, "word2vec-bin" if binary else "word2vec")
    theirs = KeyedVectors.load_word2vec_format(str(out), binary=binary)
    assert theirs.index_to_key == gensim_small.index_to_key
    np.testing.assert_allclose(theirs.vectors, gensim_small.vectors, rtol=1e-6, atol=1e-7)


def test_export_only_listed_words(run, tmp_path, small_store_path, small_matrix):
    words, matrix = small_matrix
    listing = tmp_path / "words.txt"
    listing.write_text("queen\nking\n\nQueen\nparis\n", encoding="utf-8")
    out = tmp_path / "subset.txt"
    result = run("export", out, "--format", "word2vec", "--words", listing, "--db", small_store_path)
    assert result.exit_code == 0, result.output
    got_words, got = read_embeddings(out)
    assert got_words == ["queen", "king", "paris"]
    np.testing.assert_allclose(got, matrix[[words.index(w) for w in got_words]], rtol=1e-6, atol=1e-7)


def test_export_unknown_listed_word_writes_nothing(small_store, tmp_path):
    with pytest.raises(UnknownWordError):
        small_store.export(tmp_path / "x.txt", "word2vec", ["king", "qwzxv"])
    assert list(tmp_path.iterdir()) == []
