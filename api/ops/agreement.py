"""Key establishment: DeriveSharedSecret (ECDH) and, with a service model that has them,
Encapsulate / Decapsulate (ML-KEM)."""

from __future__ import annotations

from typing import Any

from api.ops.dry_run import check_dry_run
from api.services import Call
from domain import key_material
from domain.errors import UnsupportedOperationError


async def derive_shared_secret(call: Call) -> dict[str, Any]:
    p = call.params
    if "Recipient" in p:
        raise UnsupportedOperationError("Recipient (Nitro Enclaves attestation) is not supported.")
    call.ctx = call.context.with_conditions(
        **{"kms:KeyAgreementAlgorithm": p["KeyAgreementAlgorithm"]}
    )
    return await call.read(_derive_shared_secret, call)


def _derive_shared_secret(call: Call) -> dict[str, Any]:
    p, keys = call.params, call.services.keys
    cmk = keys.usable_key(call.context, p["KeyId"], "DeriveSharedSecret")
    call.key_arn = cmk.arn
    algorithm = p["KeyAgreementAlgorithm"]
    secret = key_material.derive_shared_secret(
        cmk.key_spec, keys.current_material(cmk), algorithm, p["PublicKey"]
    )
    check_dry_run(call)
    return {
        "KeyId": cmk.arn,
        "SharedSecret": secret,
        "KeyAgreementAlgorithm": algorithm,
        "KeyOrigin": cmk.origin,
    }


async def encapsulate(call: Call) -> dict[str, Any]:
    return await call.read(_encapsulate, call)


def _encapsulate(call: Call) -> dict[str, Any]:
    p, keys = call.params, call.services.keys
    cmk = keys.usable_key(call.context, p["KeyId"], "Encapsulate")
    call.key_arn = cmk.arn
    algorithm = p["EncapsulationAlgorithm"]
    secret, ciphertext = key_material.encapsulate(
        cmk.key_spec, keys.current_material(cmk), algorithm
    )
    check_dry_run(call)
    return {
        "KeyId": cmk.arn,
        "SharedSecret": secret,
        "SharedSecretCiphertextBlob": ciphertext,
        "EncapsulationAlgorithm": algorithm,
    }


async def decapsulate(call: Call) -> dict[str, Any]:
    return await call.read(_decapsulate, call)


def _decapsulate(call: Call) -> dict[str, Any]:
    p, keys = call.params, call.services.keys
    cmk = keys.usable_key(call.context, p["KeyId"], "Decapsulate")
    call.key_arn = cmk.arn
    algorithm = p["EncapsulationAlgorithm"]
    secret = key_material.decapsulate(
        cmk.key_spec, keys.current_material(cmk), algorithm, p["SharedSecretCiphertextBlob"]
    )
    check_dry_run(call)
    return {"KeyId": cmk.arn, "SharedSecret": secret, "EncapsulationAlgorithm": algorithm}


OPERATIONS = {
    "DeriveSharedSecret": derive_shared_secret,
    "Encapsulate": encapsulate,
    "Decapsulate": decapsulate,
}
