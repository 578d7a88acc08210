"""Standard benchmarks: analogy accuracy (Google's questions-words) and word-pair correlation.

The numbers follow gensim 4's ``evaluate_word_analogies`` and ``evaluate_word_pairs``:
the same vocabulary restriction (the 300,000 most frequent words), the same
case-insensitive matching (``str.upper``, the most frequent spelling wins), the same
skipping and counting of questions with unknown words, and the same choice of answer
(the best of the top five that is not a query word). Every question goes through one
batched search of the store; nothing loops over the vocabulary in Python.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

import numpy as np

from ..errors import EmbstoreError, FormatError
from ..search.analogy_screen import RIGHT, UNDECIDED, WRONG

if TYPE_CHECKING:
    from ..search.searcher import Searcher
    from ..vocabulary.vocabulary import Vocabulary

DEFAULT_RESTRICT = 300_000
GENSIM_TOPN = 5


@dataclass
class SectionScore:
    section: str
    correct: int = 0
    incorrect: int = 0
    skipped: int = 0

    @property
    def answered(self) -> int:
        return self.correct + self.incorrect

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.answered if self.answered else None

    def add(self, other: "SectionScore") -> None:
        self.correct += other.correct
        self.incorrect += other.incorrect
        self.skipped += other.skipped

    def as_dict(self) -> dict:
        return {"section": self.section, "correct": self.correct, "incorrect": self.incorrect,
                "skipped": self.skipped, "accuracy": self.accuracy}


@dataclass(frozen=True)
class AnalogyMistake:
    section: str
    line: int
    question: tuple[str, str, str]
    expected: str
    predicted: str | None


@dataclass
class AnalogyEvaluation:
    """Per-section and summary scores for one analogy file."""

    path: str
    method: str
    restrict: int | None
    case_insensitive: bool
    sections: list[SectionScore]
    total: SectionScore
    semantic: SectionScore
    syntactic: SectionScore
    seconds: float
    mistakes: list[AnalogyMistake] = field(default_factory=list)
    index: str = "exact"
    # with keep_outcomes: (section, the question's keys, True/False, or None when skipped), in file order
    outcomes: list[tuple[str, tuple[str, str, str, str], bool | None]] = field(default_factory=list, repr=False)

    @property
    def oov_ratio(self) -> float:
        questions = self.total.answered + self.total.skipped
        return 100.0 * self.total.skipped / questions if questions else 0.0

    def as_dict(self) -> dict:
        return {
            "path": self.path, "method": self.method, "index": self.index, "restrict": self.restrict,
            "case_insensitive": self.case_insensitive, "seconds": self.seconds,
            "sections": [s.as_dict() for s in self.sections], "total": self.total.as_dict(),
            "semantic": self.semantic.as_dict(), "syntactic": self.syntactic.as_dict(),
            "oov_ratio": self.oov_ratio,
        }


@dataclass
class WordPairEvaluation:
    """Correlation between human scores and cosine similarity, as gensim reports it."""

    path: str
    pearson: float
    pearson_pvalue: float
    spearman: float
    spearman_pvalue: float
    pairs_used: int
    pairs_skipped: int
    restrict: int | None
    case_insensitive: bool
    # with keep_pairs: the human scores and cosines of the pairs used, and the human scores of those skipped
    gold: list[float] = field(default_factory=list, repr=False)
    model: list[float] = field(default_factory=list, repr=False)
    skipped_gold: list[float] = field(default_factory=list, repr=False)

    @property
    def oov_ratio(self) -> float:
        return 100.0 * self.pairs_skipped / (self.pairs_used + self.pairs_skipped)

    def as_dict(self) -> dict:
        return {
            "path": self.path, "pearson": self.pearson, "pearson_pvalue": self.pearson_pvalue,
            "spearman": self.spearman, "spearman_pvalue": self.spearman_pvalue,
            "pairs_used": self.pairs_used, "pairs_skipped": self.pairs_skipped,
            "oov_ratio": self.oov_ratio, "restrict": self.restrict, "case_insensitive": self.case_insensitive,
        }


@dataclass(frozen=True)
class AnalogyQuestion:
    section: str
    line: int
    words: tuple[str, str, str, str]


def _open_text(path: str | os.PathLike) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise FormatError(str(path), None, "is a directory" if path.is_dir() else "no such file")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise FormatError(str(path), None, f"is not UTF-8 text ({exc.reason})") from None


def read_analogy_questions(path: str | os.PathLike) -> list[AnalogyQuestion]:
    """Parse the Google analogy layout: ': section' lines, then 'a b c d' lines.

    Raises FormatError naming the line for a question before any section or one
    that does not have exactly four words.
    """
    questions: list[AnalogyQuestion] = []
    section = None
    for number, line in enumerate(_open_text(path), 1):
        if not line.strip():
            continue
        if line.startswith(":"):
            section = line.lstrip(": ").strip()
            continue
        words = line.split()
        if section is None:
            raise FormatError(str(path), number, "question before the first ': section' line")
        if len(words) != 4:
            raise FormatError(str(path), number, f"expected 4 words (a b c d), found {len(words)}")
        questions.append(AnalogyQuestion(section, number, tuple(words)))
    if not questions:
        raise FormatError(str(path), None, "holds no analogy questions")
    return questions


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def read_word_pairs(path: str | os.PathLike) -> list[tuple[int, str, str, float]]:
    """Parse a word-pair file: (line, word1, word2, human score) rows.

    Handles gensim's ``wordsim353.tsv`` and ``simlex999.txt`` (tab-separated,
    '#' comments), the original SimLex-999 file (a header naming a 'SimLex999' column)
    and comma-separated files such as WordSim353's ``combined.csv``. A header is
    recognised as the first row whose score is not a number; any later such row is
    a FormatError naming its line.
    """
    rows: list[tuple[int, str, str, float]] = []
    score_column = 2
    header_seen = False
    for number, line in enumerate(_open_text(path), 1):
        if not line.strip() or line.startswith("#"):
            continue
        delimiter = "\t" if "\t" in line else ("," if "," in line else None)
        fields = [f.strip() for f in (line.split(delimiter) if delimiter else line.split())]
        if not rows and not header_seen and len(fields) >= 3 and not _is_number(fields[score_column]):
            header_seen = True
            names = [f.lower() for f in fields]
            if "simlex999" in names:
                score_column = names.index("simlex999")
            continue
        if len(fields) <= score_column or len(fields) < 3:
            raise FormatError(str(path), number, f"expected 'word1 word2 score', found {len(fields)} field(s)")
        if not _is_number(fields[score_column]):
            raise FormatError(str(path), number, f"score {fields[score_column]!r} is not a number")
        rows.append((number, fields[0], fields[1], float(fields[score_column])))
    if not rows:
        raise FormatError(str(path), None, "holds no word pairs")
    return rows


def _restricted_lookup(vocabulary: "Vocabulary", restrict: int | None,
                       case_insensitive: bool) -> tuple[dict[str, int], int, set[str]]:
    """gensim's ``ok_vocab``: key -> ID over the ``restrict`` most frequent words.

    With ``case_insensitive`` the keys are upper-cased and the most frequent spelling
    wins. Returns (lookup, number of words considered, keys shared by several words).
    """
    words = vocabulary.words()
    size = len(words) if restrict is None else min(restrict, len(words))
    keys = [w.upper() for w in words[:size]] if case_insensitive else words[:size]
    lookup = dict(zip(reversed(keys), range(size - 1, -1, -1)))  # the most frequent spelling wins
    shared: set[str] = set()
    if len(lookup) < size:
        seen: set[str] = set()
        for key in keys:
            if key in seen:
                shared.add(key)
            seen.add(key)
    return lookup, size, shared


def is_syntactic(section: str) -> bool:
    """The Google set's syntactic sections are the 'gram*' ones."""
    return section.lower().startswith("gram")


def _gensim_prediction(candidates, keys, vocabulary, lookup, case_insensitive):
    """gensim's choice among the top five: the first whose key is not a query word's key.

    Returns (key, word); if every candidate is a query word, the last one, as gensim does.
    """
    ignore = set(keys[:3])
    predicted = predicted_word = None
    for word_id, _ in candidates:
        predicted_word = vocabulary[word_id]
        predicted = predicted_word.upper() if case_insensitive else predicted_word
        if predicted in lookup and predicted not in ignore:
            break
    return predicted, predicted_word


def _screen(searcher, method, ids, keys_of, shared, size, keep_mistakes):
    """Verdicts for the questions the bound can decide (3CosAdd, no shared keys, d not a query word)."""
    verdict = np.full(len(ids), UNDECIDED, dtype=np.int8)
    answer = np.full(len(ids), -1, dtype=np.int64)
    if method != "add" or len(ids) == 0:
        return verdict, answer
    eligible = np.array([
        not (set(keys) & shared) and keys[3] not in keys[:3] for keys in keys_of
    ], dtype=bool)
    eligible &= (ids[:, 3] != ids[:, 0]) & (ids[:, 3] != ids[:, 1]) & (ids[:, 3] != ids[:, 2])
    chosen = np.flatnonzero(eligible)
    screening = searcher.screen_analogies(ids[chosen], id_limit=size)
    verdict[chosen] = screening.verdict
    answer[chosen] = screening.answer
    if keep_mistakes:  # a wrong answer whose best word is not known exactly gets a full search
        verdict[(verdict == WRONG) & (answer < 0)] = UNDECIDED
    return verdict, answer


def evaluate_analogies(
    searcher: "Searcher",
    vocabulary: "Vocabulary",
    path: str | os.PathLike,
    *,
    method: str = "add",
    restrict: int | None = DEFAULT_RESTRICT,
    case_insensitive: bool = True,
    keep_mistakes: bool = False,
    index: str | None = None,
    keep_outcomes: bool = False,
    analogy_hits: Callable | None = None,
) -> AnalogyEvaluation:
    """Analogy accuracy on a questions-words file, with gensim's counting rules.

    ``index`` names the index kind that answers (None: the store's default).
    ``keep_outcomes`` records every question's verdict (gensim's sections are built from them).
    ``analogy_hits``: what searches the undecided questions, in place of ``searcher.analogy_hits``
    (``eval analogies --ray`` passes one that runs blocks of them as Ray tasks).
    """
    kind = searcher.choose(index).kind if method == "add" else "exact"
    started = time.perf_counter()
    questions = read_analogy_questions(path)
    lookup, size, shared = _restricted_lookup(vocabulary, restrict, case_insensitive)
    sections: dict[str, SectionScore] = {}
    answerable: list[AnalogyQuestion] = []
    outcomes: list[tuple[str, tuple[str, str, str, str], bool | None]] = []
    keys_of: list[tuple[str, str, str, str]] = []
    id_rows: list[tuple[int, int, int]] = []
    for question in questions:
        score = sections.setdefault(question.section, SectionScore(question.section))
        keys = tuple(w.upper() for w in question.words) if case_insensitive else question.words
        if any(key not in lookup for key in keys):
            score.skipped += 1
            if keep_outcomes:
                outcomes.append((question.section, keys, None))
            continue
        if keep_outcomes:
            outcomes.append((question.section, keys, False))
        answerable.append(question)
        keys_of.append(keys)
        id_rows.append((lookup[keys[0]], lookup[keys[1]], lookup[keys[2]]))
    words = vocabulary.words()
    ids = np.array([row + (lookup[keys[3]],) for row, keys in zip(id_rows, keys_of)], dtype=np.int64).reshape(-1, 4)
    screened_method = method if kind == "exact" else "none"  # the bound holds for exact scores only
    verdict, answer = _screen(searcher, screened_method, ids, keys_of, shared, size, keep_mistakes)
    searched = np.flatnonzero(verdict == UNDECIDED)
    hits = (analogy_hits or searcher.analogy_hits)(ids[searched, :3], GENSIM_TOPN, method, id_limit=size, kind=kind) if len(searched) else []
    hits_of = dict(zip(searched.tolist(), hits))
    mistakes: list[AnalogyMistake] = []
    right_ones: set[int] = set()
    for number, (question, keys) in enumerate(zip(answerable, keys_of)):
        if verdict[number] != UNDECIDED:
            is_right = verdict[number] == RIGHT
            predicted_word = words[answer[number]] if answer[number] >= 0 else None
        else:
            predicted, predicted_word = _gensim_prediction(hits_of[number], keys, words, lookup,
                                                           case_insensitive)
            is_right = predicted == keys[3]
        score = sections[question.section]
        if is_right and keep_outcomes:
            right_ones.add(number)
        if is_right:
            score.correct += 1
        else:
            score.incorrect += 1
            if keep_mistakes:
                mistakes.append(AnalogyMistake(question.section, question.line, question.words[:3],
                                               question.words[3], predicted_word))
    if keep_outcomes:  # the answered questions, in order, take their verdicts
        answered = iter(range(len(answerable)))
        outcomes = [(section, keys, None) if right is None else (section, keys, next(answered) in right_ones)
                    for section, keys, right in outcomes]
    ordered = list(sections.values())
    total, semantic, syntactic = SectionScore("Total accuracy"), SectionScore("Semantic"), SectionScore("Syntactic")
    for score in ordered:
        total.add(score)
        (syntactic if is_syntactic(score.section) else semantic).add(score)
    return AnalogyEvaluation(
        path=str(path), method=method, restrict=restrict, case_insensitive=case_insensitive,
        sections=ordered, total=total, semantic=semantic, syntactic=syntactic,
        seconds=time.perf_counter() - started, mistakes=mistakes, index=kind, outcomes=outcomes,
    )


def _correlations(gold: Iterable[float], model: Iterable[float]):
    try:
        from scipy import stats
    except ImportError:
        raise EmbstoreError(
            "word-pair evaluation needs scipy: pip install scipy (or, from a checkout, pip install '.[eval]')"
        ) from None
    gold, model = list(gold), list(model)
    return stats.pearsonr(gold, model), stats.spearmanr(gold, model)


def evaluate_word_pairs(
    searcher: "Searcher",
    vocabulary: "Vocabulary",
    path: str | os.PathLike,
    *,
    restrict: int | None = DEFAULT_RESTRICT,
    case_insensitive: bool = True,
    keep_pairs: bool = False,
) -> WordPairEvaluation:
    """Pearson and Spearman correlation of cosine similarity with human scores (gensim's rules).
    ``keep_pairs`` keeps the scores themselves in the result."""
    rows = read_word_pairs(path)
    lookup, _, _ = _restricted_lookup(vocabulary, restrict, case_insensitive)
    pairs, gold, skipped, skipped_gold = [], [], 0, []
    for _, first, second, human in rows:
        a = first.upper() if case_insensitive else first
        b = second.upper() if case_insensitive else second
        if a not in lookup or b not in lookup:
            skipped += 1
            skipped_gold.append(human)
            continue
        pairs.append((lookup[a], lookup[b]))
        gold.append(human)
    if len(pairs) < 3:
        raise EmbstoreError(f"{path}: only {len(pairs)} pair(s) have both words in the vocabulary; need at least 3")
    ids = np.array(pairs, dtype=np.int64)
    model = searcher.pair_similarities(ids[:, 0], ids[:, 1])
    pearson, spearman = _correlations(gold, model.tolist())
    return WordPairEvaluation(
        path=str(path), pearson=float(pearson[0]), pearson_pvalue=float(pearson[1]),
        spearman=float(spearman[0]), spearman_pvalue=float(spearman[1]),
        pairs_used=len(pairs), pairs_skipped=skipped, restrict=restrict, case_insensitive=case_insensitive,
        **({"gold": gold, "model": model.tolist(), "skipped_gold": skipped_gold} if keep_pairs else {}),
    )
