"""GenerateMac and VerifyMac with HMAC keys (GenerateMac / VerifyMac API references)."""

from __future__ import annotations

from typing import Any

from api.ops.key_use import check_dry_run, key_in_use
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
    p = call.params
    cmk, material = key_in_use(call, "GenerateMac")
    algorithm = p["MacAlgorithm"]
    tag = key_material.mac(cmk.key_spec, material, algorithm, p["Message"])
    check_dry_run(call)
    return {"Mac": tag, "MacAlgorithm": algorithm, "KeyId": cmk.arn}


async def verify_mac(call: Call) -> dict[str, Any]:
    _with_mac_condition(call)
    return await call.read(_verify_mac, call)


def _verify_mac(call: Call) -> dict[str, Any]:
    p = call.params
    cmk, material = key_in_use(call, "VerifyMac")
    algorithm = p["MacAlgorithm"]
    valid = key_material.verify_mac(cmk.key_spec, material, algorithm, p["Message"], p["Mac"])
    check_dry_run(call)
    if not valid:
        raise KmsInvalidMacError
    return {"KeyId": cmk.arn, "MacValid": True, "MacAlgorithm": algorithm}


OPERATIONS = {"GenerateMac": generate_mac, "VerifyMac": verify_mac}
