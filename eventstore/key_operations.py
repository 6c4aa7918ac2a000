"""Cryptographic operations on symmetric keys: they read the write model, change nothing."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag

from domain import crypto, key_material
from domain.cmk import Cmk
from domain.errors import (
    InternalError,
    InvalidCiphertextError,
    InvalidKeyUsageError,
    ValidationError,
)
from domain.key_specs import spec_info
from domain.values import SYMMETRIC_DEFAULT, RequestContext
from eventstore.keystore import WrappingKeyMissing
from eventstore.ledger import MATERIAL_PURPOSE, KeyLedger

log = logging.getLogger("keyledger.crypto")
Context = Mapping[str, str] | None


@dataclass(frozen=True)
class Sealed:
    blob: bytes
    key_arn: str
    material_id: str | None  # KeyMaterialId: symmetric keys only (Decrypt API reference)


@dataclass(frozen=True)
class Opened:
    plaintext: bytes
    key_arn: str
    material_id: str | None


class KeyOperations:
    """Encrypt, Decrypt, ReEncrypt and data keys (KMS cryptographic-details pages)."""

    def __init__(self, ledger: KeyLedger) -> None:
        self.ledger = ledger

    def usable_key(self, ctx: RequestContext, key_id: str, op: str) -> Cmk:
        cmk = self.ledger.read_key(ctx, key_id, op)
        cmk.check_usable_for(op)
        return cmk

    def seal(
        self, cmk: Cmk, plaintext: bytes, context: Context, algorithm: str = SYMMETRIC_DEFAULT
    ) -> Sealed:
        """Symmetric keys make a keyledger blob; RSA keys a bare RSAES-OAEP ciphertext,
        which anyone holding the public key could have made (no header, no context)."""
        material_id = cmk.current_material_id
        material = self._material(cmk, material_id)
        if cmk.key_spec != SYMMETRIC_DEFAULT:
            blob = key_material.encrypt(cmk.key_spec, material, algorithm, plaintext)
            return Sealed(blob, cmk.arn, None)
        blob = crypto.seal(material, cmk.id, material_id, plaintext, context)
        return Sealed(blob, cmk.arn, material_id)

    def open_asymmetric(self, cmk: Cmk, algorithm: str, blob: bytes) -> Opened:
        """RSA ciphertexts carry no key id: the caller named the key (KeyId)."""
        material = self.current_material(cmk)
        plaintext = key_material.decrypt(cmk.key_spec, material, algorithm, blob)
        return Opened(plaintext, cmk.arn, None)

    def open(self, cmk: Cmk, header: crypto.BlobHeader, blob: bytes, context: Context) -> Opened:
        if header.material_id not in cmk.materials:
            raise InvalidCiphertextError
        cmk.check_material_usable(header.material_id)
        material = self._material(cmk, header.material_id)
        plaintext = crypto.open_blob(material, header, blob, context)
        return Opened(plaintext, cmk.arn, header.material_id)

    def source_key(
        self, ctx: RequestContext, header: crypto.BlobHeader, key_id: str | None, op: str
    ) -> Cmk:
        cmk = self.ledger.key_for_ciphertext(ctx, header.key_id, op, named=key_id)
        cmk.check_usable_for(op)
        return cmk

    def current_material(self, cmk: Cmk) -> bytes:
        """The plaintext material of a key's current version, for one operation."""
        return self._material(cmk, cmk.current_material_id)

    def _material(self, cmk: Cmk, material_id: str) -> bytes:
        try:
            wrapping_key = self.ledger.keystore.wrapping_key(cmk.id, material_id)
            return crypto.unwrap(
                wrapping_key,
                cmk.materials[material_id],
                crypto.material_aad(MATERIAL_PURPOSE, cmk.id, material_id),
            )
        except (WrappingKeyMissing, InvalidTag):
            # A store fault, not a caller fault: say nothing about the material.
            log.error("material %s of %s cannot be unwrapped", material_id, cmk.arn)
            raise InternalError("An internal error occurred.") from None


def check_algorithm(cmk: Cmk, algorithm: str | None, context: Context = None) -> None:
    """Symmetric keys take only SYMMETRIC_DEFAULT, RSA keys only RSAES_OAEP_SHA_1/256
    (key spec table in the KMS guide). Asymmetric encryption binds no encryption
    context, so one given with an RSA key is refused rather than silently dropped."""
    offered = spec_info(cmk.key_spec).encryption
    if (algorithm or SYMMETRIC_DEFAULT) not in offered:
        raise InvalidKeyUsageError(
            f"Algorithm {algorithm or SYMMETRIC_DEFAULT} is incompatible with key spec "
            f"{cmk.key_spec}."
        )
    if context and cmk.key_spec != SYMMETRIC_DEFAULT:
        raise ValidationError("EncryptionContext is not supported with asymmetric KMS keys.")
