"""GetPublicKey, and data key pairs sealed under a symmetric key (GenerateDataKeyPair*)."""

from __future__ import annotations

from typing import Any

from api.ops.key_use import check_dry_run, key_in_use
from api.ops.managed import ensure_managed_key
from api.services import Call
from domain import key_material
from domain.authorization import request_conditions
from domain.cmk import Cmk
from domain.errors import UnsupportedOperationError
from domain.key_specs import algorithms, spec_info
from domain.values import SYMMETRIC_DEFAULT


async def get_public_key(call: Call) -> dict[str, Any]:
    return await call.read(_get_public_key, call)


def _get_public_key(call: Call) -> dict[str, Any]:
    cmk, material = key_in_use(call, "GetPublicKey")
    return {
        "KeyId": cmk.arn,
        "PublicKey": key_material.public_key_der(material),
        "CustomerMasterKeySpec": cmk.key_spec,
        "KeySpec": cmk.key_spec,
        "KeyUsage": cmk.key_usage,
        **algorithms(cmk.key_spec, cmk.key_usage),
    }


async def _generate_data_key_pair(call: Call, operation: str) -> dict[str, Any]:
    p = call.params
    if "Recipient" in p:
        raise UnsupportedOperationError("Recipient (Nitro Enclaves attestation) is not supported.")
    call.ctx = call.context.with_conditions(
        **request_conditions(
            encryption_context=p.get("EncryptionContext", {}), algorithm=SYMMETRIC_DEFAULT
        ),
        **{"kms:DataKeyPairSpec": p["KeyPairSpec"]},
    )
    await ensure_managed_key(call, p["KeyId"])
    info = spec_info(p["KeyPairSpec"])
    if info.unsupported is not None:
        raise UnsupportedOperationError(info.unsupported.replace("KeySpec", "KeyPairSpec"))
    cmk = await call.read(call.services.keys.usable_key, call.context, p["KeyId"], operation)
    call.key_arn = cmk.arn
    check_dry_run(call)
    pair = await call.services.generate(key_material.key_pair, info.name)
    return await call.read(_seal_key_pair, call, cmk, pair)


def _seal_key_pair(call: Call, cmk: Cmk, pair: tuple[bytes, bytes]) -> dict[str, Any]:
    """The private key is PKCS#8 DER (ML-KEM in its seed form), sealed like any data key
    under the symmetric key with the request's encryption context."""
    p, keys = call.params, call.services.keys
    pair_spec = p["KeyPairSpec"]
    private_key, public_key = pair
    sealed = keys.seal(cmk, private_key, p.get("EncryptionContext"))
    return {
        "PrivateKeyCiphertextBlob": sealed.blob,
        "PrivateKeyPlaintext": private_key,
        "PublicKey": public_key,
        "KeyId": sealed.key_arn,
        "KeyPairSpec": pair_spec,
        "KeyMaterialId": sealed.material_id,
    }


async def generate_data_key_pair(call: Call) -> dict[str, Any]:
    return await _generate_data_key_pair(call, "GenerateDataKeyPair")


async def generate_data_key_pair_without_plaintext(call: Call) -> dict[str, Any]:
    result = await _generate_data_key_pair(call, "GenerateDataKeyPairWithoutPlaintext")
    del result["PrivateKeyPlaintext"]
    return result


OPERATIONS = {
    "GetPublicKey": get_public_key,
    "GenerateDataKeyPair": generate_data_key_pair,
    "GenerateDataKeyPairWithoutPlaintext": generate_data_key_pair_without_plaintext,
}
