"""Decide most 3CosAdd analogy questions exactly without scoring the whole vocabulary.

An evaluation asks, for each question a : b :: c : d, whether d is the best word by
cos(x, q) with q = unit(b + c - a), a, b and c excluded. Brute force scores every
word for every question (19,544 x 300,000 dot products for Google's set).

The questions reuse few vectors: Google's set has about 550 (a, b) pairs and 470 c
words. Since x.q = (x.(b - a) + x.c) / |b + c - a|, a word outside the top L of both
x.(b - a) and x.c scores at most (theta_ab + theta_c) / |b + c - a|, where theta is
the (L+1)-th largest value of each list (Fagin's threshold algorithm). So from the
top-L lists of each distinct pair and c word:

* if some listed word beats d, the question is wrong (and if that word also beats the
  bound, it is the exact answer);
* if no listed word beats d and d beats the bound, the question is right;
* otherwise (a near tie, or d below the bound) the question is undecided and the
  caller scores it in full.

Margins of 1e-5 absorb float32 rounding, so a decision here never differs from the
full search; near ties are always left to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .engine import mean_directions

LIST_LENGTH = 1024
BLOCK_VECTORS = 64
TIE_MARGIN = 1e-6
BOUND_MARGIN = 1e-5

UNDECIDED, WRONG, RIGHT = -1, 0, 1


@dataclass
class Screening:
    """Per question: ``verdict`` (RIGHT, WRONG or UNDECIDED) and, where known exactly, the answer's ID."""

    verdict: np.ndarray
    answer: np.ndarray  # -1 where the exact best word is not known


def _top_lists(rows: np.ndarray, vectors: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """For each vector v: the IDs of the ``length`` rows with the highest v.x, and the next-highest value."""
    count = rows.shape[0]
    ids = np.empty((len(vectors), length), dtype=np.int64)
    bound = np.empty(len(vectors), dtype=np.float64)
    stride = max(1, count // 8192)
    for start in range(0, len(vectors), BLOCK_VECTORS):
        scores = vectors[start: start + BLOCK_VECTORS] @ rows.T
        sample = scores[:, ::stride]
        rank = min(sample.shape[1] - 1, 2 * (length + 1) * sample.shape[1] // count + 16)
        thresholds = -np.partition(-sample, rank, axis=1)[:, rank]
        for offset, row in enumerate(scores):
            candidates = np.flatnonzero(row >= thresholds[offset])
            if len(candidates) <= length:
                candidates = np.arange(count)
            values = row[candidates]
            order = np.argpartition(-values, length)
            ids[start + offset] = candidates[order[:length]]
            bound[start + offset] = values[order[length]]
    return ids, bound


def screen_analogies(rows: np.ndarray, questions: np.ndarray, lengths: tuple[int, ...] = (LIST_LENGTH, 8 * LIST_LENGTH)
                     ) -> Screening:
    """Screen (a, b, c, d) ID rows against unit ``rows`` (already cut to the searched prefix).

    Runs one round per list length; each later round, with longer lists, looks only at
    the questions the earlier ones left undecided.

    Assumes no two words share a lookup key (no case variants among the searched words
    for the question's words) and d differs from a, b and c; the caller checks both.
    """
    verdict = np.full(len(questions), UNDECIDED, dtype=np.int8)
    answer = np.full(len(questions), -1, dtype=np.int64)
    pending = np.arange(len(questions))
    for length in lengths:
        if len(pending) == 0:
            break
        screening = _screen_round(rows, questions[pending], length)
        verdict[pending] = screening.verdict
        answer[pending] = screening.answer
        pending = pending[screening.verdict == UNDECIDED]
    return Screening(verdict, answer)


def _screen_round(rows: np.ndarray, questions: np.ndarray, length: int) -> Screening:
    """One screening round with top-``length`` lists."""
    count = len(questions)
    verdict = np.full(count, UNDECIDED, dtype=np.int8)
    answer = np.full(count, -1, dtype=np.int64)
    if count == 0 or rows.shape[0] <= 2 * length + 4:
        return Screening(verdict, answer)
    a, b, c, d = (questions[:, i] for i in range(4))
    pairs, pair_of = np.unique(questions[:, :2], axis=0, return_inverse=True)
    pair_of = pair_of.ravel()
    words, word_of = np.unique(c, return_inverse=True)
    word_of = word_of.ravel()
    offsets = (rows[pairs[:, 1]].astype(np.float64) - rows[pairs[:, 0]]).astype(np.float32)
    lists, bounds = _top_lists(rows, np.concatenate([offsets, rows[words]]), length)
    pair_lists, word_lists = lists[: len(pairs)], lists[len(pairs):]
    limit = (bounds[: len(pairs)][pair_of] + bounds[len(pairs):][word_of]) / np.linalg.norm(
        rows[b].astype(np.float64) + rows[c] - rows[a], axis=1)

    queries = mean_directions(rows[questions[:, [1, 2]]], rows[questions[:, [0]]])
    target = np.einsum("ij,ij->i", rows[d], queries).astype(np.float64)
    best = np.full(count, -np.inf)
    best_id = np.full(count, -1, dtype=np.int64)
    position = np.full(rows.shape[0], -1, dtype=np.int64)  # row ID -> place in the current list
    for group_of, group_lists in ((pair_of, pair_lists), (word_of, word_lists)):
        order = np.argsort(group_of, kind="stable")
        edges = np.flatnonzero(np.diff(group_of[order])) + 1
        for members in np.split(order, edges):
            listed = group_lists[group_of[members[0]]]
            scores = rows[listed] @ queries[members].T  # (length, members)
            position[listed] = np.arange(length)
            places = position[questions[members]]  # where a, b, c and d sit in the list, or -1
            column = np.broadcast_to(np.arange(len(members))[:, None], places.shape)
            found = places >= 0
            scores[places[found], column[found]] = -np.inf
            position[listed] = -1
            top = scores.argmax(axis=0)
            top_scores = scores[top, np.arange(len(members))].astype(np.float64)
            better = top_scores > best[members]
            best[members[better]] = top_scores[better]
            best_id[members[better]] = listed[top[better]]

    wrong = best > target + TIE_MARGIN
    clear = best < target - TIE_MARGIN
    verdict[wrong] = WRONG
    verdict[clear & (target > limit + BOUND_MARGIN)] = RIGHT
    exact = wrong & (best > limit + BOUND_MARGIN)
    answer[exact] = best_id[exact]
    answer[verdict == RIGHT] = d[verdict == RIGHT]
    return Screening(verdict, answer)
