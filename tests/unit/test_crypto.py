"""Ciphertext blobs and key wrapping: round trips, and every tampering refused."""

from __future__ import annotations

import os
from uuid import uuid4

import pytest
from cryptography.exceptions import InvalidTag

from domain import crypto
from domain.errors import InvalidCiphertextError

MATERIAL = os.urandom(32)
KEY_ID = uuid4()
MATERIAL_ID = os.urandom(32).hex()
CONTEXT = {"purpose": "test", "tenant": "a"}

# (name, offset, length) of every field of a version-1 blob.
FIELDS = [
    ("magic", 0, 1),
    ("format", 1, 1),
    ("key id", 2, 16),
    ("material id", 18, 32),
    ("nonce", 50, 32),
    ("iv", 82, 12),
    ("ciphertext", crypto.HEADER_BYTES, 5),
    ("tag", -16, 16),
]


def sealed(plaintext: bytes = b"hello", context: dict[str, str] | None = CONTEXT) -> bytes:
    return crypto.seal(MATERIAL, KEY_ID, MATERIAL_ID, plaintext, context)


def open_(blob: bytes, context: dict[str, str] | None = CONTEXT) -> bytes:
    return crypto.open_blob(MATERIAL, crypto.parse_header(blob), blob, context)


def test_a_sealed_blob_opens_to_its_plaintext_and_names_its_key() -> None:
    blob = sealed()
    header = crypto.parse_header(blob)
    assert (header.key_id, header.material_id) == (KEY_ID, MATERIAL_ID)
    assert open_(blob) == b"hello"
    assert len(blob) == crypto.HEADER_BYTES + 5 + crypto.TAG_BYTES


def test_context_order_does_not_matter() -> None:
    assert open_(sealed(), {"tenant": "a", "purpose": "test"}) == b"hello"


def test_two_encryptions_never_share_nonce_or_iv() -> None:
    headers = {crypto.parse_header(sealed()).raw for _ in range(200)}
    assert len(headers) == 200


@pytest.mark.parametrize(("field", "offset", "length"), FIELDS)
def test_changing_any_field_makes_the_blob_undecryptable(
    field: str, offset: int, length: int
) -> None:
    for position in (offset, offset + length - 1):
        blob = bytearray(sealed())
        blob[position] ^= 0x01
        with pytest.raises(InvalidCiphertextError):
            open_(bytes(blob))


@pytest.mark.parametrize(
    "context",
    [
        None,
        {},
        {"purpose": "test"},
        {"purpose": "test", "tenant": "A"},
        {"Purpose": "test", "tenant": "a"},
        {"purpose": "test", "tenant": "a", "extra": ""},
    ],
)
def test_any_other_encryption_context_is_refused(context: dict[str, str] | None) -> None:
    with pytest.raises(InvalidCiphertextError):
        open_(sealed(), context)


def test_contexts_that_concatenate_alike_are_different_aad() -> None:
    assert crypto.canonical_context({"ab": "c"}) != crypto.canonical_context({"a": "bc"})
    blob = sealed(context={"ab": "c"})
    with pytest.raises(InvalidCiphertextError):
        open_(blob, {"a": "bc"})


def test_truncated_and_empty_blobs_are_invalid_ciphertext() -> None:
    blob = sealed()
    for broken in (b"", blob[:10], blob[: crypto.HEADER_BYTES + 15], blob[:-1]):
        with pytest.raises(InvalidCiphertextError):
            open_(broken)


def test_the_wrong_material_cannot_open_a_blob() -> None:
    blob = sealed()
    with pytest.raises(InvalidCiphertextError):
        crypto.open_blob(os.urandom(32), crypto.parse_header(blob), blob, CONTEXT)


def test_invalid_ciphertext_errors_carry_no_detail() -> None:
    with pytest.raises(InvalidCiphertextError) as refused:
        open_(b"K\x01" + b"\x00" * 200)
    assert refused.value.message == ""


def test_wrapped_secrets_are_bound_to_their_key_and_material() -> None:
    wrapping_key, secret = os.urandom(32), os.urandom(32)
    aad = crypto.material_aad(b"key-material", KEY_ID, MATERIAL_ID)
    wrapped = crypto.wrap(wrapping_key, secret, aad)
    assert crypto.unwrap(wrapping_key, wrapped, aad) == secret
    other = crypto.material_aad(b"key-material", uuid4(), MATERIAL_ID)
    with pytest.raises(InvalidTag):
        crypto.unwrap(wrapping_key, wrapped, other)
    assert secret not in wrapped
