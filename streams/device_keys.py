"""The device key registry a deployment configures (``CITYGRID_DEVICE_KEYS``), loaded once at start.

The rules and the file format are :mod:`streams.domain.signatures`; this module turns a bad file
into a :class:`~streams.exceptions.SettingsError` that names the variable, and says in the log
whether signatures are checked, never with a key.
"""

from __future__ import annotations

import logging

from streams.domain.signatures import DeviceKeys, device_keys_from_setting
from streams.exceptions import SettingsError
from streams.settings import Settings

__all__ = ["device_keys_from_settings"]

logger = logging.getLogger(__name__)


def device_keys_from_settings(settings: Settings) -> DeviceKeys:
    """The registry ``CITYGRID_DEVICE_KEYS`` names; empty (nothing checked) when it is unset.

    Raises:
        SettingsError: the file is missing, unreadable or invalid; the message names the
            variable, the file and the device at fault, never a key.
    """
    var = Settings.env_var("device_keys")
    try:
        keys = device_keys_from_setting(settings.device_keys)
    except ValueError as exc:
        raise SettingsError(f"{var}: {exc}") from None
    if not settings.device_keys.strip():
        logger.info("device signatures are not checked (%s is empty)", var)
    else:
        logger.info(
            "device signatures are checked for %d registered devices (%s)",
            len(keys),
            settings.device_keys,
        )
    return keys
