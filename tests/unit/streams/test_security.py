"""Kafka client security from the settings, the test CA, and the secured broker's configuration,
without a broker (tests/integration/test_security.py runs them against Apache Kafka)."""

from __future__ import annotations

import asyncio
import ssl
import stat
from pathlib import Path

import pytest

from streams.brokers import SaslSslListener, ScramUser, server_properties
from streams.exceptions import SettingsError
from streams.settings import Settings
from streams.tls import write_test_pki
from streams.topics import kafka_client_options


def _sasl_ssl(**changes: str) -> Settings:
    env = {
        "CITYGRID_SECURITY_PROTOCOL": "SASL_SSL",
        "CITYGRID_SASL_USERNAME": "citygrid",
        "CITYGRID_SASL_PASSWORD": "s3cret",
    }
    return Settings.from_env(env | {f"CITYGRID_{k.upper()}": v for k, v in changes.items()})


def test_sasl_ssl_options_carry_the_user_and_verify_the_broker(tmp_path: Path) -> None:
    ca = write_test_pki(tmp_path).ca_file
    options = kafka_client_options(_sasl_ssl(ssl_cafile=str(ca)))

    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "citygrid",
        "s3cret",
    )
    context = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_plaintext_options_have_no_security() -> None:
    options = kafka_client_options(Settings.from_env({}))
    assert options == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}


def test_sasl_without_a_password_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="CITYGRID_SASL_PASSWORD"):
        kafka_client_options(_sasl_ssl(sasl_password=""))


def test_a_missing_ca_file_is_a_settings_error_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="CITYGRID_SSL_CAFILE"):
        kafka_client_options(_sasl_ssl(ssl_cafile=str(tmp_path / "missing.pem")))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_the_test_ca_vouches_for_the_server_at_its_loopback_names(
    tmp_path: Path, host: str
) -> None:
    pki = write_test_pki(tmp_path)
    client = kafka_client_options(_sasl_ssl(ssl_cafile=str(pki.ca_file)))["ssl_context"]

    assert await _handshake(pki.server_file, client, host) == "ok"


async def test_a_client_trusting_another_ca_refuses_the_server(tmp_path: Path) -> None:
    pki = write_test_pki(tmp_path / "broker")
    other = write_test_pki(tmp_path / "other")
    client = kafka_client_options(_sasl_ssl(ssl_cafile=str(other.ca_file)))["ssl_context"]

    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(pki.server_file, client, "127.0.0.1")


def test_the_server_key_store_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    pki = write_test_pki(tmp_path)
    assert stat.S_IMODE(pki.server_file.stat().st_mode) == 0o600
    text = pki.server_file.read_text()
    # Kafka's PEM key store: the certificate, then an unencrypted PKCS#8 key.
    assert text.index("BEGIN CERTIFICATE") < text.index("BEGIN PRIVATE KEY")


def test_a_secured_broker_takes_sasl_ssl_on_the_client_port_only(tmp_path: Path) -> None:
    listener = SaslSslListener(
        internal_port=19094, mechanism="SCRAM-SHA-512", key_store=tmp_path / "server.pem"
    )
    text = server_properties(
        port=19092, controller_port=19093, data_dir=tmp_path / "data", sasl_ssl=listener
    )
    props = dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )

    assert props["listeners"] == (
        "SASL_SSL://127.0.0.1:19092,INTERNAL://127.0.0.1:19094,CONTROLLER://127.0.0.1:19093"
    )
    assert props["listener.security.protocol.map"] == (
        "SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
    )
    assert props["inter.broker.listener.name"] == "INTERNAL"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert "ScramLoginModule" in props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    assert (props["ssl.keystore.type"], props["ssl.keystore.location"]) == (
        "PEM",
        str(tmp_path / "server.pem"),
    )


def test_scram_users_keep_their_password_out_of_repr_and_refuse_commas() -> None:
    user = ScramUser("citygrid", 'p"w=x')
    assert 'p"w' not in repr(user)
    assert user.add_scram_argument() == 'SCRAM-SHA-512=[name="citygrid",password="p"w=x"]'
    with pytest.raises(ValueError, match="commas"):
        ScramUser("citygrid", "a,b")


async def _handshake(server_file: Path, client: ssl.SSLContext, host: str) -> str:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(server_file)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server)
    port = listener.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client, server_hostname=host
            )
            reply = await reader.read()
            writer.close()
    finally:
        listener.close()
    return reply.decode()
