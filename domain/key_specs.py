"""The key catalogue: which KeySpec takes which KeyUsage, and with which algorithms.

Facts from the KMS guide's key spec reference
(https://docs.aws.amazon.com/kms/latest/developerguide/symm-asymm-choose-key-spec.html) and
the botocore service model; the DescribeKey lists are in the order AWS answers them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from domain.errors import InvalidKeyUsageError, UnsupportedOperationError, ValidationError
from domain.values import ENCRYPT_DECRYPT, SYMMETRIC_DEFAULT

SIGN_VERIFY = "SIGN_VERIFY"
GENERATE_VERIFY_MAC = "GENERATE_VERIFY_MAC"
KEY_AGREEMENT = "KEY_AGREEMENT"
ENCAPSULATE_DECAPSULATE = "ENCAPSULATE_DECAPSULATE"

RSA_SIGNING = (
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
)
RSA_ENCRYPTION = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")


class KeyLike(Protocol):
    """What UpdateAlias compares of two keys (a Cmk has these)."""

    @property
    def arn(self) -> str: ...

    key_spec: str
    key_usage: str


@dataclass(frozen=True)
class KeySpecInfo:
    """One KeySpec: its family of primitives, the usages it allows, and per usage the
    algorithms DescribeKey lists."""

    name: str
    family: str  # symmetric | rsa | ecc | ed25519 | hmac | ml_dsa | ml_kem
    usages: tuple[str, ...]
    signing: tuple[str, ...] = ()
    encryption: tuple[str, ...] = ()
    mac: tuple[str, ...] = ()
    agreement: tuple[str, ...] = ()
    encapsulation: tuple[str, ...] = ()
    # Why keyledger refuses a spec AWS has; None when it is served.
    unsupported: str | None = None

    @property
    def asymmetric(self) -> bool:
        return self.family not in ("symmetric", "hmac")


def _ecc(name: str, algorithm: str, usages: tuple[str, ...]) -> KeySpecInfo:
    agreement = ("ECDH",) if KEY_AGREEMENT in usages else ()
    return KeySpecInfo(name, "ecc", usages, signing=(algorithm,), agreement=agreement)


def _hmac(bits: int) -> KeySpecInfo:
    return KeySpecInfo(f"HMAC_{bits}", "hmac", (GENERATE_VERIFY_MAC,), mac=(f"HMAC_SHA_{bits}",))


def _rsa(bits: int) -> KeySpecInfo:
    return KeySpecInfo(
        f"RSA_{bits}",
        "rsa",
        (ENCRYPT_DECRYPT, SIGN_VERIFY),
        signing=RSA_SIGNING,
        encryption=RSA_ENCRYPTION,
    )


def _ml_dsa(level: int) -> KeySpecInfo:
    return KeySpecInfo(f"ML_DSA_{level}", "ml_dsa", (SIGN_VERIFY,), signing=("ML_DSA_SHAKE_256",))


def _ml_kem(level: int, unsupported: str | None = None) -> KeySpecInfo:
    return KeySpecInfo(
        f"ML_KEM_{level}",
        "ml_kem",
        (ENCAPSULATE_DECAPSULATE,),
        encapsulation=("ML_KEM",),
        unsupported=unsupported,
    )


_SPECS = (
    KeySpecInfo(
        SYMMETRIC_DEFAULT, "symmetric", (ENCRYPT_DECRYPT,), encryption=(SYMMETRIC_DEFAULT,)
    ),
    _rsa(2048),
    _rsa(3072),
    _rsa(4096),
    _ecc("ECC_NIST_P256", "ECDSA_SHA_256", (SIGN_VERIFY, KEY_AGREEMENT)),
    _ecc("ECC_NIST_P384", "ECDSA_SHA_384", (SIGN_VERIFY, KEY_AGREEMENT)),
    _ecc("ECC_NIST_P521", "ECDSA_SHA_512", (SIGN_VERIFY, KEY_AGREEMENT)),
    _ecc("ECC_SECG_P256K1", "ECDSA_SHA_256", (SIGN_VERIFY,)),
    KeySpecInfo(
        "ECC_NIST_EDWARDS25519",
        "ed25519",
        (SIGN_VERIFY,),
        signing=("ED25519_SHA_512", "ED25519_PH_SHA_512"),
    ),
    _hmac(224),
    _hmac(256),
    _hmac(384),
    _hmac(512),
    _ml_dsa(44),
    _ml_dsa(65),
    _ml_dsa(87),
    # cryptography implements ML-KEM-768 and -1024 only (FIPS 203 parameter sets it ships).
    _ml_kem(
        512,
        "KeySpec ML_KEM_512 is not supported by keyledger: its crypto library has no ML-KEM-512.",
    ),
    _ml_kem(768),
    _ml_kem(1024),
    # SM2 keys exist only in AWS's China Regions (key spec reference, "SM2 key spec").
    KeySpecInfo(
        "SM2",
        "sm2",
        (ENCRYPT_DECRYPT, SIGN_VERIFY, KEY_AGREEMENT),
        unsupported="KeySpec SM2 is supported only in China Regions.",
    ),
)
KEY_SPECS: dict[str, KeySpecInfo] = {spec.name: spec for spec in _SPECS}

# Operations and the key usage they need (each operation's API reference).
USAGE_OF = {
    "Encrypt": ENCRYPT_DECRYPT,
    "Decrypt": ENCRYPT_DECRYPT,
    "ReEncrypt": ENCRYPT_DECRYPT,
    "ReEncryptFrom": ENCRYPT_DECRYPT,
    "ReEncryptTo": ENCRYPT_DECRYPT,
    "GenerateDataKey": ENCRYPT_DECRYPT,
    "GenerateDataKeyWithoutPlaintext": ENCRYPT_DECRYPT,
    "GenerateDataKeyPair": ENCRYPT_DECRYPT,
    "GenerateDataKeyPairWithoutPlaintext": ENCRYPT_DECRYPT,
    "Sign": SIGN_VERIFY,
    "Verify": SIGN_VERIFY,
    "GenerateMac": GENERATE_VERIFY_MAC,
    "VerifyMac": GENERATE_VERIFY_MAC,
    "DeriveSharedSecret": KEY_AGREEMENT,
    "Encapsulate": ENCAPSULATE_DECAPSULATE,
    "Decapsulate": ENCAPSULATE_DECAPSULATE,
}
# Data keys are sealed with symmetric encryption keys only (GenerateDataKey* reference).
SYMMETRIC_ONLY = frozenset(
    {
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
    }
)
ASYMMETRIC_ONLY = frozenset({"GetPublicKey"})
KEY_OPERATIONS = frozenset(USAGE_OF) | ASYMMETRIC_ONLY


def spec_info(key_spec: str) -> KeySpecInfo:
    return KEY_SPECS[key_spec]


def check_create(key_spec: str, key_usage: str | None) -> str:
    """CreateKey's KeySpec/KeyUsage rules with AWS's texts; returns the usage to use."""
    info = KEY_SPECS.get(key_spec)
    if info is None:  # the wire model knows a spec this catalogue does not
        raise UnsupportedOperationError(f"KeySpec {key_spec} is not supported by keyledger.")
    if key_usage is None:
        if key_spec != SYMMETRIC_DEFAULT:
            raise ValidationError(
                "You must specify a KeyUsage value for all KMS keys except for symmetric "
                "encryption keys."
            )
        key_usage = ENCRYPT_DECRYPT
    if info.unsupported is not None:
        raise UnsupportedOperationError(info.unsupported)
    if key_usage not in info.usages:
        raise ValidationError(f"KeyUsage {key_usage} is not compatible with KeySpec {key_spec}")
    return key_usage


def algorithms(key_spec: str, key_usage: str) -> dict[str, list[str]]:
    """DescribeKey's algorithm lists: only the one that fits the key's usage."""
    info = KEY_SPECS[key_spec]
    member, values = {
        ENCRYPT_DECRYPT: ("EncryptionAlgorithms", info.encryption),
        SIGN_VERIFY: ("SigningAlgorithms", info.signing),
        GENERATE_VERIFY_MAC: ("MacAlgorithms", info.mac),
        KEY_AGREEMENT: ("KeyAgreementAlgorithms", info.agreement),
        ENCAPSULATE_DECAPSULATE: ("EncapsulationAlgorithms", info.encapsulation),
    }[key_usage]
    return {member: list(values)}


def check_operation_fits(key_arn: str, key_spec: str, key_usage: str, operation: str) -> None:
    """A key serves only the operations of its usage (InvalidKeyUsageException, AWS text
    "<key ARN> key usage is SIGN_VERIFY which is not valid for Encrypt.")."""
    needed = USAGE_OF.get(operation)
    if needed is not None and key_usage != needed:
        raise InvalidKeyUsageError(
            f"{key_arn} key usage is {key_usage} which is not valid for {operation}."
        )
    if operation in SYMMETRIC_ONLY and key_spec != SYMMETRIC_DEFAULT:
        raise InvalidKeyUsageError(
            f"{key_arn} key spec is {key_spec} which is not valid for {operation}."
        )
    if operation in ASYMMETRIC_ONLY and not KEY_SPECS[key_spec].asymmetric:
        raise UnsupportedOperationError(
            f"{key_arn} key spec is {key_spec} which is not valid for {operation}."
        )


def check_algorithm(key_spec: str, algorithm: str, offered: tuple[str, ...]) -> None:
    """An algorithm the key spec does not have (AWS text)."""
    if algorithm not in offered:
        raise InvalidKeyUsageError(
            f"Algorithm {algorithm} is incompatible with key spec {key_spec}."
        )


def kind_of(key_spec: str) -> str:
    """Symmetric, asymmetric or HMAC: the "type" UpdateAlias compares."""
    family = KEY_SPECS[key_spec].family
    return family if family in ("symmetric", "hmac") else "asymmetric"


def check_same_kind(alias_arn: str, current: KeyLike, new: KeyLike) -> None:
    """UpdateAlias: "The current and new KMS key must be the same type (both symmetric or
    both asymmetric or both HMAC), and they must have the same key usage" (UpdateAlias
    API reference), so code using the alias keeps working."""
    if (kind_of(current.key_spec), current.key_usage) != (kind_of(new.key_spec), new.key_usage):
        raise ValidationError(
            f"{alias_arn} cannot point at {new.arn}: it is a {kind_of(new.key_spec)} key with "
            f"key usage {new.key_usage}, and the alias points at a {kind_of(current.key_spec)} "
            f"key with key usage {current.key_usage}."
        )
