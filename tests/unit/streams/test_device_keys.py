"""CITYGRID_DEVICE_KEYS: unset checks nothing, a file registers its devices, a bad file stops the
start with the variable and the device named, and no key reaches the log or an error."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from schemas.json import dumps
from streams.device_keys import device_keys_from_settings
from streams.domain.signatures import sign
from streams.exceptions import SettingsError
from streams.settings import Settings

KEY = bytes(range(32))
OLD_KEY = bytes(range(100, 132))
SECRETS = (KEY.hex(), KEY.hex().upper(), OLD_KEY.hex(), OLD_KEY.hex().upper())


def _settings(tmp_path: Path, content: object) -> Settings:
    path = tmp_path / "keys.json"
    path.write_bytes(dumps(content))
    return Settings.from_env({"CITYGRID_DEVICE_KEYS": str(path)})


def test_unset_checks_no_signatures(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="streams.device_keys")
    keys = device_keys_from_settings(Settings.from_env({}))
    assert len(keys) == 0
    assert keys.verify("cam-1", b"{}", None) is None
    assert "not checked" in caplog.text


def test_a_key_file_registers_its_devices_and_logs_no_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = _settings(tmp_path, {"cam-1": KEY.hex(), "ter-2": [KEY.hex(), OLD_KEY.hex()]})
    keys = device_keys_from_settings(settings)
    assert keys.verify("ter-2", b"{}", sign(OLD_KEY, b"{}")) is None
    assert keys.verify("cam-1", b"{}", None) is not None
    assert "checked for 2 registered devices" in caplog.text
    logged = caplog.text + repr(keys) + repr(settings.redacted())
    assert not [secret for secret in SECRETS if secret in logged]


def test_a_bad_file_names_the_variable_and_the_device_never_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = _settings(tmp_path, {"cam-1": KEY.hex()[:-2]})
    with pytest.raises(SettingsError, match=r"^CITYGRID_DEVICE_KEYS: device keys .*'cam-1'"):
        device_keys_from_settings(settings)
    assert not [secret[:-2] for secret in SECRETS if secret[:-2] in caplog.text]


def test_a_missing_file_names_the_variable(tmp_path: Path) -> None:
    settings = Settings.from_env({"CITYGRID_DEVICE_KEYS": str(tmp_path / "nowhere.json")})
    with pytest.raises(SettingsError, match=r"CITYGRID_DEVICE_KEYS: .*cannot read it"):
        device_keys_from_settings(settings)
