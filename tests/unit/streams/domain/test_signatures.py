"""Device signatures: a registered device's events need a valid HMAC-SHA256 signature, everyone
else's are not checked, re-keying keeps both keys working, and no key ever shows."""

from __future__ import annotations

import copy
import hashlib
import hmac
import re
from pathlib import Path
from typing import Any

import pytest

from schemas.codec import Rejection
from schemas.enums import RejectReason
from schemas.json import dumps
from streams.domain.signatures import (
    SIGNATURE_HEADER,
    DeviceKeys,
    device_keys_from_setting,
    load_device_keys,
    parse_device_keys,
    sign,
    signature_from_headers,
)
from tests.factories import event_bytes

EXAMPLE = Path(__file__).resolve().parents[4] / "deploy" / "devices" / "keys.example.json"

KEY = bytes(range(32))
OLD_KEY = bytes(range(100, 132))
OTHER_KEY = bytes(range(200, 232))
KEYS = DeviceKeys({"cam-1": KEY, "ter-2": [KEY, OLD_KEY]})
RAW = event_bytes(source="camera", device_id="cam-1")


def test_sign_writes_the_documented_header_value() -> None:
    expected = "hmac-sha256=" + hmac.new(KEY, RAW, hashlib.sha256).hexdigest()
    assert sign(KEY, RAW) == expected.encode()
    assert re.fullmatch(rb"hmac-sha256=[0-9a-f]{64}", sign(KEY, RAW))


VERDICTS: list[tuple[str, str, bytes, bytes | None, str | None]] = [
    # (case, device, bytes, signature header, None = accepted or a piece of the detail)
    ("registered, valid", "cam-1", RAW, sign(KEY, RAW), None),
    (
        "registered, uppercase hex",
        "cam-1",
        RAW,
        sign(KEY, RAW)[:12] + sign(KEY, RAW)[12:].upper(),
        None,
    ),
    ("registered, missing", "cam-1", RAW, None, "no citygrid.signature header"),
    ("registered, empty header", "cam-1", RAW, b"", "no citygrid.signature header"),
    ("registered, wrong key", "cam-1", RAW, sign(OTHER_KEY, RAW), "does not match"),
    ("registered, tampered bytes", "cam-1", RAW + b" ", sign(KEY, RAW), "does not match"),
    ("registered, another device's key", "cam-1", RAW, sign(OLD_KEY, RAW), "does not match"),
    ("malformed, bare hex", "cam-1", RAW, sign(KEY, RAW)[12:], "is not hmac-sha256=<64 hex"),
    ("malformed, other scheme", "cam-1", RAW, b"hmac-sha512=" + sign(KEY, RAW)[12:], "is not"),
    ("malformed, short digest", "cam-1", RAW, sign(KEY, RAW)[:-2], "is not hmac-sha256"),
    ("malformed, not hex", "cam-1", RAW, b"hmac-sha256=" + b"zz" * 32, "is not hmac-sha256"),
    ("malformed, trailing space", "cam-1", RAW, sign(KEY, RAW) + b" ", "is not hmac-sha256"),
    ("malformed, not UTF-8", "cam-1", RAW, b"\xff\xfe", "is not hmac-sha256"),
    ("unregistered, unsigned", "sen-9", RAW, None, None),
    ("unregistered, signed", "sen-9", RAW, sign(OTHER_KEY, RAW), None),
    ("unregistered, malformed", "sen-9", RAW, b"nonsense", None),
    ("rotated, new key", "ter-2", RAW, sign(KEY, RAW), None),
    ("rotated, old key", "ter-2", RAW, sign(OLD_KEY, RAW), None),
    ("rotated, neither", "ter-2", RAW, sign(OTHER_KEY, RAW), "does not match"),
]


@pytest.mark.parametrize(
    ("device", "raw", "signature", "problem"),
    [v[1:] for v in VERDICTS],
    ids=[v[0] for v in VERDICTS],
)
def test_verify(device: str, raw: bytes, signature: bytes | None, problem: str | None) -> None:
    verdict = KEYS.verify(device, raw, signature)
    if problem is None:
        assert verdict is None
        return
    assert isinstance(verdict, Rejection)
    assert verdict.reason is RejectReason.BAD_SIGNATURE
    assert problem in verdict.detail
    assert repr(device) in verdict.detail


def test_signatures_off_accepts_everything() -> None:
    off = DeviceKeys()
    assert not off
    assert off.verify("cam-1", RAW, None) is None
    assert off.verify("cam-1", RAW, b"garbage") is None


def test_no_rejection_shows_a_key_or_the_expected_digest() -> None:
    for case, device, raw, signature, _ in VERDICTS:
        verdict = KEYS.verify(device, raw, signature)
        shown = f"{verdict!r} {verdict!s}"
        expected = [sign(key, raw)[12:].decode() for key in (KEY, OLD_KEY)]
        for secret in _secret_forms(KEY) + _secret_forms(OLD_KEY) + expected:
            assert secret.lower() not in shown.lower(), case


def test_the_registry_never_shows_its_keys() -> None:
    shown = f"{KEYS!r} {KEYS!s} {KEYS.devices!r}"
    assert shown.startswith("DeviceKeys(2 devices)")
    for secret in _secret_forms(KEY) + _secret_forms(OLD_KEY):
        assert secret not in shown


def test_the_registry_is_immutable() -> None:
    with pytest.raises(AttributeError):
        KEYS._keys = {}
    with pytest.raises(AttributeError):
        KEYS.extra = 1


def test_a_copy_verifies_alike() -> None:
    copied = copy.deepcopy(KEYS)
    assert copied.devices == KEYS.devices
    assert copied.verify("ter-2", RAW, sign(OLD_KEY, RAW)) is None
    assert copied.verify("ter-2", RAW, sign(OTHER_KEY, RAW)) is not None


def test_the_first_key_listed_signs() -> None:
    assert KEYS.signing_key("ter-2") == KEY
    assert KEYS.signing_key("cam-1") == KEY
    assert KEYS.signing_key("sen-9") is None
    assert "ter-2" in KEYS
    assert "sen-9" not in KEYS
    assert KEYS.devices == {"cam-1", "ter-2"}
    assert len(KEYS) == 2


@pytest.mark.parametrize(
    ("headers", "found"),
    [
        ([], None),
        ([("content-type", b"application/json")], None),
        ([(SIGNATURE_HEADER, b"a")], b"a"),
        ([(SIGNATURE_HEADER, b"a"), ("x", b"y"), (SIGNATURE_HEADER, b"b")], b"b"),
        ([(SIGNATURE_HEADER, None)], None),
        ([("Citygrid.Signature", b"a")], None),
    ],
)
def test_the_signature_is_the_last_header_of_its_name(
    headers: list[tuple[str, bytes | None]], found: bytes | None
) -> None:
    assert signature_from_headers(headers) == found


def test_a_signed_record_verifies_from_its_headers() -> None:
    headers = [("content-type", b"application/json"), (SIGNATURE_HEADER, sign(KEY, RAW))]
    assert KEYS.verify("cam-1", RAW, signature_from_headers(headers)) is None


# The registry file ------------------------------------------------------------------------------

HEX = KEY.hex()
OLD_HEX = OLD_KEY.hex()


def _write(tmp_path: Path, content: Any) -> Path:
    path = tmp_path / "keys.json"
    path.write_bytes(content if isinstance(content, bytes) else dumps(content))
    return path


def test_a_registry_file_maps_devices_to_hex_keys(tmp_path: Path) -> None:
    keys = load_device_keys(_write(tmp_path, {"cam-1": HEX, "ter-2": [OLD_HEX.upper(), HEX]}))
    assert keys.devices == {"cam-1", "ter-2"}
    assert keys.verify("cam-1", RAW, sign(KEY, RAW)) is None
    assert keys.signing_key("ter-2") == OLD_KEY
    assert keys.verify("ter-2", RAW, sign(KEY, RAW)) is None


def test_the_example_file_loads() -> None:
    assert len(load_device_keys(EXAMPLE)) > 0


BAD_FILES: list[tuple[str, Any, str]] = [
    ("not an object", [HEX], "must be a JSON object mapping device ids to hex keys"),
    ("not JSON", b'{"cam-1": ', "not JSON (Expecting value: line 1"),
    ("not UTF-8", b'{"cam-1": "\xff"}', "not UTF-8"),
    (
        "device listed twice",
        b'{"cam-1": "%s", "cam-1": "%s"}' % (HEX.encode(), OLD_HEX.encode()),
        "'cam-1' is listed twice",
    ),
    ("empty device id", {"": HEX}, "device id '': must be a string of 1 to 64"),
    ("long device id", {"d" * 65: HEX}, "must be a string of 1 to 64"),
    ("number", {"cam-1": 12345}, "device 'cam-1': a key is a string of hex digits"),
    ("null", {"cam-1": None}, "device 'cam-1': a key is a string of hex digits (or a list"),
    ("object", {"cam-1": {"key": HEX}}, "got an object"),
    ("not hex", {"cam-1": "g" * 64}, "device 'cam-1': a key is an even number of hex digits"),
    ("odd hex", {"cam-1": HEX + "a"}, "an even number of hex digits"),
    ("base64", {"cam-1": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}, "hex digits"),
    ("spaces", {"cam-1": " " + HEX}, "an even number of hex digits"),
    ("too short", {"cam-1": HEX[:62]}, "device 'cam-1': 31 bytes is too short, use at least 32"),
    ("empty key", {"cam-1": ""}, "an even number of hex digits"),
    ("empty list", {"cam-1": []}, "device 'cam-1': no key"),
    ("short key in a list", {"cam-1": [HEX, "ab" * 16]}, "device 'cam-1', key 2: 16 bytes"),
    (
        "repeated key",
        {"cam-1": [HEX, OLD_HEX, HEX.upper()]},
        "device 'cam-1', key 3: repeats key 1",
    ),
    (
        "nested list",
        {"cam-1": [[HEX]]},
        "device 'cam-1': a key is a string of hex digits (or a list of them, current key "
        "first), got a list",
    ),
]


@pytest.mark.parametrize(
    ("content", "problem"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES]
)
def test_a_bad_registry_is_refused_naming_the_device_never_the_key(
    tmp_path: Path, content: Any, problem: str
) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(ValueError, match=re.escape(problem)) as caught:
        load_device_keys(path)
    message = str(caught.value)
    assert message.startswith(f"device keys {path}: ")
    for secret in _secret_forms(KEY) + _secret_forms(OLD_KEY) + [HEX[:62], "ab" * 16]:
        assert secret not in message


def test_a_missing_registry_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read it"):
        load_device_keys(tmp_path / "nowhere.json")


def test_keys_given_as_bytes_follow_the_same_rules() -> None:
    with pytest.raises(ValueError, match="'cam-1': 4 bytes is too short"):
        DeviceKeys({"cam-1": b"abcd"})
    with pytest.raises(ValueError, match="'cam-1', key 2: must be bytes, got str"):
        DeviceKeys({"cam-1": [KEY, HEX]})  # type: ignore[list-item]  # the mistake is the test
    assert parse_device_keys({}).devices == frozenset()


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_setting_turns_signatures_off(value: str) -> None:
    assert len(device_keys_from_setting(value)) == 0


def test_a_setting_names_a_registry_file(tmp_path: Path) -> None:
    path = _write(tmp_path, {"cam-1": HEX})
    assert device_keys_from_setting(f" {path} ").devices == {"cam-1"}


def _secret_forms(key: bytes) -> list[str]:
    """How a key could leak into text: its hex either case, its bytes' repr."""
    return [key.hex(), key.hex().upper(), repr(key)[2:-1]]
