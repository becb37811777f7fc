"""Reading a value out of a model's free-text answer: a label, a number, a JSON object.

Small models answer plainly, and not always in the shape asked for: `Cards`, `[[ auto_and_commute ]]`,
`"card arrival".`, `Label: cards`, `The amount is 42.`, or a JSON object inside a code fence. Both
the shipped prompt's parser (`offramp.tasks.feature.prompts`) and the plain adapter of DSPy
programs (`search_spaces.plain_adapter`) read answers with these functions, so a config is not
scored 0 for its punctuation. They never guess: an answer naming two labels is unparsed.

No DSPy and no upper layer here: it is imported by the shipped prompt's hot path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_SEPARATORS = re.compile(r"[\s_\-]+")
_EDGES = " \t\r\n\"'`*.,:;!?()[]{}<>"


def normalise(text: str) -> str:
    """Lower case, underscores/dashes/runs of space as one space, brackets and quotes off the
    edges: `[[ Auto_and_Commute ]]` and `"auto and commute".` read the same."""
    return _SEPARATORS.sub(" ", text.lower()).strip(_EDGES).strip()


def _mention_form(text: str) -> str:
    """Lower case, underscores as spaces: `card_arrival` is mentioned in "my card arrival". Dashes
    stay part of a word, so `urgent` is not mentioned in "non-urgent"."""
    return re.sub(r"[\s_]+", " ", text.lower()).strip()


def _spans(needle: str, haystack: str) -> list[tuple[int, int]]:
    """Where `needle` occurs in `haystack` as whole words (no letter, digit or dash on either side)."""
    pattern = rf"(?<![\w-]){re.escape(needle)}(?![\w-])"
    return [m.span() for m in re.finditer(pattern, haystack)]


def _inside(span: tuple[int, int], others: list[tuple[int, int]]) -> bool:
    """`span` lies within a longer span of `others`."""
    return any(o[0] <= span[0] and span[1] <= o[1] and o != span for o in others)


def read_label(text: str, labels: Sequence[str]) -> str | None:
    """The label an answer gives, or None.

    Exact first (ignoring case, quotes, brackets, underscores vs spaces); else the one label the
    answer mentions as whole words, a label inside a longer mentioned label not counting
    (`card` in `card arrival`); two different labels mentioned: None (ambiguous)."""
    if not labels:
        return None
    raw = " ".join(text.strip().strip("\"'`.").lower().split())
    exact = [label for label in labels if label.lower() == raw]
    if exact:
        return exact[0]
    wanted = normalise(text)
    same = [label for label in labels if normalise(label) == wanted]
    if len(same) == 1:
        return same[0]
    if same:
        return None
    text_form = _mention_form(text)
    found = {label: _spans(_mention_form(label), text_form) for label in labels if _mention_form(label)}
    found = {label: spans for label, spans in found.items() if spans}
    longer = {label: [o for other, spans in found.items() if other != label for o in spans] for label in found}
    kept = [label for label, spans in found.items() if not all(_inside(s, longer[label]) for s in spans)]
    return kept[0] if len(kept) == 1 else None


def read_number(text: Any) -> float | None:
    """The first number in an answer (`1,200.50` is 1200.5), or None."""
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, float)):
        return float(text)
    match = NUMBER.search(str(text))
    return float(match.group().replace(",", "")) if match else None


def read_json(text: str, kind: type = dict) -> Any:
    """The first JSON value of `kind` (an object by default, or a list) in an answer: the model may
    wrap it in prose or a code fence. None if there is none."""
    opener = "{" if kind is dict else "["
    decoder = json.JSONDecoder()
    start = text.find(opener)
    while start >= 0:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, kind):
            return value
        start = text.find(opener, start + 1)
    return None
