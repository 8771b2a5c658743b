"""The Galaxy Zoo 2 decision tree, derived from ``schemas/galaxy_zoo2.csv``.

Each question's answers sum to the vote fraction of the answer that leads to it
(Willett et al. 2013; Kaggle "Galaxy Challenge" weighting). Column names, output
indices and the normalisation are all computed from that one table.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np


@dataclass(frozen=True)
class Answer:
    question: int
    answer: int
    kaggle_column: str  # e.g. "Class1.2"
    catalog_column: str  # e.g. "gz_features_or_disk"
    parent: str | None  # kaggle column of the answer leading to this question
    question_text: str
    answer_text: str


@dataclass(frozen=True)
class Question:
    number: int
    start: int  # first output index
    stop: int  # one past the last output index
    parent_index: int | None  # output index of the parent answer, None for root questions


@dataclass(frozen=True)
class DecisionTree:
    answers: tuple[Answer, ...]
    questions: tuple[Question, ...]

    @property
    def kaggle_columns(self) -> list[str]:
        return [a.kaggle_column for a in self.answers]

    @property
    def catalog_columns(self) -> list[str]:
        return [a.catalog_column for a in self.answers]

    def index(self, name: str) -> int:
        """Output index of an answer given its Kaggle or catalog column name."""
        for i, a in enumerate(self.answers):
            if name in (a.kaggle_column, a.catalog_column):
                return i
        raise KeyError(name)

    def normalise(self, raw: np.ndarray, eps: float = 1e-7) -> np.ndarray:
        """Map non-negative scores (n, 37) to weighted vote fractions obeying the tree.

        Per question: divide by the question's sum, then multiply by the parent answer's
        (already normalised) value, in tree order (Dieleman 2015's output constraint).
        """
        x = np.maximum(np.asarray(raw, dtype=np.float64), 0.0)
        out = np.empty_like(x)
        for q in self.questions:  # questions are in an order where parents come first
            block = x[:, q.start : q.stop]
            block = block / (block.sum(axis=1, keepdims=True) + eps)
            if q.parent_index is not None:
                block = block * out[:, q.parent_index : q.parent_index + 1]
            out[:, q.start : q.stop] = block
        return out.astype(np.float32)

    def violations(self, values: np.ndarray) -> np.ndarray:
        """Per row, the largest |sum of a question's answers - its parent's value|."""
        v = np.asarray(values, dtype=np.float64)
        worst = np.zeros(len(v))
        for q in self.questions:
            target = 1.0 if q.parent_index is None else v[:, q.parent_index]
            worst = np.maximum(worst, np.abs(v[:, q.start : q.stop].sum(axis=1) - target))
        return worst


@cache
def galaxy_zoo2() -> DecisionTree:
    """The GZ2 tree as bundled with astrocat (37 answers, 11 questions)."""
    text = resources.files("astrocat.schemas").joinpath("galaxy_zoo2.csv").read_text()
    answers = tuple(
        Answer(
            question=int(r["question"]),
            answer=int(r["answer"]),
            kaggle_column=r["kaggle_column"],
            catalog_column=r["catalog_column"],
            parent=r["parent"] or None,
            question_text=r["question_text"],
            answer_text=r["answer_text"],
        )
        for r in csv.DictReader(text.splitlines())
    )
    index = {a.kaggle_column: i for i, a in enumerate(answers)}
    spans: dict[int, list[int]] = {}
    for i, a in enumerate(answers):
        spans.setdefault(a.question, []).append(i)
    questions = []
    for number, idx in spans.items():
        parent = answers[idx[0]].parent
        questions.append(
            Question(number, idx[0], idx[-1] + 1, None if parent is None else index[parent])
        )
    # Parents must be normalised before their children: order by depth in the tree.
    def depth(q: Question) -> int:
        d, p = 0, q.parent_index
        while p is not None:
            d += 1
            p = next(qq for qq in questions if qq.start <= p < qq.stop).parent_index
        return d

    return DecisionTree(answers, tuple(sorted(questions, key=depth)))
