"""Display names in zh-CN and en: the closed vocabularies of :mod:`schemas.enums`, the category
table and the consoles' own labels, from ``schemas/data/i18n.json`` and the category table."""

from __future__ import annotations

from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Final, Literal, get_args

from schemas.categories import CATEGORIES
from schemas.json import loads

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "LabelKind",
    "Language",
    "label",
    "load_labels",
]

Language = Literal["zh-CN", "en"]
LANGUAGES: Final[tuple[Language, ...]] = get_args(Language)
DEFAULT_LANGUAGE: Final[Language] = "zh-CN"

LabelKind = Literal[
    "category", "status", "action", "domain", "source", "priority", "severity", "event", "reason",
    "ui",
]  # fmt: skip
"""What a value names: a category code, an enum's wire value (``event`` for TaskEvent types,
``reason`` for dead-letter reasons) or a console label (``ui``)."""

Table = MappingProxyType[str, MappingProxyType[str, MappingProxyType[str, str]]]


@cache
def load_labels() -> Table:
    """The shipped translation table, kind → value → language → text (categories excluded)."""
    raw = loads(resources.files("schemas").joinpath("data", "i18n.json").read_bytes())
    return MappingProxyType(
        {
            kind: MappingProxyType(
                {value: MappingProxyType(dict(names)) for value, names in rows.items()}
            )
            for kind, rows in raw.items()
            if not kind.startswith("_")
        }
    )


def label(kind: LabelKind, value: str, language: Language = DEFAULT_LANGUAGE) -> str:
    """The name of ``value`` in ``language``.

    Data from a newer producer (a category code or status this build does not know) shows its
    wire value rather than failing; an unknown ``ui`` label is a programming error and raises
    KeyError.
    """
    if kind == "category":
        category = CATEGORIES.get(value)
        if category is None:
            return value
        return category.name_zh if language == "zh-CN" else category.name_en
    if kind == "ui":
        return load_labels()["ui"][value][language]
    names = load_labels()[kind].get(value)
    return value if names is None else names[language]
