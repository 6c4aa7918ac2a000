"""Key lifecycle: rotation (automatic and on demand) and scheduled deletion."""

from __future__ import annotations

from typing import Any

from api.ops.paging import after_index, page
from api.services import Call
from domain.values import PENDING_WINDOW_DAYS, ROTATION_PERIOD_DAYS


async def enable_key_rotation(call: Call) -> dict[str, Any]:
    period = call.params.get("RotationPeriodInDays", ROTATION_PERIOD_DAYS[2])
    call.key_arn = await call.command(
        call.services.ledger.enable_key_rotation, key_id=call.params["KeyId"], period_days=period
    )
    return {}


async def disable_key_rotation(call: Call) -> dict[str, Any]:
    call.key_arn = await call.command(
        call.services.ledger.disable_key_rotation, key_id=call.params["KeyId"]
    )
    return {}


async def rotate_key_on_demand(call: Call) -> dict[str, Any]:
    call.key_arn = await call.command(
        call.services.ledger.rotate_key_on_demand, key_id=call.params["KeyId"]
    )
    return {"KeyId": call.key_arn}


async def get_key_rotation_status(call: Call) -> dict[str, Any]:
    cmk = await call.read(_key, call, "GetKeyRotationStatus")
    cmk.check_can_rotate()
    return cmk.rotation_status()


async def list_key_rotations(call: Call) -> dict[str, Any]:
    """ListKeyRotations: oldest first. ALL_KEY_MATERIAL adds the original material (and,
    for imported keys, material imported and pending rotation). Imported keys' entries
    carry ImportState, ExpirationModel, ValidTo and KeyMaterialDescription."""
    cmk = await call.read(_key, call, "ListKeyRotations")
    cmk.check_can_rotate(imported=True)
    entries = [_rotation_entry(cmk.arn, r, cmk.current_material_id) for r in cmk.rotations]
    if call.params.get("IncludeKeyMaterial") == "ALL_KEY_MATERIAL" and cmk.materials:
        original = next(iter(cmk.materials))
        state = "CURRENT" if original == cmk.current_material_id else "NON_CURRENT"
        entries.insert(0, {"KeyId": cmk.arn, "KeyMaterialId": original, "KeyMaterialState": state})
        pending = cmk.pending_rotation_material()
        if pending is not None:
            entries.append({"KeyId": cmk.arn, "KeyMaterialId": pending})
    if cmk.imports:
        entries = [entry | cmk.material_entry(entry["KeyMaterialId"]) for entry in entries]
    start = after_index(call.params.get("Marker"))
    limit = call.params.get("Limit", 100)
    window = entries[start : start + limit + 1]
    return page(window, limit, lambda _: str(start + limit), "Rotations", window)


def _rotation_entry(arn: str, rotation: dict[str, Any], current: str) -> dict[str, Any]:
    return {
        "KeyId": arn,
        "KeyMaterialId": rotation["material_id"],
        "KeyMaterialState": "CURRENT" if rotation["material_id"] == current else "NON_CURRENT",
        "RotationDate": rotation["date"],
        "RotationType": rotation["type"],
    }


def _key(call: Call, operation: str) -> Any:
    ledger = call.services.ledger
    cmk = ledger.read_key(call.context, call.params["KeyId"], operation, allow_alias=False)
    call.key_arn = cmk.arn
    return cmk


async def schedule_key_deletion(call: Call) -> dict[str, Any]:
    window = call.params.get("PendingWindowInDays", PENDING_WINDOW_DAYS[2])
    result = await call.command(
        call.services.ledger.schedule_key_deletion,
        key_id=call.params["KeyId"],
        window_days=window,
    )
    call.key_arn = result["KeyId"]
    return result


async def cancel_key_deletion(call: Call) -> dict[str, Any]:
    call.key_arn = await call.command(
        call.services.ledger.cancel_key_deletion, key_id=call.params["KeyId"]
    )
    return {"KeyId": call.key_arn}


OPERATIONS = {
    "EnableKeyRotation": enable_key_rotation,
    "DisableKeyRotation": disable_key_rotation,
    "RotateKeyOnDemand": rotate_key_on_demand,
    "GetKeyRotationStatus": get_key_rotation_status,
    "ListKeyRotations": list_key_rotations,
    "ScheduleKeyDeletion": schedule_key_deletion,
    "CancelKeyDeletion": cancel_key_deletion,
}
