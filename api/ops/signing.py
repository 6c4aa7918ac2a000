"""Sign and Verify with asymmetric SIGN_VERIFY keys (Sign / Verify API references)."""

from __future__ import annotations

from typing import Any

from api.ops.key_use import check_dry_run, key_in_use
from api.services import Call
from domain import key_material
from domain.errors import KmsInvalidSignatureError
from domain.messages import RAW


def _with_signing_conditions(call: Call) -> None:
    """kms:SigningAlgorithm and kms:MessageType (KMS condition keys reference)."""
    p = call.params
    call.ctx = call.context.with_conditions(
        **{
            "kms:SigningAlgorithm": p["SigningAlgorithm"],
            "kms:MessageType": p.get("MessageType", RAW),
        }
    )


async def sign(call: Call) -> dict[str, Any]:
    _with_signing_conditions(call)
    return await call.read(_sign, call)


def _sign(call: Call) -> dict[str, Any]:
    p = call.params
    cmk, material = key_in_use(call, "Sign")
    algorithm = p["SigningAlgorithm"]
    signature = key_material.sign(
        cmk.key_spec, material, algorithm, p.get("MessageType", RAW), p["Message"]
    )
    check_dry_run(call)
    return {"KeyId": cmk.arn, "Signature": signature, "SigningAlgorithm": algorithm}


async def verify(call: Call) -> dict[str, Any]:
    _with_signing_conditions(call)
    return await call.read(_verify, call)


def _verify(call: Call) -> dict[str, Any]:
    p = call.params
    cmk, material = key_in_use(call, "Verify")
    algorithm = p["SigningAlgorithm"]
    valid = key_material.verify(
        cmk.key_spec,
        material,
        algorithm,
        p.get("MessageType", RAW),
        p["Message"],
        signature=p["Signature"],
    )
    check_dry_run(call)
    if not valid:
        raise KmsInvalidSignatureError
    return {"KeyId": cmk.arn, "SignatureValid": True, "SigningAlgorithm": algorithm}


OPERATIONS = {"Sign": sign, "Verify": verify}
