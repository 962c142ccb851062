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


def test_an_attribute_is_registered_through_a_function():
    from failmodes.attributes import (
        ATTRIBUTES,
        Attribute,
        get_attribute,
        prompt,
        register_attribute,
        unregister_attribute,
    )

    material = Attribute(
        "Material",
        "What are the uncommon materials of a {class_name}?",
        value_before_class=True,
        plural="materials",
    )
    try:
        assert register_attribute(material) is material
        assert ATTRIBUTES["material"] is material and get_attribute("material") is material
        assert prompt("chair", "glass", "material") == "a photo of a glass chair"
        register_attribute(material)  # the same one again: nothing to replace
        other = Attribute("material", "Which materials?")
        with pytest.raises(ValueError, match="registered already.*replace=True"):
            register_attribute(other)
        assert register_attribute(other, replace=True) is get_attribute("material")
    finally:
        unregister_attribute("material")
    assert "material" not in ATTRIBUTES
    with pytest.raises(TypeError, match="read-only|does not support item assignment"):
        ATTRIBUTES["material"] = material
    with pytest.raises(KeyError, match="no attribute named 'material'"):
        unregister_attribute("material")
    with pytest.raises(TypeError, match="must be an Attribute"):
        register_attribute("material")
