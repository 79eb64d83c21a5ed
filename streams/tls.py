"""A throwaway certificate authority and a server certificate it signs, for local TLS brokers.

``citygrid broker start --secure`` and the security tests use these to give a loopback broker a
certificate that clients can verify; nothing here is meant for a real cluster, whose certificates
come from the organisation's own CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CA_FILE", "SERVER_FILE", "TestPki", "certificate_expires", "write_test_pki"]

CA_FILE = "ca.pem"
"""The CA certificate: what clients trust (``CITYGRID_SSL_CAFILE``)."""

SERVER_FILE = "server.pem"
"""The server certificate, then its unencrypted PKCS#8 private key: a Kafka PEM key store."""


class TestPki(NamedTuple):
    """Where :func:`write_test_pki` wrote the CA certificate and the server's key store."""

    ca_file: Path
    server_file: Path


def write_test_pki(
    directory: Path,
    *,
    hosts: Sequence[str] = ("127.0.0.1", "localhost"),
    days: int = 90,
) -> TestPki:
    """Create a new CA and a server certificate for ``hosts`` signed by it, in ``directory``.

    ``hosts`` become the certificate's subject alternative names (IP addresses as IP entries),
    which is what clients check the broker's address against. The CA's private key is used once
    and never written, so nothing else can ever be signed by this CA. Existing files are replaced.
    """
    now = dt.datetime.now(dt.UTC)
    # Clocks of the broker and of its clients may differ a little.
    not_before, not_after = now - dt.timedelta(hours=1), now + dt.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "citygrid test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    pki = TestPki(ca_file=directory / CA_FILE, server_file=directory / SERVER_FILE)
    pki.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    # Kafka's PEM key store reads an encrypted key only with a key password, and a plain one
    # only as PKCS#8 ("BEGIN PRIVATE KEY"); the file is the broker's secret, so owner-only.
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(pki.server_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(server_cert.public_bytes(serialization.Encoding.PEM) + key_pem)
    return pki


def certificate_expires(path: Path) -> dt.datetime:
    """When the first certificate in PEM file ``path`` stops being valid (UTC)."""
    return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)
