"""Elliptic-curve keys: ECDSA on NIST P-curves and secp256k1 (FIPS 186-5, SEC 2), ECDH
key agreement (NIST SP 800-56A), and Ed25519 (RFC 8032)."""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from domain.errors import UnsupportedOperationError, ValidationError
from domain.messages import DIGEST, RAW, hashed_input, incompatible_message_type, verified

CURVES: dict[str, type[ec.EllipticCurve]] = {
    "ECC_NIST_P256": ec.SECP256R1,
    "ECC_NIST_P384": ec.SECP384R1,
    "ECC_NIST_P521": ec.SECP521R1,
    "ECC_SECG_P256K1": ec.SECP256K1,
}
ED25519_PH = "ED25519_PH_SHA_512"


def generate(key_spec: str) -> ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey:
    if key_spec == "ECC_NIST_EDWARDS25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(CURVES[key_spec]())


def sign_ecdsa(
    key: ec.EllipticCurvePrivateKey, key_spec: str, algorithm: str, message_type: str, data: bytes
) -> bytes:
    """DER-encoded (r, s), the form KMS returns (Sign API reference, "Signature")."""
    return key.sign(data, ec.ECDSA(hashed_input(algorithm, key_spec, message_type, data)))


def verify_ecdsa(
    key: ec.EllipticCurvePublicKey,
    key_spec: str,
    algorithm: str,
    message_type: str,
    data: bytes,
    *,
    signature: bytes,
) -> bool:
    chosen = hashed_input(algorithm, key_spec, message_type, data)
    return verified(lambda: key.verify(signature, data, ec.ECDSA(chosen)))


def _check_ed25519(key_spec: str, algorithm: str, message_type: str) -> None:
    """ED25519_SHA_512 signs the RAW message; ED25519_PH_SHA_512 (Ed25519ph) takes a
    SHA-512 DIGEST, and cryptography has no Ed25519ph: refused, never hand-made."""
    if algorithm == ED25519_PH:
        if message_type != DIGEST:
            raise incompatible_message_type(message_type, key_spec)
        raise UnsupportedOperationError(
            "ED25519_PH_SHA_512 (Ed25519ph) is not supported by keyledger; "
            "use ED25519_SHA_512 with MessageType RAW."
        )
    if message_type != RAW:
        raise incompatible_message_type(message_type, key_spec)


def sign_ed25519(
    key: ed25519.Ed25519PrivateKey, key_spec: str, algorithm: str, message_type: str, data: bytes
) -> bytes:
    _check_ed25519(key_spec, algorithm, message_type)
    return key.sign(data)


def verify_ed25519(
    key: ed25519.Ed25519PublicKey,
    key_spec: str,
    algorithm: str,
    message_type: str,
    data: bytes,
    *,
    signature: bytes,
) -> bool:
    _check_ed25519(key_spec, algorithm, message_type)
    return verified(lambda: key.verify(signature, data))


def derive_shared_secret(key: ec.EllipticCurvePrivateKey, peer_public_key: bytes) -> bytes:
    """ECDH: the x-coordinate of the shared point, unhashed, as KMS returns it
    (DeriveSharedSecret API reference). A public key that is not DER SPKI on the
    key's curve is a ValidationException with no message (AWS)."""
    try:
        peer = serialization.load_der_public_key(peer_public_key)
    except (ValueError, UnsupportedAlgorithm):
        raise ValidationError("") from None
    if not isinstance(peer, ec.EllipticCurvePublicKey) or peer.curve.name != key.curve.name:
        raise ValidationError("")
    return key.exchange(ec.ECDH(), peer)
