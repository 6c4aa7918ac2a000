"""Key establishment: DeriveSharedSecret (ECDH) and, with a service model that has them,
Encapsulate / Decapsulate (ML-KEM)."""

from __future__ import annotations

from typing import Any

from api.ops.key_use import check_dry_run, key_in_use
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
    p = call.params
    cmk, material = key_in_use(call, "DeriveSharedSecret")
    algorithm = p["KeyAgreementAlgorithm"]
    secret = key_material.derive_shared_secret(cmk.key_spec, material, algorithm, p["PublicKey"])
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
    p = call.params
    cmk, material = key_in_use(call, "Encapsulate")
    algorithm = p["EncapsulationAlgorithm"]
    secret, ciphertext = key_material.encapsulate(cmk.key_spec, material, algorithm)
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
    p = call.params
    cmk, material = key_in_use(call, "Decapsulate")
    algorithm = p["EncapsulationAlgorithm"]
    secret = key_material.decapsulate(
        cmk.key_spec, material, algorithm, p["SharedSecretCiphertextBlob"]
    )
    check_dry_run(call)
    return {"KeyId": cmk.arn, "SharedSecret": secret, "EncapsulationAlgorithm": algorithm}


OPERATIONS = {
    "DeriveSharedSecret": derive_shared_secret,
    "Encapsulate": encapsulate,
    "Decapsulate": decapsulate,
}
