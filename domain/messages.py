"""What Sign and Verify are given: a message, or a digest of it (MessageType), checked
against the algorithm (Sign API reference, "MessageType")."""

from __future__ import annotations

from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from domain.errors import ValidationError

RAW, DIGEST, EXTERNAL_MU = "RAW", "DIGEST", "EXTERNAL_MU"

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA_1": hashes.SHA1,
    "SHA_256": hashes.SHA256,
    "SHA_384": hashes.SHA384,
    "SHA_512": hashes.SHA512,
}


def hash_of(algorithm: str) -> hashes.HashAlgorithm:
    """The hash an algorithm name ends with: RSASSA_PSS_SHA_384 -> SHA-384."""
    return _HASHES["SHA_" + algorithm.rsplit("_", 1)[1]]()


def incompatible_message_type(message_type: str, key_spec: str) -> ValidationError:
    return ValidationError(f"Message type {message_type} is incompatible with key spec {key_spec}.")


def hashed_input(
    algorithm: str, key_spec: str, message_type: str, message: bytes
) -> hashes.HashAlgorithm | Prehashed:
    """For hash-then-sign algorithms (RSASSA_*, ECDSA_*): RAW is hashed by the primitive,
    DIGEST must be exactly the algorithm's digest length ("Digest is invalid length for
    algorithm ECDSA_SHA_256.", AWS text)."""
    digest = hash_of(algorithm)
    if message_type == RAW:
        return digest
    if message_type != DIGEST:
        raise incompatible_message_type(message_type, key_spec)
    if len(message) != digest.digest_size:
        raise ValidationError(f"Digest is invalid length for algorithm {algorithm}.")
    return Prehashed(digest)


def verified(check: Callable[[], object]) -> bool:
    """Run one of cryptography's verify calls: a mismatch is an answer, not an error."""
    try:
        check()
    except InvalidSignature:
        return False
    return True
