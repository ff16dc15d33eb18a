"""A user's interest profile: what the items of a history have in common, long-term and short-term.

A count-based profile of the item attributes, not a reading of the model: each event adds one to each of its item's
genres (any list-valued catalog attribute), to the decade of its year and to each keyword of its title, and the
weights are those counts divided by their sum. It describes what the user interacted with; what drove a
recommendation is for `lsrec_hf.inference.explain`.

The split is the model's: short-term is the events of the short segment the model reads last, long-term the events
before it (none when the history fits in the short segment: the long-term profile is then `{}`).
"""

import re
from collections import Counter

from .user_state import short_segment_length

DEFAULT_TOP_N = 5
# Title words of 3+ letters too common to tell tastes apart (and the articles of foreign titles).
STOPWORDS = frozenset(
    "the and for with from not you your his her its our their this that what who how when where out all one two "
    "les las los der die das des une del con".split()
)


def _decade(year):
    match = re.search(r"\d{4}", str(year))
    return f"{match.group()[:3]}0s" if match else None


def title_keywords(title):
    """Lower-cased words of 3+ letters of a title, stop words left out, each once ("Star Wars" -> star, wars)."""
    words = re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)?", title.casefold())
    return list(dict.fromkeys(w for w in words if len(w) > 2 and w not in STOPWORDS))


def item_aspects(catalog, index):
    """`{kind: [values]}` of one catalog item: its list-valued attributes (genres), decade and title keywords."""
    aspects = {}
    for name, values in catalog.attributes.items():
        value = values[index]
        if name == "year":
            decade = _decade(value)
            aspects["decades"] = [decade] if decade else []
        elif isinstance(value, (list, tuple)):
            aspects[name] = [str(v) for v in value]
    aspects["keywords"] = title_keywords(catalog.titles[index])
    return aspects


def _profile(catalog, indices, top_n):
    counts = {}
    for index in reversed(indices):  # newest first: equal counts are ranked by recency
        for kind, values in item_aspects(catalog, index).items():
            counts.setdefault(kind, Counter()).update(values)
    return {kind: {value: count / sum(counter.values()) for value, count in counter.most_common(top_n)}
            for kind, counter in counts.items()}


def interest_profile(model, history_item_indices, top_n=DEFAULT_TOP_N):
    """The long-term and short-term interests of one user's history (catalog indices, oldest first).

    Returns `{"long_term": profile, "short_term": profile}`, each profile `{kind: {aspect: weight}}`, e.g.
    `{"genres": {"Drama": 0.31, ...}, "decades": {"1990s": 0.8, ...}, "keywords": {"star": 0.05, ...}}`: the
    `top_n` aspects of each kind, best first, weighted by their share of all that kind's counts in that part of the
    history (so the weights sum to 1 when nothing is cut). `long_term` is `{}` when the history has no events before
    the short segment: the short term is not repeated as a long term. Needs the model's catalog.
    """
    history = [int(i) for i in history_item_indices]
    if not history:
        raise ValueError("an interest profile needs at least one event")
    split = max(len(history) - short_segment_length(model.config), 0)
    return {"long_term": _profile(model.catalog, history[:split], top_n),
            "short_term": _profile(model.catalog, history[split:], top_n)}


__all__ = ["interest_profile", "item_aspects", "title_keywords"]
