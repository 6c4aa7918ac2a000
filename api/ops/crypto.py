"""Cryptographic operations: Encrypt, Decrypt, ReEncrypt, GenerateDataKey*, GenerateRandom."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from api.ops.managed import ensure_managed_key
from api.services import Call
from domain.authorization import authorize_identity, request_conditions
from domain.crypto import parse_header
from domain.errors import (
    DryRunOperationError,
    UnsupportedOperationError,
    ValidationError,
)
from domain.values import DATA_KEY_BYTES, SYMMETRIC_DEFAULT
from eventstore.key_operations import Opened, check_algorithm

IGNORE_CIPHERTEXT = "IGNORE_CIPHERTEXT"


def _dry_run(call: Call) -> None:
    """DryRun runs every check, then fails (KMS "Testing your permissions" guide)."""
    if call.params.get("DryRun"):
        raise DryRunOperationError


def _no_recipient(call: Call) -> None:
    if "Recipient" in call.params:
        raise UnsupportedOperationError("Recipient (Nitro Enclaves attestation) is not supported.")


def _with_request_conditions(call: Call, context_param: str, algorithm_param: str) -> None:
    """kms:EncryptionContext:*, kms:EncryptionContextKeys and kms:EncryptionAlgorithm; the
    same encryption context is what grant constraints are checked against."""
    context = call.params.get(context_param, {})
    conditions = request_conditions(
        encryption_context=context,
        algorithm=call.params.get(algorithm_param, SYMMETRIC_DEFAULT),
    )
    call.ctx = replace(call.context, conditions=conditions, encryption_context=context)


async def encrypt(call: Call) -> dict[str, Any]:
    _with_request_conditions(call, "EncryptionContext", "EncryptionAlgorithm")
    await ensure_managed_key(call, call.params["KeyId"])
    return await call.read_cached(_encrypt, call)


def _encrypt(call: Call) -> dict[str, Any]:
    """The blocking part, in one hop to the reader pool: load, check, seal."""
    p, keys = call.params, call.services.keys
    cmk = keys.usable_key(call.context, p["KeyId"], "Encrypt")
    call.key_arn = cmk.arn
    algorithm = p.get("EncryptionAlgorithm", SYMMETRIC_DEFAULT)
    check_algorithm(cmk, algorithm, p.get("EncryptionContext"))
    _dry_run(call)
    sealed = keys.seal(cmk, p["Plaintext"], p.get("EncryptionContext"), algorithm)
    return {
        "CiphertextBlob": sealed.blob,
        "KeyId": sealed.key_arn,
        "EncryptionAlgorithm": algorithm,
    }


async def decrypt(call: Call) -> dict[str, Any]:
    _no_recipient(call)
    p = call.params
    if p.get("DryRun") and IGNORE_CIPHERTEXT in p.get("DryRunModifiers", []):
        return await _dry_run_without_ciphertext(call, "Decrypt")
    _with_request_conditions(call, "EncryptionContext", "EncryptionAlgorithm")
    return await call.read_cached(_decrypt, call)


def _decrypt(call: Call) -> dict[str, Any]:
    p = call.params
    algorithm = p.get("EncryptionAlgorithm", SYMMETRIC_DEFAULT)
    opened = _open(call, "Decrypt", p.get("KeyId"), algorithm, p.get("EncryptionContext"))
    call.key_arn = opened.key_arn
    _dry_run(call)  # after the ciphertext is checked: only IGNORE_CIPHERTEXT skips that
    return {
        "KeyId": opened.key_arn,
        "Plaintext": opened.plaintext,
        "EncryptionAlgorithm": algorithm,
        "KeyMaterialId": opened.material_id,
    }


def _open(
    call: Call,
    operation: str,
    key_id: str | None,
    algorithm: str,
    context: dict[str, str] | None,
) -> Opened:
    """A symmetric blob names its own key; an RSA ciphertext does not, so its key must
    be named ("KeyId ... required when you decrypt with an asymmetric KMS key",
    Decrypt API reference) with its algorithm. Without a KeyId, only a blob that
    names its key can be opened."""
    keys, blob = call.services.keys, _ciphertext(call.params)
    if algorithm != SYMMETRIC_DEFAULT and key_id is not None:
        cmk = keys.usable_key(call.context, key_id, operation)
        check_algorithm(cmk, algorithm, context)
        return keys.open_asymmetric(cmk, algorithm, blob)
    header = parse_header(blob)
    cmk = keys.source_key(call.context, header, key_id, operation)
    check_algorithm(cmk, algorithm)
    return keys.open(cmk, header, blob, context)


async def _dry_run_without_ciphertext(call: Call, operation: str) -> dict[str, Any]:
    """DryRunModifiers IGNORE_CIPHERTEXT: the KeyId becomes required instead."""
    key_id = call.params.get("KeyId") or call.params.get("DestinationKeyId")
    context_param = (
        "EncryptionContext" if operation == "Decrypt" else "DestinationEncryptionContext"
    )
    _with_request_conditions(call, context_param, "EncryptionAlgorithm")
    if key_id is None:
        raise ValidationError("KeyId is required when DryRunModifiers includes IGNORE_CIPHERTEXT.")
    cmk = await call.read(call.services.keys.usable_key, call.context, key_id, operation)
    call.key_arn = cmk.arn
    raise DryRunOperationError


def _ciphertext(params: dict[str, Any]) -> bytes:
    blob = params.get("CiphertextBlob")
    if blob is None:
        raise ValidationError(
            "1 validation error detected: Value null at 'ciphertextBlob' failed to satisfy "
            "constraint: Member must not be null"
        )
    return blob


async def re_encrypt(call: Call) -> dict[str, Any]:
    p = call.params
    if p.get("DryRun") and IGNORE_CIPHERTEXT in p.get("DryRunModifiers", []):
        return await _dry_run_without_ciphertext(call, "ReEncryptTo")
    await ensure_managed_key(call, p["DestinationKeyId"])
    return await call.read_cached(_re_encrypt, call)


def _re_encrypt(call: Call) -> dict[str, Any]:
    """ReEncryptFrom on the source key and ReEncryptTo on the destination, each with the
    condition keys of its own side of the request."""
    p, keys = call.params, call.services.keys
    source_algorithm = p.get("SourceEncryptionAlgorithm", SYMMETRIC_DEFAULT)
    destination_algorithm = p.get("DestinationEncryptionAlgorithm", SYMMETRIC_DEFAULT)
    destination_context = p.get("DestinationEncryptionContext")
    _with_request_conditions(call, "SourceEncryptionContext", "SourceEncryptionAlgorithm")
    opened = _open(
        call,
        "ReEncryptFrom",
        p.get("SourceKeyId"),
        source_algorithm,
        p.get("SourceEncryptionContext"),
    )
    _with_request_conditions(call, "DestinationEncryptionContext", "DestinationEncryptionAlgorithm")
    destination = keys.usable_key(call.context, p["DestinationKeyId"], "ReEncryptTo")
    call.key_arn = destination.arn
    check_algorithm(destination, destination_algorithm, destination_context)
    _dry_run(call)
    sealed = keys.seal(destination, opened.plaintext, destination_context, destination_algorithm)
    return {
        "CiphertextBlob": sealed.blob,
        "SourceKeyId": opened.key_arn,
        "KeyId": sealed.key_arn,
        "SourceEncryptionAlgorithm": source_algorithm,
        "DestinationEncryptionAlgorithm": destination_algorithm,
        "SourceKeyMaterialId": opened.material_id,
        "DestinationKeyMaterialId": sealed.material_id,
    }


def data_key_size(params: dict[str, Any]) -> int:
    """KeySpec (AES_128 | AES_256) or NumberOfBytes (1..1024), exactly one of them."""
    spec, count = params.get("KeySpec"), params.get("NumberOfBytes")
    if (spec is None) == (count is None):
        raise ValidationError("Please specify either number of bytes or key spec.")
    return DATA_KEY_BYTES[spec] if spec is not None else count


async def _generate_data_key(call: Call, operation: str) -> tuple[bytes, dict[str, Any]]:
    _no_recipient(call)
    size = data_key_size(call.params)
    _with_request_conditions(call, "EncryptionContext", "EncryptionAlgorithm")
    await ensure_managed_key(call, call.params["KeyId"])
    return await call.read_cached(_seal_data_key, call, operation, size)


def _seal_data_key(call: Call, operation: str, size: int) -> tuple[bytes, dict[str, Any]]:
    p, keys = call.params, call.services.keys
    cmk = keys.usable_key(call.context, p["KeyId"], operation)
    call.key_arn = cmk.arn
    _dry_run(call)
    data_key = os.urandom(size)
    sealed = keys.seal(cmk, data_key, p.get("EncryptionContext"))
    return data_key, {
        "CiphertextBlob": sealed.blob,
        "KeyId": sealed.key_arn,
        "KeyMaterialId": sealed.material_id,
    }


async def generate_data_key(call: Call) -> dict[str, Any]:
    data_key, result = await _generate_data_key(call, "GenerateDataKey")
    return {**result, "Plaintext": data_key}


async def generate_data_key_without_plaintext(call: Call) -> dict[str, Any]:
    _, result = await _generate_data_key(call, "GenerateDataKeyWithoutPlaintext")
    return result


async def generate_random(call: Call) -> dict[str, Any]:
    """GenerateRandom: 1..1024 bytes; the model leaves NumberOfBytes optional, AWS not."""
    _no_recipient(call)
    if "CustomKeyStoreId" in call.params:
        raise UnsupportedOperationError("Custom key stores are not supported by keyledger yet.")
    if "NumberOfBytes" not in call.params:
        raise ValidationError("NumberOfBytes is required.")
    authorize_identity(call.context, "GenerateRandom", "*", call.services.clock())
    return {"Plaintext": os.urandom(call.params["NumberOfBytes"])}


OPERATIONS = {
    "Encrypt": encrypt,
    "Decrypt": decrypt,
    "ReEncrypt": re_encrypt,
    "GenerateDataKey": generate_data_key,
    "GenerateDataKeyWithoutPlaintext": generate_data_key_without_plaintext,
    "GenerateRandom": generate_random,
}
