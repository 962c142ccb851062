"""StaticProposer and the merging of redundant attribute values."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import failmodes
from failmodes.attributes import prompt
from failmodes.interfaces import BackgroundProposer
from failmodes.proposers import StaticProposer, merge_values, normalize_value


def tidy(value: str) -> str:
    return " ".join(value.split())


# -- merge_values: examples ----------------------------------------------------------------------


def test_merge_example_from_the_design():
    values = ["in a desert", "desert", "In the Deserts", "on a frozen lake", "frozen lake"]
    assert merge_values(values) == ["in a desert", "on a frozen lake"]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("desert", "Desert"),  # case
        ("frozen lake", "  frozen \t lake "),  # whitespace
        ("snow-covered field", "snow covered field!"),  # punctuation
        ("the beach", "a beach"),  # articles
        ("an oasis", "oasis"),
        ("desert", "deserts"),  # plurals
        ("beach", "beaches"),
        ("city", "cities"),
        ("bush", "bushes"),
        ("grass", "grasses"),
        ("box", "boxes"),
        ("in a desert", "desert"),  # leading prepositions
        ("on a frozen lake", "frozen lake"),
        ("at the beach", "beach"),
        ("by a river", "river"),
        ("under water", "water"),
        ("near a volcano", "volcano"),
        ("inside a cave", "cave"),
        ("among flowers", "flower"),
        ("with snow", "snow"),
        ("over the sea", "sea"),
        ("beside a road", "road"),
        ("next to a river", "river"),
        ("in front of a house", "house"),
        ("on top of a mountain", "mountain"),
        ("in the middle of a desert", "desert"),
        ("café", "Cafe"),  # accents
        ("in a fox's den", "fox den"),  # apostrophes
    ],
)
def test_merged_pairs(a, b):
    assert normalize_value(a) == normalize_value(b)
    assert merge_values([a, b]) == [tidy(a)]
    assert merge_values([b, a]) == [tidy(b)]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("desert", "forest"),
        ("frozen lake", "lake"),  # a modifier is information
        ("red", "dark red"),
        ("in a car", "in a car park"),
        ("grass", "glass"),
        ("cactus", "cact"),  # "us" is not a plural ending
        ("in", "on"),  # a lone preposition is kept
    ],
)
def test_distinct_values_stay_apart(a, b):
    assert normalize_value(a) != normalize_value(b)
    assert merge_values([a, b]) == [a, b]


def test_merge_keeps_first_phrase_order_and_tidies_whitespace():
    values = ["  on   grass ", "Grass", "in a desert", "", "   ", "\n", "ON GRASS", "deserts"]
    assert merge_values(values) == ["on grass", "in a desert"]


def test_merge_keeps_every_word_of_kept_values():
    # punctuation and case of a kept value are the author's, untouched
    assert merge_values(["On the Snowy Peaks!", "snowy peak"]) == ["On the Snowy Peaks!"]


def test_prompts_from_merged_values_are_prompts_of_inputs():
    values = ["in a desert", "Deserts", "on a frozen lake", "the frozen lakes", "under water"]
    inputs = {prompt("fox", v) for v in values}
    for value in merge_values(values):
        assert prompt("fox", value) in inputs
    assert prompt("fox", merge_values(values)[0]) == "a photo of a fox in a desert"


def test_keys():
    assert normalize_value("In the Deserts") == "desert"
    assert normalize_value("on a frozen lake") == "frozen lake"
    assert normalize_value("   ") == ""
    assert normalize_value("in") == "in"
    assert normalize_value("the") == "the"
    assert normalize_value("!!!") == "!!!"  # no words: keyed on its folded text
    assert normalize_value("\u0301") == "\u0301"  # a lone combining mark is not blank


def test_merge_rejects_a_single_string_and_non_strings():
    with pytest.raises(TypeError, match="single string"):
        merge_values("in a desert")
    with pytest.raises(TypeError, match="must be a string"):
        merge_values(["in a desert", None])
    with pytest.raises(TypeError, match="must be a string"):
        normalize_value(3)


def test_merge_accepts_any_iterable():
    assert merge_values(v for v in ["a desert", "desert", "sea"]) == ["a desert", "sea"]
    assert merge_values([]) == []


# -- merge_values: properties --------------------------------------------------------------------

_WORDS = st.sampled_from(
    [
        "desert",
        "deserts",
        "Desert",
        "beach",
        "beaches",
        "city",
        "cities",
        "frozen",
        "lake",
        "lakes",
        "snowy",
        "grass",
        "grasses",
        "red",
        "dark",
        "cafe",
        "café",
        "us",
        "is",
        "front",
        "top",
        "of",
    ]
)
_LEADING = st.sampled_from(
    [
        "",
        "in",
        "on",
        "In",
        "at",
        "by",
        "under",
        "near",
        "inside",
        "among",
        "with",
        "over",
        "beside",
        "a",
        "an",
        "the",
        "The",
        "next to",
        "in front of",
        "on top of",
    ]
)
_SPACE = st.sampled_from([" ", "  ", "\t", " \n "])


@st.composite
def phrases(draw) -> str:
    """Phrases made to collide: prepositions, articles, plurals, case, punctuation, spacing."""
    words = [draw(_LEADING), draw(_LEADING), *draw(st.lists(_WORDS, min_size=0, max_size=3))]
    text = draw(_SPACE).join(w for w in words if w)
    return draw(_SPACE) + text + draw(st.sampled_from(["", "!", ".", ",", "'s", " -"]))


any_text = st.text(st.characters(codec="utf-8"), max_size=12)
values_lists = st.lists(st.one_of(phrases(), any_text), max_size=12)


@settings(max_examples=150, deadline=None)
@given(values_lists)
def test_merge_is_idempotent(values):
    merged = merge_values(values)
    assert merge_values(merged) == merged


@settings(max_examples=150, deadline=None)
@given(values_lists)
def test_merge_output_is_a_subsequence_of_the_tidied_input(values):
    merged = merge_values(values)
    tidied = iter(tidy(v) for v in values)
    assert all(any(out == t for t in tidied) for out in merged)


@settings(max_examples=150, deadline=None)
@given(values_lists)
def test_merge_outputs_have_distinct_keys_covering_all_inputs(values):
    merged = merge_values(values)
    keys = [normalize_value(v) for v in merged]
    assert len(set(keys)) == len(keys)
    assert "" not in keys
    assert {normalize_value(v) for v in values if v.strip()} == set(keys)


@settings(max_examples=150, deadline=None)
@given(st.one_of(phrases(), any_text))
def test_key_is_its_own_key_and_empty_only_when_blank(value):
    key = normalize_value(value)
    assert normalize_value(key) == key
    assert normalize_value(tidy(value)) == key
    assert (key == "") == (not value.strip())


# -- StaticProposer ------------------------------------------------------------------------------


def test_static_proposer_from_a_mapping():
    proposer = StaticProposer(
        {"fox": ["in a desert", "Deserts", "on a frozen lake"], "owl": ["at the beach"], "x": []}
    )
    assert isinstance(proposer, BackgroundProposer)
    proposals = proposer.propose(["owl", "fox"])
    assert proposals == {"owl": ["at the beach"], "fox": ["in a desert", "on a frozen lake"]}
    assert list(proposals) == ["owl", "fox"]  # exactly the classes asked, in order
    assert proposer.propose(["fox"], attribute="color") == {
        "fox": ["in a desert", "on a frozen lake"]
    }


def test_static_proposer_from_a_callable_gets_the_canonical_attribute():
    calls = []

    def values(class_name, attribute):
        calls.append((class_name, attribute))
        return iter([f"{attribute} one", f"{attribute.upper()} ONE", "two"])

    proposals = StaticProposer(values).propose(["arrow", "circle"], attribute="colour")
    assert calls == [("arrow", "color"), ("circle", "color")]
    assert proposals == {"arrow": ["color one", "two"], "circle": ["color one", "two"]}


def test_static_proposer_names_every_missing_class():
    proposer = StaticProposer({"fox": ["in a desert"]})
    with pytest.raises(ValueError, match=r"no values for class\(es\) \['owl', 'cat'\]") as err:
        proposer.propose(["fox", "owl", "cat", "owl"])
    assert "values=" in str(err.value) and "'fox'" in str(err.value)


def test_static_proposer_warns_on_a_class_without_values(caplog):
    with caplog.at_level(logging.WARNING, logger="failmodes"):
        assert StaticProposer({"fox": ["", "  "]}).propose(["fox"]) == {"fox": []}
    assert "fox" in caplog.text


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"fox": "in a desert"}, "list of strings for class 'fox'"),
        ({"fox": {"in a desert", "on a lake"}}, "set has no order"),
        ({"fox": 3}, "list of strings"),
        (lambda c, a: None, "list of strings for class 'fox'"),
        (["fox", "in a desert"], "mapping"),
    ],
)
def test_static_proposer_rejects_bad_values(values, match):
    with pytest.raises(TypeError, match=match):
        StaticProposer(values).propose(["fox"])


def test_static_proposer_rejects_a_string_of_class_names_and_a_blank_attribute():
    proposer = StaticProposer({"fox": ["in a desert"]})
    with pytest.raises(TypeError, match="not a string"):
        proposer.propose("fox")
    with pytest.raises(ValueError, match="attribute"):
        proposer.propose(["fox"], attribute=" ")


def test_static_proposer_constructor_only_stores():
    source = {"fox": "not checked here"}
    proposer = StaticProposer(source)
    assert vars(proposer) == {"values": source, "usual": None}
    assert proposer.values is source


def test_public_exports():
    assert failmodes.StaticProposer is StaticProposer
    assert failmodes.merge_values is merge_values
