"""Merging redundant attribute values ("in a desert", "desert", "In the Deserts" -> one value).

A proposer (a language model, a user's list) often names one value several ways. Values are
merged on a normalised key that ignores case, accents, whitespace, punctuation, articles,
simple English plurals and leading prepositions; the first phrase of each group is kept as it
was written, so a kept value reads in a prompt exactly as its author wrote it.

Near-synonyms ("sea" and "ocean") are not merged here: that needs a language model or an
embedding, and belongs to the proposer that has one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = ["merge_values", "normalize_value"]

_ARTICLES = frozenset({"a", "an", "the"})

# Leading words dropped from the key: a value is the same place whether a fox is "in" it or
# "on" it ("in front of a house" -> "house", "next to a river" -> "river").
PREPOSITIONS = frozenset(
    {
        "about",
        "above",
        "across",
        "against",
        "along",
        "alongside",
        "amid",
        "amidst",
        "among",
        "amongst",
        "around",
        "at",
        "atop",
        "before",
        "behind",
        "below",
        "beneath",
        "beside",
        "besides",
        "between",
        "beyond",
        "by",
        "during",
        "from",
        "in",
        "inside",
        "into",
        "near",
        "off",
        "on",
        "onto",
        "outside",
        "over",
        "through",
        "throughout",
        "toward",
        "towards",
        "under",
        "underneath",
        "upon",
        "with",
        "within",
    }
)
PREPOSITION_PHRASES = (
    ("bottom", "of"),
    ("close", "to"),
    ("front", "of"),
    ("middle", "of"),
    ("next", "to"),
    ("out", "of"),
    ("top", "of"),
)

# Punctuation and symbols split words ("snow-covered" = "snow covered"); apostrophes join them.
_APOSTROPHES = re.compile(r"['\u2019\u02bc`]")
_NON_WORD = re.compile(r"[^\w\s]|_")


def _singular(word: str) -> str:
    """A simple English singular; it only has to map a word and its plural to the same key."""
    if len(word) <= 3 or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"  # cities -> city (pies -> pie by the last rule)
    if word.endswith(("sses", "ches", "shes", "xes", "zzes")):
        return word[:-2]  # grasses -> grass, beaches -> beach, bushes -> bush, boxes -> box
    return word[:-1]  # deserts -> desert, lakes -> lake


def _fold(text: str) -> str:
    """Case- and accent-folded text (NFKD, combining marks dropped, casefolded)."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    folded = unicodedata.normalize("NFKD", stripped.casefold())
    return "".join(c for c in folded if not unicodedata.combining(c))


def normalize_value(value: str) -> str:
    """The merge key of an attribute value: two values with the same key are the same value.

    The key ignores case, accents, whitespace, punctuation, articles (a/an/the), simple English
    plurals (deserts/desert, beaches/beach, cities/city) and leading prepositions (in, on, at,
    under, near, inside, among, next to, in front of, ...). A value made only of such words keeps
    them ("in" stays "in"), and a value without any word characters is keyed on its folded text,
    so only a blank value has an empty key.

    Args:
        value: an attribute value as a proposer wrote it.

    Returns:
        The key, words separated by single spaces; ``""`` only for a blank value.

    Raises:
        TypeError: if ``value`` is not a string.

    Examples:
        >>> normalize_value("In the Deserts"), normalize_value("on a frozen lake")
        ('desert', 'frozen lake')
        >>> normalize_value("near  sandy beaches!") == normalize_value("sandy beach")
        True
    """
    if not isinstance(value, str):
        raise TypeError(f"an attribute value must be a string, got {type(value).__name__}")
    folded = _fold(value)
    words = [_singular(w) for w in _NON_WORD.sub(" ", _APOSTROPHES.sub("", folded)).split()]
    if not words:  # no word characters ("!!!", a lone combining mark): key the text itself
        return " ".join(folded.split()) or " ".join(value.split())
    while len(words) > 1:
        phrase = next((p for p in PREPOSITION_PHRASES if tuple(words[: len(p)]) == p), None)
        if phrase is not None and len(words) > len(phrase):
            del words[: len(phrase)]
        elif words[0] in PREPOSITIONS or words[0] in _ARTICLES:
            del words[0]
        else:
            break
    content = [w for w in words if w not in _ARTICLES]
    return " ".join(content or words)


def merge_values(values: Iterable[str]) -> list[str]:
    """Merge redundant attribute values, keeping the first phrase of each group.

    Values whose [`normalize_value`][normalize_value] keys are equal are merged into the first of
    them, in input order. Kept values are the original phrases with their whitespace tidied
    (stripped, inner runs collapsed to one space): no word is added, removed or changed, so a prompt
    made from a kept value is the prompt of one of the inputs. Blank values are dropped.

    Args:
        values: attribute values, for one class and one attribute.

    Returns:
        The kept values, in the order they first appeared.

    Raises:
        TypeError: if ``values`` is a single string or holds a non-string.

    Examples:
        >>> merge_values(["in a desert", "desert", "In the Deserts", "on a frozen lake",
        ...               "frozen lake"])
        ['in a desert', 'on a frozen lake']
    """
    if isinstance(values, str):
        raise TypeError(
            f"values must be a list of strings, not a single string ({values!r}); "
            f"wrap it in a list: [{values!r}]"
        )
    kept: dict[str, str] = {}
    for value in values:
        key = normalize_value(value)
        if key and key not in kept:
            kept[key] = " ".join(value.split())
    return list(kept.values())
