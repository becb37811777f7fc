"""The learned router: a small text classifier that predicts, from a request's inputs alone,
whether a cheap config's answer will be right (else the request goes to the strong config).

TF-IDF over word 1-2 grams + logistic regression (scikit-learn), trained on the dev split's
outcomes: y = 1 where the cheap config scored at least as well as the strong one. Its dev
probabilities are cross-fitted (each example scored by a model that never saw it), so the
threshold chosen on them is not fitted to the router's own training answers. The definition keeps
the training texts and labels: the same model is refitted, deterministically, wherever the router
answers (the test split, a release), with no pickled object in the warehouse. Never trained on test.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MIN_EXAMPLES = 10  # fewer dev outcomes than this: no learned router
MIN_PER_CLASS = 2  # each outcome (cheap right, cheap wrong) seen at least this often
FOLDS = 5


def _model(seed: int):  # noqa: ANN202 - a scikit-learn Pipeline (imported lazily: the CLI starts without it)
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
                         LogisticRegression(C=1.0, max_iter=1000, random_state=seed))


def cheap_is_enough(cheap_scores: Sequence[float], strong_scores: Sequence[float]) -> list[int]:
    """The router's target per example: 1 where the cheap answer is as good as the strong one."""
    return [int(c >= s) for c, s in zip(cheap_scores, strong_scores)]


def trainable(labels: Sequence[int]) -> bool:
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=2)
    return len(labels) >= MIN_EXAMPLES and int(counts.min()) >= MIN_PER_CLASS


def cross_fitted(texts: Sequence[str], labels: Sequence[int], seed: int) -> list[float]:
    """P(cheap is enough) for each example, from a model fitted on the other folds."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(labels, dtype=int)
    folds = min(FOLDS, int(np.bincount(y, minlength=2).min()))
    out = np.zeros(len(y))
    for train, held in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        model = _model(seed).fit([texts[i] for i in train], y[train])
        out[held] = model.predict_proba([texts[i] for i in held])[:, 1]
    return [float(p) for p in out]


def fit_definition(texts: Sequence[str], labels: Sequence[int], seed: int) -> dict:
    """What is stored to refit the router: its training texts, labels and seed."""
    return {"texts": list(texts), "labels": [int(x) for x in labels], "seed": seed, "model": "tfidf-1-2gram+logreg"}


def fit(definition: dict):  # noqa: ANN201 - a fitted scikit-learn Pipeline
    """The router refitted on its definition (deterministic: same texts, labels and seed)."""
    return _model(int(definition["seed"])).fit(definition["texts"], np.asarray(definition["labels"], dtype=int))


def probabilities(model, texts: Sequence[str]) -> list[float]:  # noqa: ANN001 - a fitted Pipeline
    """P(cheap is enough) for new requests."""
    return [float(p) for p in model.predict_proba(list(texts))[:, 1]]


def predict(definition: dict, texts: Sequence[str]) -> list[float]:
    """P(cheap is enough) for new requests, from the router refitted on its definition."""
    return probabilities(fit(definition), texts)
