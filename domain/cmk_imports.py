"""Imported key material rules of the Cmk aggregate (bring your own key).

ImportKeyMaterial, DeleteImportedKeyMaterial, expiry and on-demand rotation to imported
material (https://docs.aws.amazon.com/kms/latest/developerguide/importing-keys.html,
importing-keys-import-key-material.html, rotate-keys-import.html).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from domain.errors import (
    IncorrectKeyMaterialError,
    InvalidStateError,
    NotFoundError,
    UnsupportedOperationError,
)
from domain.imports import EXISTING_KEY_MATERIAL, NEW_KEY_MATERIAL
from domain.values import EXTERNAL, SYMMETRIC_DEFAULT, KeyState, RequestContext

CURRENT, NON_CURRENT, PENDING_ROTATION = "CURRENT", "NON_CURRENT", "PENDING_ROTATION"
IMPORTED, PENDING_IMPORT = "IMPORTED", "PENDING_IMPORT"


class ImportRules:
    """Mixed into Cmk: each command checks the KMS rule, then records MaterialImported,
    MaterialDeleted or MaterialExpired. ``imports`` maps a material id to what was said
    about it at import: description, expiration model, ValidTo, whether it is present
    (imported) and whether it waits for RotateKeyOnDemand (pending_rotation)."""

    if TYPE_CHECKING:  # provided by Cmk (typed loosely: this module imports no Cmk)
        arn: str
        origin: str
        key_spec: str
        state: KeyState
        materials: dict[str, bytes]
        current_material_id: str | None
        imports: dict[str, dict[str, Any]]
        MaterialImported: type[Any]
        MaterialDeleted: type[Any]
        MaterialExpired: type[Any]

        def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None: ...

    def check_import_allowed(self) -> None:
        """GetParametersForImport and ImportKeyMaterial: EXTERNAL keys only (key-state
        table [9]), not while deletion is pending ([8])."""
        if self.origin != EXTERNAL:
            raise UnsupportedOperationError(
                f"{self.arn} origin is {self.origin} which is not valid for this operation."
            )
        if self.state is KeyState.PENDING_DELETION:
            raise InvalidStateError(f"{self.arn} is pending deletion.")

    def check_material_usable(self, material_id: str) -> None:
        """A ciphertext of imported material that was deleted or expired while other
        material stays current: the key works, that material does not."""
        if material_id in self.imports and not self.imports[material_id]["imported"]:
            raise InvalidStateError(f"{self.arn} key material {material_id} is pending import.")

    def material_present(self, material_id: str) -> bool:
        info = self.imports.get(material_id)
        return info is not None and info["imported"]

    def check_import(
        self, material_id: str, import_type: str | None, key_material_id: str | None
    ) -> bool:
        """Is this material allowed into this key? Returns True when it arrives as new
        material pending rotation. ImportType defaults to NEW_KEY_MATERIAL for the first
        import and to EXISTING_KEY_MATERIAL after it (ImportKeyMaterial reference)."""
        self.check_import_allowed()
        known = set(self.materials)
        import_type = import_type or (EXISTING_KEY_MATERIAL if known else NEW_KEY_MATERIAL)
        if key_material_id is not None and key_material_id != material_id:
            raise IncorrectKeyMaterialError(
                f"The key material does not match KeyMaterialId {key_material_id}."
            )
        if import_type == EXISTING_KEY_MATERIAL:
            if material_id not in known:
                raise IncorrectKeyMaterialError(
                    "The key material does not match the key material previously imported "
                    "into this KMS key."
                )
            return False
        if not known:
            return False  # the first material of the key
        if self.key_spec != SYMMETRIC_DEFAULT:
            raise UnsupportedOperationError(
                "NEW_KEY_MATERIAL can only be imported into symmetric encryption KMS keys "
                "that already have key material."
            )
        if material_id in known:
            raise IncorrectKeyMaterialError(
                "This key material was already imported into this KMS key; import it with "
                "ImportType EXISTING_KEY_MATERIAL."
            )
        if any(info["pending_rotation"] for info in self.imports.values()):
            raise InvalidStateError(f"{self.arn} already has key material pending rotation.")
        return True

    def import_material(
        self,
        *,
        material_id: str,
        wrapped_material: bytes,
        import_type: str | None,
        key_material_id: str | None,
        expiration_model: str,
        valid_to: datetime | None,
        description: str | None,
        ctx: RequestContext,
        now: datetime,
    ) -> None:
        pending = self.check_import(material_id, import_type, key_material_id)
        self.trigger_event(
            self.MaterialImported,
            timestamp=now,
            request=ctx.as_dict(),
            material_id=material_id,
            wrapped_material=wrapped_material,
            expiration_model=expiration_model,
            valid_to=valid_to,
            description=description,
            pending_rotation=pending,
        )

    def delete_imported(
        self, material_id: str | None, ctx: RequestContext, now: datetime
    ) -> list[str]:
        """DeleteImportedKeyMaterial: the named material, or the current one. On a key
        pending import it has no effect (key-state table). Returns the material ids whose
        wrapping keys the caller must now destroy."""
        if self.origin != EXTERNAL:
            raise UnsupportedOperationError(
                f"{self.arn} origin is {self.origin} which is not valid for this operation."
            )
        target = material_id or self.current_material_id
        if material_id is not None and material_id not in self.imports:
            raise NotFoundError(f"Key material {material_id} is not found in {self.arn}.")
        if target is None or not self.material_present(target):
            return []
        self.trigger_event(
            self.MaterialDeleted, timestamp=now, request=ctx.as_dict(), material_ids=[target]
        )
        return [target]

    def expired_materials(self, now: datetime) -> list[str]:
        return [
            material_id
            for material_id, info in self.imports.items()
            if info["imported"] and info["valid_to"] is not None and info["valid_to"] <= now
        ]

    def expire(self, ctx: RequestContext, now: datetime) -> list[str]:
        """The scheduler's DeleteExpiredKeyMaterial: material past its ValidTo goes;
        the key, its metadata and its other material stay."""
        expired = self.expired_materials(now)
        if expired:
            self.trigger_event(
                self.MaterialExpired, timestamp=now, request=ctx.as_dict(), material_ids=expired
            )
        return expired

    def pending_rotation_material(self) -> str | None:
        return next((m for m, info in self.imports.items() if info["pending_rotation"]), None)

    def material_entry(self, material_id: str) -> dict[str, Any]:
        """ListKeyRotations / DescribeKey members for one imported material version."""
        info = self.imports[material_id]
        if material_id == self.current_material_id:
            state = CURRENT
        elif info["pending_rotation"]:
            state = PENDING_ROTATION
        else:
            state = NON_CURRENT
        return {
            "KeyMaterialId": material_id,
            "KeyMaterialDescription": info["description"],
            "ImportState": IMPORTED if info["imported"] else PENDING_IMPORT,
            "KeyMaterialState": state,
            "ExpirationModel": info["expiration_model"] if info["imported"] else None,
            "ValidTo": info["valid_to"] if info["imported"] else None,
        }

    def import_metadata(self) -> dict[str, Any]:
        """DescribeKey's ExpirationModel and ValidTo: those of the current material."""
        current = self.current_material_id
        if self.origin != EXTERNAL or current is None or not self.material_present(current):
            return {}
        info = self.imports[current]
        return {"ExpirationModel": info["expiration_model"], "ValidTo": info["valid_to"]}


def imported_info(
    *, description: str | None, expiration_model: str, valid_to: datetime | None, pending: bool
) -> dict[str, Any]:
    return {
        "description": description,
        "expiration_model": expiration_model,
        "valid_to": valid_to,
        "imported": True,
        "pending_rotation": pending,
    }
