import pytest

from failmodes.attributes import get_attribute, phrase, prompt, with_article


def test_prompts_read_as_english():
    assert prompt("fox", "in a desert") == "a photo of a fox in a desert"
    assert prompt("arrow", "on grass") == "a photo of an arrow on grass"
    assert prompt("circle", "red", "color") == "a photo of a red circle"
    assert prompt("arrow", "orange", "color") == "a photo of an orange arrow"
    assert prompt("wallet", None) == "a photo of a wallet"
    assert prompt("tench", "in a hand", template="{}") == "a tench in a hand"


def test_article_is_not_doubled():
    assert with_article("the sea") == "the sea"
    assert with_article("an egg") == "an egg"
    assert with_article("  egg ") == "an egg"


def test_phrase_orders_value_by_attribute():
    assert phrase("circle", "on grass") == "circle on grass"
    assert phrase("circle", "red", "color") == "red circle"
    assert phrase("circle", "tiny", "size") == "tiny circle"
    assert phrase("circle", "  ") == "circle"


def test_attribute_lookup():
    assert get_attribute("colour").name == "color"
    assert "{class_name}" in get_attribute("weather").question
    with pytest.raises(ValueError, match="attribute"):
        get_attribute("")
