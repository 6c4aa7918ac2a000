"""Imported key material: GetParametersForImport, ImportKeyMaterial, DeleteImportedKeyMaterial.

RSA work (generating the wrapping key, undoing the customer's wrapping) runs on the key
generation threads; the writer thread only records (importing-keys.html).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from api.services import Call
from domain import imports
from domain.errors import ExpiredImportTokenError, InvalidImportTokenError
from domain.imports import ImportRef, ImportTokens
from eventstore.keystore import WrappingKeyMissing


async def get_parameters_for_import(call: Call) -> dict[str, Any]:
    p, services = call.params, call.services
    # Condition keys (conditions-kms.html): kms:WrappingAlgorithm, kms:WrappingKeySpec.
    call.ctx = call.context.with_conditions(
        **{
            "kms:WrappingAlgorithm": p["WrappingAlgorithm"],
            "kms:WrappingKeySpec": p["WrappingKeySpec"],
        }
    )
    cmk = await call.read(
        services.ledger.read_key,
        call.context,
        p["KeyId"],
        "GetParametersForImport",
        allow_alias=False,
    )
    call.key_arn = cmk.arn
    cmk.check_import_allowed()
    imports.check_wrapping_choice(p["WrappingAlgorithm"], p["WrappingKeySpec"])
    private, public = await services.generate(imports.new_wrapping_key, p["WrappingKeySpec"])
    now = services.clock().replace(microsecond=0)
    ref = ImportRef(
        key_id=cmk.id,
        wrapping_key_id=os.urandom(16).hex(),
        wrapping_algorithm=p["WrappingAlgorithm"],
        expires=now + timedelta(seconds=imports.TOKEN_LIFETIME_SECONDS),
    )
    await call.read(
        services.ledger.keystore.put_import_key,
        cmk.id,
        ref.wrapping_key_id,
        private,
        ref.expires.timestamp(),
    )
    return {
        "KeyId": cmk.arn,
        "ImportToken": services.import_tokens.issue(ref),
        "PublicKey": public,
        "ParametersValidTo": ref.expires,
    }


async def import_key_material(call: Call) -> dict[str, Any]:
    p, services = call.params, call.services
    keystore = services.ledger.keystore
    now = services.clock()
    valid_to = p.get("ValidTo")
    model, valid_to = imports.check_expiry(
        p.get("ExpirationModel"),
        None if valid_to is None else datetime.fromtimestamp(valid_to, UTC),
        now,
    )
    # Condition keys (conditions-kms.html): kms:ExpirationModel, and kms:ValidTo in epoch
    # seconds (absent, so Null, for material that does not expire).
    conditions: dict[str, Any] = {"kms:ExpirationModel": model}
    if valid_to is not None:
        conditions["kms:ValidTo"] = valid_to.timestamp()
    call.ctx = call.context.with_conditions(**conditions)
    cmk = await call.read(
        services.ledger.read_key, call.context, p["KeyId"], "ImportKeyMaterial", allow_alias=False
    )
    call.key_arn = cmk.arn
    cmk.check_import_allowed()
    ref = services.import_tokens.read(p["ImportToken"])
    if ref.key_id != cmk.id:
        raise InvalidImportTokenError
    if ref.expires <= now:
        raise ExpiredImportTokenError
    try:
        private = await call.read(keystore.import_key, cmk.id, ref.wrapping_key_id)
    except WrappingKeyMissing:  # spent by an earlier import, or destroyed at expiry
        raise InvalidImportTokenError from None
    material, material_id = await services.generate(
        _opened_material,
        services.import_tokens,
        private,
        ref,
        p["EncryptedKeyMaterial"],
        cmk.key_spec,
    )
    arn, material_id = await call.command(
        services.ledger.import_key_material,
        key_id=p["KeyId"],
        material=material,
        material_id=material_id,
        options={
            "import_type": p.get("ImportType"),
            "key_material_id": p.get("KeyMaterialId"),
            "expiration_model": model,
            "valid_to": valid_to,
            "description": p.get("KeyMaterialDescription"),
        },
    )
    await call.read(keystore.destroy_import_key, ref.wrapping_key_id)
    return {"KeyId": arn, "KeyMaterialId": material_id}


def _opened_material(
    tokens: ImportTokens, private: bytes, ref: ImportRef, encrypted: bytes, key_spec: str
) -> tuple[bytes, str]:
    """Unwrapped, checked for the key spec, and named: CPU-heavy, off the loop."""
    raw = imports.unwrap_material(private, ref.wrapping_algorithm, encrypted)
    material = imports.checked_material(key_spec, raw)
    return material, tokens.material_id(ref.key_id, material)


async def delete_imported_key_material(call: Call) -> dict[str, Any]:
    """The event is durable first; then the wrapping keys of the material are destroyed
    (crypto-shredding), so the wrapped material in the log can never be opened again."""
    services = call.services
    arn, deleted = await call.command(
        services.ledger.delete_imported_key_material,
        key_id=call.params["KeyId"],
        material_id=call.params.get("KeyMaterialId"),
    )
    call.key_arn = arn
    await call.read(services.ledger.keystore.destroy_materials, deleted)
    material_id = deleted[0] if deleted else call.params.get("KeyMaterialId")
    return {"KeyId": arn, "KeyMaterialId": material_id}


OPERATIONS = {
    "GetParametersForImport": get_parameters_for_import,
    "ImportKeyMaterial": import_key_material,
    "DeleteImportedKeyMaterial": delete_imported_key_material,
}
