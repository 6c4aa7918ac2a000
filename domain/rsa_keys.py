"""RSA keys (RFC 8017): RSASSA-PSS and RSASSA-PKCS1-v1_5 signatures, RSAES-OAEP encryption."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import padding, rsa

from domain.errors import InvalidCiphertextError, ValidationError
from domain.messages import hash_of, hashed_input, verified

PUBLIC_EXPONENT = 65537


def generate(key_spec: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(PUBLIC_EXPONENT, int(key_spec.removeprefix("RSA_")))


def _signature_padding(algorithm: str) -> padding.AsymmetricPadding:
    """PSS salt length equals the digest length, as KMS signs (key spec reference)."""
    if algorithm.startswith("RSASSA_PSS_"):
        digest = hash_of(algorithm)
        return padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
    return padding.PKCS1v15()


def sign(
    key: rsa.RSAPrivateKey, key_spec: str, algorithm: str, message_type: str, message: bytes
) -> bytes:
    chosen = hashed_input(algorithm, key_spec, message_type, message)
    return key.sign(message, _signature_padding(algorithm), chosen)


def verify(
    key: rsa.RSAPublicKey,
    key_spec: str,
    algorithm: str,
    message_type: str,
    message: bytes,
    *,
    signature: bytes,
) -> bool:
    chosen = hashed_input(algorithm, key_spec, message_type, message)
    return verified(lambda: key.verify(signature, message, _signature_padding(algorithm), chosen))


def _oaep(algorithm: str) -> padding.OAEP:
    """RSAES_OAEP_SHA_*: MGF1 with the same hash and an empty label (key spec reference)."""
    digest = hash_of(algorithm)
    return padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)


def max_plaintext(key_size: int, algorithm: str) -> int:
    """k - 2*hLen - 2 bytes (RFC 8017 section 7.1.1)."""
    return key_size // 8 - 2 * hash_of(algorithm).digest_size - 2


def encrypt(key: rsa.RSAPublicKey, key_spec: str, algorithm: str, plaintext: bytes) -> bytes:
    limit = max_plaintext(key.key_size, algorithm)
    if len(plaintext) > limit:
        raise ValidationError(
            f"Algorithm {algorithm} and key spec {key_spec} cannot encrypt data larger "
            f"than {limit} bytes."
        )
    return key.encrypt(plaintext, _oaep(algorithm))


def decrypt(key: rsa.RSAPrivateKey, algorithm: str, ciphertext: bytes) -> bytes:
    try:
        return key.decrypt(ciphertext, _oaep(algorithm))
    except ValueError:
        raise InvalidCiphertextError from None
