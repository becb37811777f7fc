"""Models offramp tunes itself ("tune our own"), served like any other model: `tuned/<hash>`.

A tuned model here is a purpose-built classifier for a label output: TF-IDF of character n-grams
(2-5, within word boundaries: robust to typos and inflections, no weights to download) with a
multinomial logistic-regression head (SAGA solver: 3-10x faster than lbfgs here at the same
accuracy), its regularisation (C in 1, 3, 10) chosen by 3-fold cross-validation on
the train split only. It is kept as plain JSON (vocabulary, idf, coefficients), not a pickle: a
program state is data that anyone may load, and the content hash of that JSON is its model id.

The gateway answers a request to `tuned/<hash>` in process (`answer`), with the model registered
by whoever holds its state (the evaluation's runner, a release); the answer is the bare label
(what the shipped prompt's parser and any client read) and its class probability. Its cost is
machine time at the declared machine price (`prices.yaml`): the tokens it reports are the words
it read, priced at the words per second measured for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from offramp.tasks.gateway.models import TUNED_PREFIX as PREFIX

RECIPE = "tfidf-char-logreg"
_C_GRID = (1.0, 3.0, 10.0)
_VECTORIZER = {"analyzer": "char_wb", "ngram_range": (2, 5), "sublinear_tf": True, "lowercase": True}

_MODELS: dict[str, _Classifier] = {}
_LOCK = threading.Lock()


def fit(texts: Sequence[str], labels: Sequence[str], *, seed: int) -> dict[str, Any]:
    """Train the classifier on (text, label) pairs; returns its JSON state (without the hash)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline

    y = np.asarray(labels)
    folds = min(3, int(np.min(np.unique(y, return_counts=True)[1])))
    best_c = _C_GRID[len(_C_GRID) // 2]
    if folds >= 2:  # regularisation by cross-validation on train (dev and test never reach it)
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        scores = {c: cross_val_score(make_pipeline(TfidfVectorizer(**_VECTORIZER), _head(c, seed)), list(texts), y, cv=cv).mean()
                  for c in _C_GRID}
        best_c = max(scores, key=lambda c: (scores[c], -c))
    vectorizer = TfidfVectorizer(**_VECTORIZER).fit(list(texts))
    head = _head(best_c, seed).fit(vectorizer.transform(list(texts)), y)
    coef = head.coef_ if len(head.classes_) > 2 else np.vstack([-head.coef_[0], head.coef_[0]]) / 2
    intercept = head.intercept_ if len(head.classes_) > 2 else np.array([-head.intercept_[0], head.intercept_[0]]) / 2
    return {
        "kind": "tuned", "recipe": RECIPE, "C": best_c, "classes": [str(c) for c in head.classes_],
        "vocabulary": {term: int(i) for term, i in sorted(vectorizer.vocabulary_.items())},
        "idf": [float(f"{v:.6g}") for v in vectorizer.idf_],
        "coef": [[float(f"{v:.6g}") for v in row] for row in coef], "intercept": [float(f"{v:.6g}") for v in intercept],
        "train_examples": len(texts),
    }


def _head(c: float, seed: int) -> Any:
    """The classifier head, the same in cross-validation and in the final fit."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, solver="saga", max_iter=2000, random_state=seed)


class _Classifier:
    """A tuned state ready to answer: the vectorizer rebuilt from its vocabulary and idf."""

    def __init__(self, state: dict[str, Any]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(**_VECTORIZER, vocabulary=state["vocabulary"])
        self.vectorizer.idf_ = np.asarray(state["idf"], dtype=float)
        self.coef = np.asarray(state["coef"], dtype=float)
        self.intercept = np.asarray(state["intercept"], dtype=float)
        self.classes = list(state["classes"])

    def predict(self, text: str) -> tuple[str, float]:
        logits = (self.vectorizer.transform([text]) @ self.coef.T).ravel() + self.intercept
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        best = int(np.argmax(probs))
        return self.classes[best], float(probs[best])


def model_id(program_hash: str) -> str:
    return f"{PREFIX}{program_hash}"


def is_tuned(model: str) -> bool:
    return model.startswith(PREFIX)


def register(program_hash: str, state: dict[str, Any]) -> str:
    """Make `tuned/<program_hash>` answerable in this process; returns its model id."""
    with _LOCK:
        if program_hash not in _MODELS:
            _MODELS[program_hash] = _Classifier(state)
    return model_id(program_hash)


def answer(model: str, messages: list[dict]) -> tuple[str, float, int, float]:
    """(label, its probability, words read, seconds) for the last user message."""
    with _LOCK:
        classifier = _MODELS.get(model[len(PREFIX) :])
    if classifier is None:
        raise LookupError(f"tuned model {model} is not loaded in this process (its program state was not registered)")
    text = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    started = time.perf_counter()
    label, probability = classifier.predict(str(text))
    return label, probability, len(str(text).split()), time.perf_counter() - started
