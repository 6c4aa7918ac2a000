"""Post-quantum keys: ML-DSA signatures (FIPS 204) and ML-KEM key encapsulation (FIPS 203)."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem

from domain.errors import ValidationError
from domain.messages import EXTERNAL_MU, RAW, incompatible_message_type, verified

MU_BYTES = 64  # FIPS 204 mu: SHAKE256(tr || M'), 64 bytes

_ML_DSA: dict[str, Any] = {
    "ML_DSA_44": mldsa.MLDSA44PrivateKey,
    "ML_DSA_65": mldsa.MLDSA65PrivateKey,
    "ML_DSA_87": mldsa.MLDSA87PrivateKey,
}
_ML_KEM: dict[str, Any] = {
    "ML_KEM_768": mlkem.MLKEM768PrivateKey,
    "ML_KEM_1024": mlkem.MLKEM1024PrivateKey,
}


def generate(key_spec: str) -> Any:
    return (_ML_DSA.get(key_spec) or _ML_KEM[key_spec]).generate()


def _check_message(key_spec: str, message_type: str, data: bytes) -> None:
    """RAW messages or an EXTERNAL_MU of 64 bytes; DIGEST is refused (AWS: "Message type
    DIGEST is incompatible with key spec ML_DSA_44.")."""
    if message_type not in (RAW, EXTERNAL_MU):
        raise incompatible_message_type(message_type, key_spec)
    if message_type == EXTERNAL_MU and len(data) != MU_BYTES:
        raise ValidationError("Digest is invalid length for algorithm ML_DSA_SHAKE_256.")


def sign(key: Any, key_spec: str, message_type: str, data: bytes) -> bytes:
    """Pure ML-DSA with an empty context string, as KMS signs."""
    _check_message(key_spec, message_type, data)
    return bytes(key.sign_mu(data) if message_type == EXTERNAL_MU else key.sign(data))


def verify(key: Any, key_spec: str, message_type: str, data: bytes, signature: bytes) -> bool:
    _check_message(key_spec, message_type, data)
    check = key.verify_mu if message_type == EXTERNAL_MU else key.verify
    return verified(lambda: check(signature, data))


def encapsulate(public_key: Any) -> tuple[bytes, bytes]:
    """(shared secret, ciphertext)."""
    shared, ciphertext = public_key.encapsulate()
    return bytes(shared), bytes(ciphertext)


def decapsulate(key: Any, ciphertext: bytes) -> bytes:
    try:
        return bytes(key.decapsulate(ciphertext))
    except ValueError:
        raise ValidationError("") from None
