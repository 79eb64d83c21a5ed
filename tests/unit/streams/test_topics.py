"""The topic catalogue is the contract's topic table."""

from __future__ import annotations

from schemas.enums import Domain
from streams.settings import Settings
from streams.topics import CATALOGUE, EVENT_TOPICS, domain_of_topic, topic_name


def test_catalogue_holds_exactly_the_contract_topics_and_the_kpi_extension() -> None:
    assert {spec.name for spec in CATALOGUE} == {
        "city.events.fire",
        "city.events.environment",
        "city.events.sanitation",
        "city.events.citymgmt",
        "city.feedback",
        "city.registry.roads",
        "city.tasks.state",
        "city.tasks.events",
        "city.events.dlq",
        "city.kpi.roads",
    }


def test_names_are_lowercase_and_dot_separated() -> None:
    for spec in CATALOGUE:
        assert spec.name == spec.name.lower()
        assert "_" not in spec.name


def test_latest_state_topics_are_compacted_and_the_rest_are_not() -> None:
    compacted = {spec.name for spec in CATALOGUE if spec.config["cleanup.policy"] == "compact"}
    assert compacted == {"city.tasks.state", "city.registry.roads", "city.kpi.roads"}


def test_every_domain_has_its_input_topic_and_the_prefix_applies() -> None:
    settings = Settings.from_env({"CITYGRID_TOPIC_PREFIX": "dev."})
    for domain in Domain:
        name = topic_name(settings, EVENT_TOPICS[domain])
        assert name == f"dev.city.events.{domain.value}"
        assert domain_of_topic(settings, name) is domain
    assert domain_of_topic(settings, "city.events.fire") is None
    assert domain_of_topic(settings, "dev.city.feedback") is None
