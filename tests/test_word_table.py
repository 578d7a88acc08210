"""The words held in memory (WordTable, Store.open(words_in_memory=...)) give the answers SQLite gives."""

from __future__ import annotations

import numpy as np
import pytest

from embstore import Store
from embstore.storage.catalog import Catalog
from embstore.vocabulary.vocabulary import WORDS_IN_MEMORY_AFTER, load_word_table
from embstore.vocabulary.word_table import WordTable

WORDS = ["the", "naïve", "東京", "😀", "a", "x" * 300, "Straße"]
PROBES = ["king", "paris", "computer", "good", "river", "Paris"]


def test_table_gives_back_each_word_by_id():
    table = WordTable.from_joined("\n".join(WORDS), "\n", len(WORDS))
    assert len(table) == len(WORDS)
    assert [table[i] for i in range(len(WORDS))] == WORDS
    assert table.words_for_ids([3, 0, 5]) == {3: "😀", 0: "the", 5: "x" * 300}
    assert table.words_for_ids([]) == {}
    for outside in (-1, len(WORDS)):
        with pytest.raises(IndexError):
            table.words_for_ids([0, outside])
        with pytest.raises(IndexError):
            table[outside]


def test_table_refuses_words_holding_its_separator():
    assert WordTable.from_joined("a\nb\nc", "\n", 2) is None  # one of two words holds a newline
    assert WordTable.from_joined("a\nb", "\n", 3) is None
    assert len(WordTable.from_joined("", "\n", 0)) == 0


def test_catalog_table_equals_the_vocabulary(small_store):
    table = load_word_table(small_store.catalog, len(small_store))
    vocabulary = small_store.vocabulary()
    assert len(table) == len(vocabulary)
    assert [table[i] for i in range(len(vocabulary))] == vocabulary
    assert table.nbytes < len(vocabulary) * 16  # packed: a Python list of the same words takes ~60 bytes a word


def test_catalog_table_falls_back_when_a_word_holds_a_newline(store_copy):
    catalog = Catalog.open(store_copy)
    count = catalog.word_stats()[0]
    with catalog.write_transaction():  # not possible through the API, which refuses white space in words
        catalog.insert_words([count], ["two\nlines"], [count + 1], [1.0])
    table = load_word_table(catalog, catalog.word_stats()[0])
    assert table[count] == "two\nlines"
    assert [table[i] for i in range(count)] == catalog.vocabulary()[:count]
    catalog.close()


def _answers(store: Store) -> list:
    nearest = [[(n.word, round(n.score, 6)) for n in r.neighbours]
               for r in store.nearest_many(PROBES, k=10, case_insensitive=True)]
    analogy = [n.word for n in store.analogy("man", "king", "woman", k=5).neighbours]
    return [nearest, analogy, store.nearest("king", k=3, restrict=500).neighbours]


def test_words_in_memory_give_the_same_answers(small_store_path):
    with Store.open(small_store_path, words_in_memory=False) as sqlite_only, \
            Store.open(small_store_path, words_in_memory=True) as in_memory:
        assert in_memory.vocab.holds_words
        assert _answers(in_memory) == _answers(sqlite_only)
        assert not sqlite_only.vocab.holds_words


def test_default_holds_the_words_after_an_eighth_of_the_vocabulary(small_store_path):
    with Store.open(small_store_path) as store, Store.open(small_store_path, words_in_memory=False) as reference:
        expected = _answers(reference)
        assert _answers(store) == expected
        assert not store.vocab.holds_words  # a few queries stay with SQLite
        words = reference.vocabulary()[: len(store) // WORDS_IN_MEMORY_AFTER // 10 + 1]
        batch = store.nearest_many(words, k=10)
        assert store.vocab.holds_words
        assert [r.neighbours for r in batch] == [r.neighbours for r in reference.nearest_many(words, k=10)]
        assert _answers(store) == expected


def test_words_in_memory_follow_changes(store_copy, small_matrix):
    words, matrix = small_matrix
    with Store.open(store_copy, words_in_memory=True) as store:
        vector = matrix[words.index("king")] + np.float32(0.01)
        store.add_words(["kingly"], vector[None, :])
        assert store.vocab.holds_words
        assert store.nearest("king", k=1).neighbours[0].word == "kingly"
        store.rename_word("kingly", "regal")
        assert store.nearest("king", k=1).neighbours[0].word == "regal"
