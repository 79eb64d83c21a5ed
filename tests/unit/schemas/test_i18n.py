"""Every closed vocabulary and every category has a name in both languages."""

from __future__ import annotations

from enum import StrEnum

import pytest

from schemas.categories import CATEGORIES
from schemas.enums import (
    Action,
    Domain,
    Priority,
    RejectReason,
    Severity,
    Source,
    Status,
    TaskEventType,
)
from schemas.i18n import DEFAULT_LANGUAGE, LANGUAGES, LabelKind, label, load_labels

VOCABULARIES: dict[LabelKind, type[StrEnum]] = {
    "status": Status,
    "action": Action,
    "domain": Domain,
    "source": Source,
    "priority": Priority,
    "severity": Severity,
    "event": TaskEventType,
    "reason": RejectReason,
}


def test_the_default_language_is_chinese() -> None:
    assert DEFAULT_LANGUAGE == "zh-CN"
    assert LANGUAGES == ("zh-CN", "en")


@pytest.mark.parametrize("kind", sorted(VOCABULARIES))
def test_every_enum_member_has_a_name_in_each_language(kind: LabelKind) -> None:
    table = load_labels()[kind]
    for member in VOCABULARIES[kind]:
        assert set(table.get(member.value, {})) == set(LANGUAGES), f"{kind} {member.value}"
        for language in LANGUAGES:
            assert label(kind, member.value, language).strip(), f"{kind} {member.value}"


@pytest.mark.parametrize("kind", sorted(VOCABULARIES))
def test_the_table_names_nothing_the_enums_do_not_hold(kind: LabelKind) -> None:
    assert set(load_labels()[kind]) == {m.value for m in VOCABULARIES[kind]}


def test_every_kind_in_the_table_is_a_known_kind() -> None:
    assert set(load_labels()) == {*VOCABULARIES, "ui"}


def test_every_ui_label_has_both_languages_and_the_same_placeholders() -> None:
    for key, names in load_labels()["ui"].items():
        assert set(names) == set(LANGUAGES), key
        assert len({names[lang].count("{}") for lang in LANGUAGES}) == 1, key


def test_every_category_has_a_name_in_each_language() -> None:
    for code, category in CATEGORIES.items():
        zh, en = label("category", code, "zh-CN"), label("category", code, "en")
        assert zh == category.name_zh
        assert en == category.name_en
        assert zh.strip()
        assert en.strip()
        assert zh != en, code


def test_names_read_as_the_field_says() -> None:
    assert label("status", "suspended") == "挂账"
    assert label("status", "suspended", "en") == "Suspended"
    assert label("event", "verify_failed") == "返工"
    assert label("category", "4001", "en") == CATEGORIES["4001"].name_en


def test_a_value_from_a_newer_producer_shows_its_wire_value() -> None:
    assert label("category", "9999", "en") == "9999"
    assert label("status", "escalated", "zh-CN") == "escalated"


def test_an_unknown_ui_label_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        label("ui", "no_such_label")
