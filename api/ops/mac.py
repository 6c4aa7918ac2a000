"""GenerateMac and VerifyMac with HMAC keys (GenerateMac / VerifyMac API references)."""

from __future__ import annotations

from typing import Any

from api.ops.dry_run import check_dry_run
from api.services import Call
from domain import key_material
from domain.errors import KmsInvalidMacError


def _with_mac_condition(call: Call) -> None:
    """kms:MacAlgorithm (KMS condition keys reference)."""
    call.ctx = call.context.with_conditions(**{"kms:MacAlgorithm": call.params["MacAlgorithm"]})


async def generate_mac(call: Call) -> dict[str, Any]:
    _with_mac_condition(call)
    return await call.read(_generate_mac, call)


def _generate_mac(call: Call) -> dict[str, Any]:
    p, keys = call.params, call.services.keys
    cmk = keys.usable_key(call.context, p["KeyId"], "GenerateMac")
    call.key_arn = cmk.arn
    algorithm = p["MacAlgorithm"]
    tag = key_material.mac(cmk.key_spec, keys.current_material(cmk), algorithm, p["Message"])
    check_dry_run(call)
    return {"Mac": tag, "MacAlgorithm": algorithm, "KeyId": cmk.arn}


async def verify_mac(call: Call) -> dict[str, Any]:
    _with_mac_condition(call)
    return await call.read(_verify_mac, call)


def _verify_mac(call: Call) -> dict[str, Any]:
    p, keys = call.params, call.services.keys
    cmk = keys.usable_key(call.context, p["KeyId"], "VerifyMac")
    call.key_arn = cmk.arn
    algorithm = p["MacAlgorithm"]
    material = keys.current_material(cmk)
    valid = key_material.verify_mac(cmk.key_spec, material, algorithm, p["Message"], p["Mac"])
    check_dry_run(call)
    if not valid:
        raise KmsInvalidMacError
    return {"KeyId": cmk.arn, "MacValid": True, "MacAlgorithm": algorithm}


OPERATIONS = {"GenerateMac": generate_mac, "VerifyMac": verify_mac}
