"""Spurious attributes: how each one is asked about, phrased and prompted.

A value of an attribute is a phrase that reads naturally next to the class name: after it for
``background`` ("a fox *in a desert*") and ``size``, before it for ``color`` ("a *red* fox").
Every text the library makes from a (class, value) pair goes through [`prompt`][prompt], so prompts,
captioner templates and descriptions always agree.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ATTRIBUTES", "Attribute", "get_attribute", "prompt", "with_article"]


@dataclass(frozen=True)
class Attribute:
    """How one spurious attribute is asked about and phrased.

    Attributes:
        name: the attribute's name (``"background"``, ``"color"``, ...).
        question: the question put to a language model, with ``{class_name}``.
        value_before_class: whether values read before the class name (adjectives).
        plural: the plural used in messages ("backgrounds").
    """

    name: str
    question: str
    value_before_class: bool = False
    plural: str = ""


ATTRIBUTES: dict[str, Attribute] = {
    "background": Attribute(
        "background",
        "What are the uncommon backgrounds that a {class_name} can appear in?",
        plural="backgrounds",
    ),
    "color": Attribute(
        "color",
        "What are the uncommon colors that a {class_name} can have?",
        value_before_class=True,
        plural="colors",
    ),
    "size": Attribute(
        "size",
        "What are the uncommon sizes that a {class_name} can have?",
        value_before_class=True,
        plural="sizes",
    ),
}
"""The built-in attributes by name: ``background``, ``color`` and the others listed here."""


def get_attribute(attribute: str | Attribute) -> Attribute:
    """Look up an attribute by name; an [`Attribute`][Attribute] passes through.

    Unknown names get a generic attribute whose values read after the class name.
    """
    if isinstance(attribute, Attribute):
        return attribute
    if not isinstance(attribute, str) or not attribute.strip():
        raise ValueError(f"attribute must be a non-empty string, got {attribute!r}")
    name = attribute.strip().lower()
    if name == "colour":
        name = "color"
    return ATTRIBUTES.get(
        name,
        Attribute(
            name,
            f"What are the uncommon {name}s that a {{class_name}} can have?",
            plural=f"{name}s",
        ),
    )


_ARTICLES = ("a ", "an ", "the ")


def with_article(phrase: str) -> str:
    """Prefix an indefinite article unless the phrase already has a determiner.

    >>> with_article("arrow"), with_article("red circle"), with_article("the sea")
    ('an arrow', 'a red circle', 'the sea')
    """
    text = phrase.strip()
    if text.lower().startswith(_ARTICLES):
        return text
    return ("an " if text[:1].lower() in "aeiou" else "a ") + text


def phrase(class_name: str, value: str | None, attribute: str | Attribute = "background") -> str:
    """The class name with its value, no article: ``"circle on grass"``, ``"red circle"``."""
    if value is None or not value.strip():
        return class_name
    if get_attribute(attribute).value_before_class:
        return f"{value.strip()} {class_name}"
    return f"{class_name} {value.strip()}"


def prompt(
    class_name: str,
    value: str | None,
    attribute: str | Attribute = "background",
    template: str = "a photo of {}",
) -> str:
    """The prompt for a (class, value) pair; ``value=None`` gives the bare class.

    >>> prompt("fox", "in a desert"), prompt("arrow", "red", "color"), prompt("fox", None)
    ('a photo of a fox in a desert', 'a photo of a red arrow', 'a photo of a fox')
    """
    return template.format(with_article(phrase(class_name, value, attribute)))
