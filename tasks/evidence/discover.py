"""Discovered slices: groups of inputs, found by clustering their text, where a candidate loses to
(or disagrees with) the incumbent more than elsewhere. The long tail has no declared slice; this
finds its bad corners after the paired comparison, with no LLM call.

Embedding (no download, deterministic, cheap): TF-IDF of word 1-2-grams and of char_wb 3-5-grams
(sublinear tf), stacked, then TruncatedSVD (latent semantic analysis, `random_state=seed`) and L2
normalisation. Words carry the topic; character n-grams keep short, misspelt or inflected inputs
("refund", "refunded", "refnd") close; the SVD folds co-occurring terms into shared directions so
distances are between topics, not between exact words. A sentence-embedding model would need
weights at run time, which offramp never downloads.

Clustering: Ward's agglomerative tree on the embeddings (`scipy.cluster.hierarchy.linkage`: no
seed, one answer for one input). Every node of the tree with at least `min_size` members is a
candidate group, so a bad corner is found at whatever size it has: a whole topic or a sub-topic.

The rule (what is reported): a group is reported for a signal (`loss`: the candidate's score is
below the incumbent's; `disagree`: a different answer) when
  - it has at least `min_size` members (default max(5, 1% of the inputs)) and at least
    `min_events` of them lost (disagreed), and
  - its one-sided exact binomial test against the overall rate of the signal has p < alpha / m,
    where m is the number of tests made (candidate groups x signals tested): a Bonferroni bound,
    so over all groups and signals the chance of reporting any group when the candidate loses
    (disagrees) uniformly at random is at most alpha (default 0.05). Equivalently: the group's
    exact (Clopper-Pearson) lower bound at confidence 1 - alpha / m is above the overall rate.
Nested groups are not reported twice: passing groups are taken by p-value (smallest first) and a
group that contains, or is contained in, one already taken is dropped. Each reported group says its
size, share of the inputs, its loss and disagree rates with 95% exact intervals, the rates outside
it, its top terms (the word n-grams whose mean TF-IDF in the group most exceeds their mean outside)
and three example inputs (members that lost, resp. disagreed, nearest the group's centre) with both
answers.

Pure: no I/O; deterministic for a seed (inputs are ordered by id first, so their order does not matter).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SIGNALS = ("loss", "disagree")
MAX_INPUTS = 4000  # Ward's tree is O(n^2) memory: above this a seeded sample of the inputs is clustered


@dataclass(frozen=True)
class ComparedInput:
    """One input answered by both configs. `lost`: the candidate scored lower than the incumbent
    (None: unknown, e.g. a production sample without gold; then only disagreement is tested)."""

    example_id: str
    text: str
    lost: bool | None
    disagrees: bool
    incumbent_answer: Any = None
    candidate_answer: Any = None


@dataclass(frozen=True)
class DiscoveryRule:
    """The evidence a group needs to be reported (see the module docstring)."""

    alpha: float = 0.05
    min_size: int | None = None  # None: max(5, ceil(1% of the inputs))
    min_events: int = 3
    signals: tuple[str, ...] = SIGNALS

    def size_floor(self, n: int) -> int:
        return self.min_size if self.min_size is not None else max(5, math.ceil(0.01 * n))

    def describe(self, n: int, m: int) -> str:
        return (f"a group of >= {self.size_floor(n)} inputs with >= {self.min_events} events whose one-sided exact binomial "
                f"p-value against the overall rate is < {self.alpha:g}/{m} (Bonferroni over {m} tests: tree groups x signals)")


DEFAULT_RULE = DiscoveryRule()


@dataclass(frozen=True)
class DiscoveredSlice:
    signal: str  # loss | disagree: the rate that is higher in the group
    size: int
    share: float
    member_ids: tuple[str, ...]
    loss_n: int  # members whose loss is known
    losses: int
    loss_rate: float | None
    loss_ci_low: float | None
    loss_ci_high: float | None
    outside_loss_rate: float | None
    disagreements: int
    disagree_rate: float
    disagree_ci_low: float
    disagree_ci_high: float
    outside_disagree_rate: float | None
    p_value: float
    terms: tuple[str, ...]
    examples: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Discovery:
    """What one discovery found, and what it tested (for "none found (rule ...)")."""

    n_inputs: int
    n_clustered: int  # < n_inputs when a sample was clustered (MAX_INPUTS)
    n_tested: int  # m: candidate groups x signals tested
    threshold: float  # alpha / m
    rule: str
    overall_loss_rate: float | None
    overall_disagree_rate: float
    slices: tuple[DiscoveredSlice, ...]


def embed(texts: Sequence[str], *, seed: int = 0, dims: int = 64) -> tuple[np.ndarray, Any, Any]:
    """(L2-normalised LSA vectors, the word TF-IDF matrix, its vectorizer) of `texts`."""
    from scipy.sparse import hstack
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    words = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_features=20000,
                            token_pattern=r"(?u)\b\w+\b")
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=1, max_features=40000)
    w = words.fit_transform(texts)
    x = hstack([w, chars.fit_transform(texts)]).tocsr()
    k = min(dims, x.shape[1] - 1, len(texts) - 1)
    if k < 2:
        dense = normalize(x).toarray()
    else:
        dense = TruncatedSVD(n_components=k, random_state=seed, algorithm="randomized", n_iter=7).fit_transform(x)
    return normalize(dense), w, words


def _p_value(k: int, n: int, p0: float) -> float:
    """One-sided exact binomial p-value of k or more events in n at rate p0."""
    from scipy import stats

    return float(stats.binom.sf(k - 1, n, min(max(p0, 0.0), 1.0)))


def _interval(k: int, n: int) -> tuple[float, float]:
    """95% exact (Clopper-Pearson) interval of k events in n."""
    from scipy import stats

    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return float(ci.low), float(ci.high)


def _groups(vectors: np.ndarray, floor: int) -> list[np.ndarray]:
    """Every node of Ward's tree with at least `floor` members (its member indices), root excluded."""
    from scipy.cluster.hierarchy import linkage

    n = vectors.shape[0]
    tree = linkage(vectors, method="ward")
    members: list[np.ndarray | None] = [np.array([i]) for i in range(n)] + [None] * (n - 1)
    found = []
    for j, (a, b, _, size) in enumerate(tree):
        node = np.concatenate([members[int(a)], members[int(b)]])
        members[n + j] = node
        members[int(a)] = members[int(b)] = None  # children are not needed again: keep memory linear
        if floor <= size < n:
            found.append(np.sort(node))
    return found


def _top_terms(w: Any, vocabulary: np.ndarray, idx: np.ndarray, k: int = 5) -> tuple[str, ...]:
    inside = np.asarray(w[idx].mean(axis=0)).ravel()
    mask = np.ones(w.shape[0], dtype=bool)
    mask[idx] = False
    outside = np.asarray(w[mask].mean(axis=0)).ravel() if mask.any() else np.zeros_like(inside)
    lift = inside - outside
    order = np.lexsort((vocabulary, -lift))  # ties by the term itself: deterministic
    return tuple(str(vocabulary[i]) for i in order[:k] if lift[i] > 0)


def discover_slices(inputs: Sequence[ComparedInput], *, seed: int = 0, rule: DiscoveryRule = DEFAULT_RULE) -> Discovery:
    """Cluster `inputs` by their text and report the groups where the candidate loses or
    disagrees more than overall, under `rule` (see the module docstring). One BLAS thread: the
    matrices are small, and on a machine busy with model servers more threads made the SVD ~15x slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _discover(inputs, seed, rule)


def _discover(inputs: Sequence[ComparedInput], seed: int, rule: DiscoveryRule) -> Discovery:
    items = sorted(inputs, key=lambda x: x.example_id)
    n_all = len(items)
    if n_all > MAX_INPUTS:
        keep = np.sort(np.random.default_rng(seed).choice(n_all, size=MAX_INPUTS, replace=False))
        items = [items[i] for i in keep]
    n = len(items)
    floor = rule.size_floor(n)
    lost = np.array([x.lost is True for x in items])
    known = np.array([x.lost is not None for x in items])
    disagree = np.array([bool(x.disagrees) for x in items])
    overall_loss = float(lost[known].mean()) if known.any() else None
    overall_disagree = float(disagree.mean()) if n else 0.0
    signals = [s for s in rule.signals if s != "loss" or known.any()]

    def nothing(m: int = 0) -> Discovery:
        return Discovery(n_inputs=n_all, n_clustered=n, n_tested=m, threshold=rule.alpha / m if m else rule.alpha,
                         rule=rule.describe(n, max(m, 1)), overall_loss_rate=overall_loss, overall_disagree_rate=overall_disagree,
                         slices=())

    texts = [x.text or "" for x in items]
    if n < 2 * floor or not signals or not any(t.strip() for t in texts):
        return nothing()
    vectors, w, words = embed(texts, seed=seed)
    vocabulary = words.get_feature_names_out()
    groups = _groups(vectors, floor)
    m = len(groups) * len(signals)
    if m == 0:
        return nothing()
    threshold = rule.alpha / m

    passing: list[tuple[float, int, str, np.ndarray]] = []
    for g, idx in enumerate(groups):
        for signal in signals:
            if signal == "loss":
                sub = idx[known[idx]]
                events, size, p0 = int(lost[sub].sum()), len(sub), overall_loss
            else:
                events, size, p0 = int(disagree[idx].sum()), len(idx), overall_disagree
            if size < floor or events < rule.min_events or events / size <= p0:
                continue
            p = _p_value(events, size, p0)
            if p < threshold:
                passing.append((p, g, signal, idx))
    passing.sort(key=lambda t: (t[0], -len(t[3]), t[1], SIGNALS.index(t[2])))
    taken: list[tuple[set[int], DiscoveredSlice]] = []
    for p, _, signal, idx in passing:
        members = set(idx.tolist())
        if any(members <= other or other <= members for other, _ in taken):
            continue
        taken.append((members, _describe(items, idx, signal, p, lost, known, disagree, vectors, w, vocabulary, n)))
    return Discovery(n_inputs=n_all, n_clustered=n, n_tested=m, threshold=threshold, rule=rule.describe(n, m),
                     overall_loss_rate=overall_loss, overall_disagree_rate=overall_disagree, slices=tuple(s for _, s in taken))


def _rate_outside(flags: np.ndarray, valid: np.ndarray, idx: np.ndarray) -> float | None:
    mask = valid.copy()
    mask[idx] = False
    return float(flags[mask].mean()) if mask.any() else None


def _describe(items, idx, signal, p, lost, known, disagree, vectors, w, vocabulary, n) -> DiscoveredSlice:
    sub = idx[known[idx]]
    losses, loss_n = int(lost[sub].sum()), len(sub)
    if loss_n:
        loss_low, loss_high = _interval(losses, loss_n)
    every = np.ones(n, dtype=bool)
    disagreements = int(disagree[idx].sum())
    dis_low, dis_high = _interval(disagreements, len(idx))
    centre = vectors[idx].mean(axis=0)
    closeness = vectors[idx] @ centre
    flagged = lost[idx] if signal == "loss" else disagree[idx]
    order = sorted(range(len(idx)), key=lambda j: (not flagged[j], -closeness[j], items[idx[j]].example_id))
    examples = tuple({"example_id": items[idx[j]].example_id, "input": items[idx[j]].text,
                      "incumbent": items[idx[j]].incumbent_answer, "candidate": items[idx[j]].candidate_answer,
                      "lost": items[idx[j]].lost, "disagrees": bool(disagree[idx[j]])} for j in order[:3])
    return DiscoveredSlice(
        signal=signal, size=len(idx), share=len(idx) / n, member_ids=tuple(items[i].example_id for i in idx),
        loss_n=loss_n, losses=losses, loss_rate=losses / loss_n if loss_n else None,
        loss_ci_low=loss_low if loss_n else None, loss_ci_high=loss_high if loss_n else None,
        outside_loss_rate=_rate_outside(lost, known, idx), disagreements=disagreements,
        disagree_rate=disagreements / len(idx), disagree_ci_low=dis_low, disagree_ci_high=dis_high,
        outside_disagree_rate=_rate_outside(disagree, every, idx), p_value=p,
        terms=_top_terms(w, vocabulary, idx), examples=examples,
    )
