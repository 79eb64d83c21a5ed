"""The broker fixtures of the integration suite, for the end-to-end tests that need a broker."""

from tests.integration.conftest import broker_choice, kafka_bootstrap, unique_name  # noqa: F401
