"""Import tokens, expiry rules and material checks (domain/imports.py), as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from domain.errors import (
    IncorrectKeyMaterialError,
    InvalidCiphertextError,
    InvalidImportTokenError,
    ValidationError,
)
from domain.imports import (
    ImportRef,
    ImportTokens,
    check_expiry,
    checked_material,
    new_wrapping_key,
    unwrap_material,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TOKENS = ImportTokens.from_root_key(b"r" * 32)


def _ref() -> ImportRef:
    return ImportRef(uuid4(), "ab" * 16, "RSA_AES_KEY_WRAP_SHA_256", NOW + timedelta(hours=24))


def test_a_token_names_key_wrapping_key_algorithm_and_expiry() -> None:
    ref = _ref()
    assert TOKENS.read(TOKENS.issue(ref)) == ref


@pytest.mark.parametrize("position", [0, 1, 20, 33, 40, -1])
def test_any_altered_byte_makes_a_token_invalid(position: int) -> None:
    token = bytearray(TOKENS.issue(_ref()))
    token[position] ^= 0x01
    with pytest.raises(InvalidImportTokenError):
        TOKENS.read(bytes(token))


def test_tokens_of_another_root_key_or_of_another_length_are_invalid() -> None:
    other = ImportTokens.from_root_key(b"s" * 32)
    token = other.issue(_ref())
    for candidate in (token, token[:-1], b"", b"t"):
        with pytest.raises(InvalidImportTokenError):
            TOKENS.read(candidate)
    assert "redacted" in repr(TOKENS)


def test_material_ids_are_stable_per_key_and_material_and_differ_otherwise() -> None:
    key, other = uuid4(), uuid4()
    assert TOKENS.material_id(key, b"m" * 32) == TOKENS.material_id(key, b"m" * 32)
    assert TOKENS.material_id(key, b"m" * 32) != TOKENS.material_id(other, b"m" * 32)
    assert TOKENS.material_id(key, b"m" * 32) != TOKENS.material_id(key, b"n" * 32)
    assert len(TOKENS.material_id(key, b"m" * 32)) == 64


@pytest.mark.parametrize(
    ("model", "valid_to", "expected"),
    [
        (None, None, ("KEY_MATERIAL_DOES_NOT_EXPIRE", None)),
        (None, NOW + timedelta(days=1), ("KEY_MATERIAL_EXPIRES", NOW + timedelta(days=1))),
        ("KEY_MATERIAL_EXPIRES", NOW + timedelta(days=365), None),
        ("KEY_MATERIAL_EXPIRES", None, ValidationError),
        ("KEY_MATERIAL_EXPIRES", NOW, ValidationError),
        ("KEY_MATERIAL_EXPIRES", NOW + timedelta(days=366), ValidationError),
        ("KEY_MATERIAL_DOES_NOT_EXPIRE", NOW + timedelta(days=1), ValidationError),
    ],
)
def test_expiration_model_and_valid_to(model: str | None, valid_to: Any, expected: Any) -> None:
    if expected is ValidationError:
        with pytest.raises(ValidationError):
            check_expiry(model, valid_to, NOW)
    else:
        assert check_expiry(model, valid_to, NOW) == (expected or (model, valid_to))


@pytest.mark.parametrize(
    ("spec", "length"), [("SYMMETRIC_DEFAULT", 31), ("SYMMETRIC_DEFAULT", 33), ("HMAC_384", 47)]
)
def test_material_of_the_wrong_length(spec: str, length: int) -> None:
    with pytest.raises(IncorrectKeyMaterialError):
        checked_material(spec, b"k" * length)


def test_garbage_is_not_unwrapped() -> None:

    private, _ = new_wrapping_key("RSA_2048")
    for algorithm in ("RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1"):
        with pytest.raises(InvalidCiphertextError):
            unwrap_material(private, algorithm, b"\x00" * 300)
