"""Device signatures: HMAC-SHA256 over an event's bytes, checked against a registry of device keys.

A device registered with a key signs the exact bytes of each message value it sends and puts the
signature in the Kafka header :data:`SIGNATURE_HEADER` (``citygrid.signature``), as
``hmac-sha256=<64 hex digits>`` (:func:`sign` writes lowercase; uppercase is accepted). A header,
not a field: a field inside the signed bytes cannot hold their signature. The signature covers the
value only, not the Kafka key (a hint, never trusted) nor the topic (the codec already refuses an
event on another domain's topic), and it is checked against the ``device_id`` *inside* the
decoded event, so one device cannot sign for another. A replayed signed message has the same
``(device_id, event_id)`` and is a duplicate like any other.

The registry file (:func:`load_device_keys`) is a JSON object mapping each device id to its key
as hex digits, at least :data:`MIN_KEY_BYTES` bytes, or to a list of keys while a device is
re-keyed: the first is the one it signs with, and every key in the list verifies. Devices not in
the registry are not checked at all. Key material never appears in a repr, an error or a
rejection detail.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from schemas.codec import Rejection
from schemas.enums import RejectReason
from schemas.event import DEVICE_ID_MAX

__all__ = [
    "MIN_KEY_BYTES",
    "SIGNATURE_HEADER",
    "SIGNATURE_SCHEME",
    "DeviceKeys",
    "device_keys_from_setting",
    "load_device_keys",
    "parse_device_keys",
    "sign",
    "signature_from_headers",
]

SIGNATURE_HEADER: Final = "citygrid.signature"
"""The Kafka header that carries an event's signature."""
SIGNATURE_SCHEME: Final = "hmac-sha256"
"""The only scheme: the header value is ``hmac-sha256=<hex digest>``."""
MIN_KEY_BYTES: Final = 32
"""The shortest key the registry takes: the digest's length, as RFC 2104 recommends."""

_PREFIX: Final = SIGNATURE_SCHEME.encode() + b"="
_SIGNATURE: Final = re.compile(rb"hmac-sha256=([0-9a-fA-F]{64})")
_HEX_KEY: Final = re.compile(r"(?:[0-9a-fA-F]{2})+")


def sign(key: bytes, raw: bytes) -> bytes:
    """The :data:`SIGNATURE_HEADER` value for message bytes ``raw`` signed with ``key``."""
    return _PREFIX + hmac.digest(key, raw, "sha256").hex().encode()


def signature_from_headers(headers: Iterable[tuple[str, bytes | None]]) -> bytes | None:
    """The :data:`SIGNATURE_HEADER` value among a record's headers; None when it has none.

    Kafka allows a header name to repeat; the last one counts, as with the Java client's
    ``lastHeader``. A header with a null value counts as absent.
    """
    found: bytes | None = None
    for name, value in headers:
        if name == SIGNATURE_HEADER:
            found = value
    return found


class DeviceKeys:
    """The device key registry: device id to its keys, current key first. Immutable.

    Empty (``DeviceKeys()``) when signatures are off: :meth:`verify` then accepts everything.
    ``repr`` and ``str`` give the number of devices, never a key.
    """

    __slots__ = ("_keys",)

    _keys: Mapping[str, tuple[bytes, ...]]

    def __init__(self, keys: Mapping[str, bytes | Sequence[bytes]] | None = None) -> None:
        """Take ``keys``: each device id to one key, or a non-empty list of keys.

        Raises:
            ValueError: a device id or key breaks the registry's rules (it names the device,
                never the key).
        """
        checked: dict[str, tuple[bytes, ...]] = {}
        for device_id, value in (keys or {}).items():
            _check_device_id(device_id)
            listed = (value,) if isinstance(value, bytes) else tuple(value)
            checked[device_id] = _check_keys(device_id, listed)
        object.__setattr__(self, "_keys", MappingProxyType(checked))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:
        return f"DeviceKeys({len(self._keys)} devices)"

    __str__ = __repr__

    def __reduce__(self) -> tuple[type[DeviceKeys], tuple[dict[str, tuple[bytes, ...]]]]:
        # Copies and pickles go through the constructor, which the immutability guard allows.
        return (DeviceKeys, (dict(self._keys),))

    def __len__(self) -> int:
        """How many devices are registered."""
        return len(self._keys)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._keys

    @property
    def devices(self) -> frozenset[str]:
        """The registered device ids."""
        return frozenset(self._keys)

    def signing_key(self, device_id: str) -> bytes | None:
        """The key ``device_id`` signs with now (the first listed); None when not registered."""
        keys = self._keys.get(device_id)
        return keys[0] if keys else None

    def verify(self, device_id: str, raw: bytes, signature: bytes | None) -> Rejection | None:
        """Check ``signature`` (the :data:`SIGNATURE_HEADER` value, None when absent) of the
        message bytes ``raw`` from ``device_id``, the id inside the decoded event.

        Returns None when the message is accepted: the device is not registered (signed or not),
        or the signature matches one of its keys. Otherwise a ``bad_signature`` rejection whose
        detail says what is wrong without showing a key or the expected digest.
        """
        keys = self._keys.get(device_id)
        if keys is None:
            return None
        if not signature:
            return _bad(f"device {device_id!r} must sign its events: no {SIGNATURE_HEADER} header")
        match = _SIGNATURE.fullmatch(signature)
        if match is None:
            return _bad(
                f"the {SIGNATURE_HEADER} header of device {device_id!r} is not "
                f"{SIGNATURE_SCHEME}=<64 hex digits>"
            )
        given = bytes.fromhex(match.group(1).decode("ascii"))
        # Every key is tried, so the time taken does not tell which one matched.
        matched = False
        for key in keys:
            matched |= hmac.compare_digest(hmac.digest(key, raw, "sha256"), given)
        if matched:
            return None
        return _bad(
            f"the signature of device {device_id!r} does not match the event's bytes: "
            "signed with a key not registered for it, or the bytes changed after signing"
        )


def _bad(detail: str) -> Rejection:
    return Rejection(RejectReason.BAD_SIGNATURE, detail)


def _check_device_id(device_id: object) -> None:
    if not isinstance(device_id, str) or not 0 < len(device_id) <= DEVICE_ID_MAX:
        raise ValueError(f"device id {device_id!r}: must be a string of 1 to {DEVICE_ID_MAX} chars")


def _check_keys(device_id: str, keys: tuple[object, ...]) -> tuple[bytes, ...]:
    if not keys:
        raise ValueError(f"device {device_id!r}: no key (an empty list)")
    checked: list[bytes] = []
    for n, key in enumerate(keys, start=1):
        where = f"device {device_id!r}" + (f", key {n}" if len(keys) > 1 else "")
        if not isinstance(key, bytes):
            raise ValueError(f"{where}: must be bytes, got {type(key).__name__}")  # noqa: TRY004 - one error type for bad registries
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(
                f"{where}: {len(key)} bytes is too short, use at least {MIN_KEY_BYTES} "
                f"({2 * MIN_KEY_BYTES} hex digits)"
            )
        if key in checked:
            raise ValueError(f"{where}: repeats key {checked.index(key) + 1}")
        checked.append(key)
    return tuple(checked)


def parse_device_keys(obj: Any) -> DeviceKeys:
    """A registry from decoded JSON: ``{"device_id": "<hex key>" | ["<hex key>", ...], ...}``.

    Raises:
        ValueError: what is wrong and with which device; never a key.
    """
    if not isinstance(obj, dict):
        raise ValueError("must be a JSON object mapping device ids to hex keys")  # noqa: TRY004 - one error type for bad files
    keys: dict[str, list[bytes]] = {}
    for device_id, value in obj.items():
        _check_device_id(device_id)
        texts = value if isinstance(value, list) else [value]
        keys[device_id] = [
            _hex_key(device_id, n if len(texts) > 1 else None, text)
            for n, text in enumerate(texts, start=1)
        ]
    return DeviceKeys(keys)


def _hex_key(device_id: str, n: int | None, text: object) -> bytes:
    where = f"device {device_id!r}" + (f", key {n}" if n is not None else "")
    if not isinstance(text, str):
        raise ValueError(  # noqa: TRY004 - one error type for bad files
            f"{where}: a key is a string of hex digits (or a list of them, current key first), "
            f"got {_json_type(text)}"
        )
    if _HEX_KEY.fullmatch(text) is None:
        raise ValueError(f"{where}: a key is an even number of hex digits (0-9, a-f), nothing else")
    return bytes.fromhex(text)


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return "a number" if isinstance(value, int | float) else type(value).__name__


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for name, value in pairs:
        if name in obj:
            raise ValueError(
                f"{name!r} is listed twice: list a device once, all its keys in one list"
            )
        obj[name] = value
    return obj


def load_device_keys(path: Path) -> DeviceKeys:
    """Read a registry file (see :func:`parse_device_keys`); a ValueError names the file, and the
    device where one is at fault, never a key."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"device keys {path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ValueError(f"device keys {path}: not UTF-8") from None
    try:
        # The standard library, not schemas.json: orjson keeps the last of repeated names without
        # a word, and a device listed twice (a botched re-keying) must fail, not lose a key.
        obj = json.loads(text, object_pairs_hook=_unique_names)
    except json.JSONDecodeError as exc:
        # The decoder's own message quotes no content: the position only.
        raise ValueError(f"device keys {path}: not JSON ({exc})") from None
    except ValueError as exc:
        raise ValueError(f"device keys {path}: {exc}") from None
    try:
        return parse_device_keys(obj)
    except ValueError as exc:
        raise ValueError(f"device keys {path}: {exc}") from None


def device_keys_from_setting(value: str) -> DeviceKeys:
    """The registry a setting names: ``""`` turns signatures off (no device registered)."""
    text = value.strip()
    return DeviceKeys() if not text else load_device_keys(Path(text))
