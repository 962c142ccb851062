"""Spurious attributes: how each one is asked about, phrased and prompted.

A value of an attribute is a phrase that reads naturally next to the class name: after it for
``background`` ("a fox *in a desert*") and ``size``, before it for ``color`` ("a *red* fox").
Every text the library makes from a (class, value) pair goes through [`prompt`][prompt], so prompts,
captioner templates and descriptions always agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "ATTRIBUTES",
    "Attribute",
    "get_attribute",
    "prompt",
    "register_attribute",
    "unregister_attribute",
    "with_article",
]


@dataclass(frozen=True)
class Attribute:
    """How one spurious attribute is asked about and phrased.

    Attributes:
        name: the attribute's name (``"background"``, ``"color"``, ...).
        question: the question put to a language model, with ``{class_name}``.
        value_before_class: whether values read before the class name (adjectives).
        plural: the plural used in messages ("backgrounds").

    Examples:
        An attribute of your own, whose values read before the class name:

        >>> from failmodes.attributes import Attribute, prompt
        >>> material = Attribute("material", "What are the uncommon materials of a {class_name}?",
        ...                      value_before_class=True, plural="materials")
        >>> prompt("chair", "glass", material)
        'a photo of a glass chair'
    """

    name: str
    question: str
    value_before_class: bool = False
    plural: str = ""


_REGISTRY: dict[str, Attribute] = {
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

ATTRIBUTES: Mapping[str, Attribute] = MappingProxyType(_REGISTRY)
"""The known attributes by name, read-only: ``background``, ``color``, ``size`` and those added
with [`register_attribute`][register_attribute]."""


def _key(name: str) -> str:
    key = name.strip().lower()
    return "color" if key == "colour" else key


def register_attribute(attribute: Attribute, *, replace: bool = False) -> Attribute:
    """Make an attribute known by its name to every part of the library.

    Register it once, when your program starts, before a component uses it: proposers then ask
    its question, prompts and captions place its values before or after the class name, and
    messages use its plural.

    Args:
        attribute: the attribute; its ``name`` (case and spaces ignored) is the key.
        replace: replace an attribute of that name registered before (a built-in one too).

    Returns:
        ``attribute``.

    Raises:
        TypeError: if ``attribute`` is not an [`Attribute`][Attribute].
        ValueError: if its name is blank, or another attribute has it and ``replace`` is false.

    Examples:
        >>> from failmodes.attributes import (Attribute, prompt, register_attribute,
        ...                                   unregister_attribute)
        >>> material = register_attribute(Attribute(
        ...     "material", "What are the uncommon materials of a {class_name}?",
        ...     value_before_class=True, plural="materials"))
        >>> prompt("chair", "glass", "material")
        'a photo of a glass chair'
        >>> unregister_attribute("material")
    """
    if not isinstance(attribute, Attribute):
        raise TypeError(f"attribute must be an Attribute, got {type(attribute).__name__}")
    if not isinstance(attribute.name, str) or not attribute.name.strip():
        raise ValueError(f"an attribute needs a non-empty name, got {attribute.name!r}")
    key = _key(attribute.name)
    known = _REGISTRY.get(key)
    if known is not None and known != attribute and not replace:
        raise ValueError(
            f"an attribute named {key!r} is registered already ({known}); pass replace=True to "
            "replace it"
        )
    _REGISTRY[key] = attribute
    return attribute


def unregister_attribute(name: str) -> None:
    """Forget an attribute registered with [`register_attribute`][register_attribute].

    Args:
        name: its name (case and spaces ignored).

    Raises:
        KeyError: if no attribute of that name is registered.
    """
    key = _key(name)
    if key not in _REGISTRY:
        raise KeyError(f"no attribute named {key!r} is registered; known: {sorted(_REGISTRY)}")
    del _REGISTRY[key]


def get_attribute(attribute: str | Attribute) -> Attribute:
    """Look up an attribute by name; an [`Attribute`][Attribute] passes through.

    Unknown names get a generic attribute whose values read after the class name.

    Args:
        attribute: a name (case and surrounding spaces ignored; ``"colour"`` is ``"color"``) or
            an [`Attribute`][Attribute].

    Returns:
        The registered attribute of that name (see [`ATTRIBUTES`][ATTRIBUTES]), ``attribute``
        itself, or a generic one.

    Raises:
        ValueError: if ``attribute`` is not an ``Attribute`` nor a non-empty string.

    Examples:
        >>> from failmodes.attributes import get_attribute
        >>> get_attribute("Colour").value_before_class, get_attribute("weather").plural
        (True, 'weathers')
    """
    if isinstance(attribute, Attribute):
        return attribute
    if not isinstance(attribute, str) or not attribute.strip():
        raise ValueError(f"attribute must be a non-empty string, got {attribute!r}")
    name = _key(attribute)
    return _REGISTRY.get(
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

    The article follows the first letter ("an" before a vowel), not the sound.

    Args:
        phrase: a noun phrase ("red circle").

    Returns:
        The phrase, stripped, with "a " or "an " before it unless it starts with "a", "an" or
        "the".

    Examples:
        >>> from failmodes.attributes import with_article
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

    Prompts, captioner texts and descriptions are all made here, so they always agree.

    Args:
        class_name: the class ("fox").
        value: the attribute's value ("in a desert", "red"), or ``None`` (or blank) for the bare
            class.
        attribute: the attribute ``value`` belongs to, by name or as an
            [`Attribute`][Attribute]; it decides whether the value goes before the class name.
        template: a format string with one ``{}``, which receives the class with its value and
            an article.

    Returns:
        The filled template.

    Raises:
        ValueError: if ``attribute`` is blank.

    Examples:
        >>> from failmodes.attributes import prompt
        >>> prompt("fox", "in a desert"), prompt("arrow", "red", "color"), prompt("fox", None)
        ('a photo of a fox in a desert', 'a photo of a red arrow', 'a photo of a fox')
        >>> prompt("fox", "in a desert", template="a blurry photo of {}.")
        'a blurry photo of a fox in a desert.'
    """
    return template.format(with_article(phrase(class_name, value, attribute)))
