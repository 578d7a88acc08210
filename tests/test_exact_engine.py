"""The exact engine's answers do not depend on how the rows are split or batched.

A BLAS product's last bits depend on where a row falls in the kernel's blocks: on some
machines (AMD EPYC, OpenBLAS's Haswell kernels) the last ``n mod 4`` rows of a matrix-vector
product, and rows at some positions of a matrix product, come out one bit apart from the same
row elsewhere. ``exact_top_k`` therefore scores its answers again with ``fixed_order_scores``.
The reference here is that definition computed directly: every row's fixed-order score, sorted
by score then ID, and it is checked against float64 cosines as well.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embstore.search import engine
from embstore.search.engine import exact_top_k, fixed_order_scores, score_error_bound


def reference(rows, norms, query, k, exclude=()):
    ids = np.arange(len(rows))
    scores = fixed_order_scores(rows, norms, ids, query)
    order = sorted((i for i in ids.tolist() if i not in exclude), key=lambda i: (-scores[i], i))[:k]
    return [(i, float(scores[i])) for i in order]


def near_tied_rows(seed: int, count: int, dimension: int, copies: int) -> tuple[np.ndarray, np.ndarray]:
    """Random rows as loaded (lengths 0.1 to 10), with groups of near-copies: many scores a few
    float32 steps apart, where BLAS's last bit decides the order."""
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((count, dimension)).astype(np.float32)
    base = rows[rng.integers(0, count, 4)]
    for i in range(min(copies, count)):
        rows[i * (count // max(copies, 1)) % count] = base[i % 4] * (1 + 1e-7 * rng.standard_normal(dimension))
    rows *= rng.uniform(0.1, 10, (count, 1)).astype(np.float32)
    norms = np.linalg.norm(rows, axis=1).astype(np.float32)
    return rows, norms


def unit_queries(rows, norms, ids):
    return (rows[ids] / norms[ids, None]).astype(np.float32)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), count=st.integers(5, 3000), dimension=st.sampled_from([1, 3, 50, 300]),
       copies=st.integers(0, 60), k=st.integers(1, 12), cut=st.integers(1, 10_000))
def test_alone_in_a_batch_and_in_shards_the_same_answers_bit_for_bit(seed, count, dimension, copies, k, cut):
    rows, norms = near_tied_rows(seed, count, dimension, copies)
    query_ids = np.arange(0, count, max(1, count // 9))[:9]
    queries = unit_queries(rows, norms, query_ids)
    batch = exact_top_k(rows, queries, k, [set()] * len(queries), norms=norms)  # > 4 queries: the batch path
    alone = [exact_top_k(rows, q[None, :], k, [set()], norms=norms)[0] for q in queries]
    split = 1 + cut % (count - 1) if count > 1 else 1
    for query, in_batch, by_itself in zip(queries, batch, alone):
        expected = reference(rows, norms, query, k)
        assert in_batch == expected and by_itself == expected
        parts = [exact_top_k(rows[:split], query[None, :], k, [set()], norms=norms[:split])[0],
                 [(i + split, s) for i, s in exact_top_k(rows[split:], query[None, :], k, [set()],
                                                         norms=norms[split:])[0]] if split < count else []]
        merged = sorted(parts[0] + parts[1], key=lambda hit: (-hit[1], hit[0]))[:k]
        assert merged == expected
        exact = (rows.astype(np.float64) @ query.astype(np.float64)) / norms.astype(np.float64)
        assert all(abs(s - exact[i]) <= score_error_bound(dimension) for i, s in expected)


def test_unit_rows_through_faiss_and_exclusions_and_id_limit():
    rows, norms = near_tied_rows(7, 2000, 50, 40)
    unit = (rows / norms[:, None]).astype(np.float32)
    queries = unit[[0, 10, 20, 30, 40, 50]]
    exclude = [{0}, {10, 11}, set(), {20}, set(), {1, 2, 3}]
    got = exact_top_k(unit, queries, 5, exclude, id_limit=1500)  # unit rows, a batch: FAISS's knn
    for query, skip, answer in zip(queries, exclude, got):
        assert answer == reference(unit[:1500], None, query, 5, skip)


def test_many_near_ties_past_the_slack_fall_back_to_a_full_scan(monkeypatch):
    """More rows within the error bound of the k-th score than a batch keeps: the query is
    scanned again, and the answer is still the reference."""
    rng = np.random.default_rng(3)
    base = rng.standard_normal(50).astype(np.float32)
    rows = np.repeat(base[None, :], 400, axis=0) + 1e-7 * rng.standard_normal((400, 50)).astype(np.float32)
    rows = np.concatenate([rows, rng.standard_normal((600, 50)).astype(np.float32)])
    norms = np.linalg.norm(rows, axis=1).astype(np.float32)
    queries = unit_queries(rows, norms, np.arange(0, 1000, 100))
    scans = []
    original = engine._rescored_scan
    monkeypatch.setattr(engine, "_rescored_scan", lambda *a: scans.append(1) or original(*a))
    got = exact_top_k(rows, queries, 3, [set()] * len(queries), norms=norms)
    assert scans  # the near-copies' queries needed the scan
    for query, answer in zip(queries, got):
        assert answer == reference(rows, norms, query, 3)


def test_fixed_order_scores_of_a_row_do_not_depend_on_the_others():
    rng = np.random.default_rng(1)
    for dimension in (1, 7, 8, 9, 129, 300, 1000):
        rows = rng.standard_normal((64, dimension)).astype(np.float32)
        query = rng.standard_normal(dimension).astype(np.float32)
        whole = fixed_order_scores(rows, None, np.arange(64), query)
        for ids in ([5], [63, 0], list(range(3, 40)), [10, 10, 2]):
            assert np.array_equal(fixed_order_scores(rows, None, np.array(ids), query), whole[ids])
        fortran = np.asfortranarray(rows)  # a Fortran-ordered block is summed row by row all the same
        assert np.array_equal(fixed_order_scores(fortran, None, np.arange(64), query), whole)


@pytest.mark.parametrize("dimension", [50, 300])
def test_the_error_bound_holds_against_blas(dimension):
    rng = np.random.default_rng(dimension)
    rows = (rng.standard_normal((5000, dimension)) * rng.uniform(1e-3, 1e3, (5000, 1))).astype(np.float32)
    norms = np.linalg.norm(rows, axis=1).astype(np.float32)
    query = unit_queries(rows, norms, np.array([17]))[0]
    blas = (rows[3:] @ query) / norms[3:]  # an odd range: the kernel's tail path too
    fixed = fixed_order_scores(rows, norms, np.arange(3, 5000), query)
    assert np.max(np.abs(blas.astype(np.float64) - fixed)) <= score_error_bound(dimension)


@pytest.mark.parametrize("scale", [1e-42, 1e-36, 1e-30])
def test_rows_so_short_their_products_are_subnormal(scale):
    """Found by a hostile test: rows of 1e-42 (accepted by the loader: their norms are computed
    in float64) gave different answers alone and in a batch, and cosines above 1, because BLAS's
    products of such rows are subnormal and its error passes any bound. Such rows are always
    scored again, as unit rows made in float64 from their own values."""
    rng = np.random.default_rng(11)
    base = rng.standard_normal(50)
    rows64 = (base + 0.01 * rng.standard_normal((400, 50))) * scale
    rows = rows64.astype(np.float32)
    norms = np.sqrt(np.add.reduce(rows.astype(np.float64) ** 2, axis=1)).astype(np.float32)  # as row_norms
    queries = (rows[:6].astype(np.float64) / np.linalg.norm(rows[:6].astype(np.float64), axis=1)[:, None]
               ).astype(np.float32)
    batch = exact_top_k(rows, queries, 3, [set()] * 6, norms=norms)
    alone = [exact_top_k(rows, q[None, :], 3, [set()], norms=norms)[0] for q in queries]
    assert batch == alone
    exact = rows.astype(np.float64) / np.linalg.norm(rows.astype(np.float64), axis=1)[:, None]
    for query, answer in zip(queries, alone):
        truth = exact @ query.astype(np.float64)
        assert all(abs(score - truth[i]) < 1e-6 and score <= 1 + 1e-6 for i, score in answer)
        assert [i for i, _ in answer] == [int(i) for i in np.argsort(-truth, kind="stable")[:3]]



def cosmul_reference(unit, positive_ids, negative_ids, k):
    """3CosMul's definition over every row: fixed-order cosines, combined as the engine does,
    sorted by score then ID, the question's own words left out."""
    ids = np.arange(len(unit))
    terms = unit[np.concatenate([positive_ids, negative_ids])]
    scores = engine._cosmul_fixed_scores(unit, ids, terms, len(positive_ids))
    skip = set(positive_ids.tolist()) | set(negative_ids.tolist())
    order = sorted((i for i in ids.tolist() if i not in skip), key=lambda i: (-scores[i], i))[:k]
    return [(i, float(scores[i])) for i in order]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), count=st.integers(8, 3000), dimension=st.sampled_from([3, 50, 300]),
       copies=st.integers(0, 60), k=st.integers(1, 12))
def test_3cosmul_alone_and_in_a_batch_the_same_answers_bit_for_bit(seed, count, dimension, copies, k):
    """3CosMul's cosines come from one BLAS matrix product over the batch's distinct words, whose
    last bit depends on how many there are: 92 of 400 questions at 400k came out differently
    alone and in a batch before the answers were scored again."""
    rows, norms = near_tied_rows(seed, count, dimension, copies)
    unit = (rows / norms[:, None]).astype(np.float32)
    rng = np.random.default_rng(seed)
    questions = rng.choice(count, (12, 3), replace=True)
    questions = questions[[len(set(q)) == 3 for q in questions.tolist()]]
    if not len(questions):
        return
    exclude = [set(q) for q in questions.tolist()]
    batch = engine.cosmul_top_k(unit, questions[:, [1, 2]], questions[:, [0]], k, exclude)
    for question, in_batch in zip(questions, batch):
        alone = engine.cosmul_top_k(unit, question[None, [1, 2]], question[None, [0]], k, [set(question.tolist())])
        expected = cosmul_reference(unit, question[[1, 2]], question[[0]], k)
        assert in_batch == expected and alone[0] == expected
        vectors = engine.cosmul_top_k_vectors(unit, unit[question[[1, 2]]][None], unit[question[[0]]][None], k,
                                              [set(question.tolist())])
        assert vectors[0] == expected


def test_3cosmul_rows_near_a_negative_words_opposite_are_always_scored_again():
    """A row opposite the negative word has a denominator near 0, where a BLAS cosine's last bit
    moves the score by up to 1/epsilon times as much: the bound is infinite and the question is
    scored again over every row."""
    rng = np.random.default_rng(3)
    unit = rng.standard_normal((500, 20)).astype(np.float32)
    unit[7] = -unit[0]
    unit[8] = -unit[0] * (1 + 1e-6 * rng.standard_normal(20)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    assert engine._cosmul_error_bound(1.0, 0.0, 20, 2, 1) == float("inf")
    assert engine._cosmul_error_bound(1.0, 0.5, 300, 2, 1) < 1e-3
    question = np.array([[0, 1, 2]])
    got = engine.cosmul_top_k(unit, question[:, [1, 2]], question[:, [0]], 5, [{0, 1, 2}])[0]
    assert got == cosmul_reference(unit, question[0, [1, 2]], question[0, [0]], 5)
    assert {7, 8} & {i for i, _ in got}  # nearly opposite a: the largest 3CosMul scores
