"""Every key spec through boto3, checked against cryptography outside keyledger: signatures
verified offline, ciphertexts decrypted offline and the other way round, shared secrets
matched, data key pairs opened; and the error matrix with AWS's texts."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa

from api.config import Settings
from tests.support import ThreadServer, refused, unvalidated

HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
SIGNING = {
    "RSA_2048": (
        "RSASSA_PKCS1_V1_5_SHA_256",
        "RSASSA_PKCS1_V1_5_SHA_384",
        "RSASSA_PKCS1_V1_5_SHA_512",
        "RSASSA_PSS_SHA_256",
        "RSASSA_PSS_SHA_384",
        "RSASSA_PSS_SHA_512",
    ),
    "ECC_NIST_P256": ("ECDSA_SHA_256",),
    "ECC_NIST_P384": ("ECDSA_SHA_384",),
    "ECC_NIST_P521": ("ECDSA_SHA_512",),
    "ECC_SECG_P256K1": ("ECDSA_SHA_256",),
    "ECC_NIST_EDWARDS25519": ("ED25519_SHA_512", "ED25519_PH_SHA_512"),
    "ML_DSA_44": ("ML_DSA_SHAKE_256",),
    "ML_DSA_65": ("ML_DSA_SHAKE_256",),
    "ML_DSA_87": ("ML_DSA_SHAKE_256",),
}
RSA_SPECS = ("RSA_2048", "RSA_3072", "RSA_4096")
OAEP = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")
ECDH_SPECS = ("ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521")
HMAC_SPECS = ("HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512")
MESSAGE = b"keyledger signs this message"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    """One server for the module: keys of every spec are made once (RSA_4096 is slow)."""
    data_dir: Path = tmp_path_factory.mktemp("key-types") / "data"
    running = ThreadServer(Settings(data_dir=data_dir, port=0)).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def kms_m(shared: ThreadServer) -> Any:
    return shared.client()


@pytest.fixture(scope="module")
def keys(kms_m: Any) -> dict[tuple[str, str], dict[str, Any]]:
    made: dict[tuple[str, str], dict[str, Any]] = {}
    for spec, usage in [
        *((spec, "SIGN_VERIFY") for spec in SIGNING),
        *((spec, "SIGN_VERIFY") for spec in ("RSA_3072", "RSA_4096")),
        *((spec, "ENCRYPT_DECRYPT") for spec in RSA_SPECS),
        *((spec, "KEY_AGREEMENT") for spec in ECDH_SPECS),
        *((spec, "GENERATE_VERIFY_MAC") for spec in HMAC_SPECS),
        ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
    ]:
        made[spec, usage] = kms_m.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
    return made


def public_key(kms: Any, key_id: str) -> Any:
    return serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])


def digest_of(algorithm: str, message: bytes) -> bytes:
    return hashlib.new("sha" + algorithm.rsplit("_", 1)[1], message).digest()


def verify_offline(public: Any, algorithm: str, message: bytes, signature: bytes) -> None:
    """cryptography's own verification; raises InvalidSignature on a mismatch."""
    if algorithm.startswith("RSASSA_PSS_"):
        chosen = HASHES[algorithm[-3:]]()
        pss = padding.PSS(mgf=padding.MGF1(chosen), salt_length=chosen.digest_size)
        public.verify(signature, message, pss, chosen)
    elif algorithm.startswith("RSASSA_PKCS1"):
        public.verify(signature, message, padding.PKCS1v15(), HASHES[algorithm[-3:]]())
    elif algorithm.startswith("ECDSA_"):
        public.verify(signature, message, ec.ECDSA(HASHES[algorithm[-3:]]()))
    else:  # Ed25519 and ML-DSA take the message itself
        public.verify(signature, message)


# ---------------------------------------------------------------- CreateKey / DescribeKey


@pytest.mark.parametrize(
    "case",
    [
        ("RSA_2048", "ENCRYPT_DECRYPT", "EncryptionAlgorithms", list(OAEP)),
        ("RSA_4096", "SIGN_VERIFY", "SigningAlgorithms", list(SIGNING["RSA_2048"])),
        ("ECC_NIST_P256", "SIGN_VERIFY", "SigningAlgorithms", ["ECDSA_SHA_256"]),
        ("ECC_NIST_P521", "KEY_AGREEMENT", "KeyAgreementAlgorithms", ["ECDH"]),
        ("ECC_SECG_P256K1", "SIGN_VERIFY", "SigningAlgorithms", ["ECDSA_SHA_256"]),
        (
            "ECC_NIST_EDWARDS25519",
            "SIGN_VERIFY",
            "SigningAlgorithms",
            ["ED25519_SHA_512", "ED25519_PH_SHA_512"],
        ),
        ("HMAC_384", "GENERATE_VERIFY_MAC", "MacAlgorithms", ["HMAC_SHA_384"]),
        ("ML_DSA_65", "SIGN_VERIFY", "SigningAlgorithms", ["ML_DSA_SHAKE_256"]),
    ],
)
def test_describe_key_lists_only_the_algorithms_of_the_keys_usage(
    kms_m: Any, keys: dict[tuple[str, str], Any], case: tuple[str, str, str, list[str]]
) -> None:
    spec, usage, member, listed = case
    metadata = kms_m.describe_key(KeyId=keys[spec, usage]["KeyId"])["KeyMetadata"]
    assert (metadata["KeySpec"], metadata["CustomerMasterKeySpec"]) == (spec, spec)
    assert metadata["KeyUsage"] == usage
    assert metadata[member] == listed
    others = {"EncryptionAlgorithms", "SigningAlgorithms", "MacAlgorithms"}
    others |= {"KeyAgreementAlgorithms"}
    assert not (others - {member}) & set(metadata)


def test_every_key_spec_and_usage_pair_aws_allows_is_created(keys: dict[Any, Any]) -> None:
    assert {spec for spec, _ in keys} >= {*SIGNING, *RSA_SPECS, *HMAC_SPECS}
    assert all(metadata["KeyState"] == "Enabled" for metadata in keys.values())


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"KeySpec": "RSA_2048"},
            (
                "ValidationException",
                "You must specify a KeyUsage value for all KMS keys except for symmetric "
                "encryption keys.",
            ),
        ),
        (
            {"KeySpec": "RSA_2048", "KeyUsage": "KEY_AGREEMENT"},
            (
                "ValidationException",
                "KeyUsage KEY_AGREEMENT is not compatible with KeySpec RSA_2048",
            ),
        ),
        (
            {"KeySpec": "ECC_SECG_P256K1", "KeyUsage": "KEY_AGREEMENT"},
            (
                "ValidationException",
                "KeyUsage KEY_AGREEMENT is not compatible with KeySpec ECC_SECG_P256K1",
            ),
        ),
        (
            {"KeySpec": "HMAC_256", "KeyUsage": "SIGN_VERIFY"},
            ("ValidationException", "KeyUsage SIGN_VERIFY is not compatible with KeySpec HMAC_256"),
        ),
        (
            {"KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "SIGN_VERIFY"},
            (
                "ValidationException",
                "KeyUsage SIGN_VERIFY is not compatible with KeySpec SYMMETRIC_DEFAULT",
            ),
        ),
        (
            {"KeySpec": "ECC_NIST_EDWARDS25519", "KeyUsage": "ENCRYPT_DECRYPT"},
            (
                "ValidationException",
                "KeyUsage ENCRYPT_DECRYPT is not compatible with KeySpec ECC_NIST_EDWARDS25519",
            ),
        ),
        (
            {"KeySpec": "SM2", "KeyUsage": "SIGN_VERIFY"},
            ("UnsupportedOperationException", "KeySpec SM2 is supported only in China Regions."),
        ),
    ],
)
def test_create_key_refuses_pairs_aws_refuses(
    kms: Any, params: dict[str, str], expected: tuple[str, str]
) -> None:
    assert refused(kms.create_key, **params) == expected
    assert kms.list_keys()["Keys"] == []


def test_rotation_is_for_symmetric_keys_only(kms_m: Any, keys: dict[Any, Any]) -> None:
    for pair in (("RSA_2048", "SIGN_VERIFY"), ("HMAC_256", "GENERATE_VERIFY_MAC")):
        key_id = keys[pair]["KeyId"]
        for call in (kms_m.enable_key_rotation, kms_m.rotate_key_on_demand):
            assert refused(call, KeyId=key_id) == ("UnsupportedOperationException", "")


# ---------------------------------------------------------------- Sign / Verify


@pytest.mark.parametrize(
    ("spec", "algorithm"),
    [(spec, algorithm) for spec, algorithms in SIGNING.items() for algorithm in algorithms]
    + [("RSA_3072", "RSASSA_PSS_SHA_256"), ("RSA_4096", "RSASSA_PKCS1_V1_5_SHA_512")],
)
def test_signatures_verify_offline_and_in_keyledger(
    kms_m: Any, keys: dict[Any, Any], spec: str, algorithm: str
) -> None:
    key = keys[spec, "SIGN_VERIFY"]
    if algorithm == "ED25519_PH_SHA_512":  # refused: cryptography has no Ed25519ph (README)
        code, _ = sign_error(
            kms_m,
            key["KeyId"],
            Message=b"\0" * 64,
            MessageType="DIGEST",
            SigningAlgorithm=algorithm,
        )
        assert code == "UnsupportedOperationException"
        return
    signed = kms_m.sign(KeyId=key["KeyId"], Message=MESSAGE, SigningAlgorithm=algorithm)
    assert (signed["KeyId"], signed["SigningAlgorithm"]) == (key["Arn"], algorithm)
    verify_offline(public_key(kms_m, key["KeyId"]), algorithm, MESSAGE, signed["Signature"])
    checked = kms_m.verify(
        KeyId=key["KeyId"],
        Message=MESSAGE,
        Signature=signed["Signature"],
        SigningAlgorithm=algorithm,
    )
    assert (checked["SignatureValid"], checked["KeyId"]) == (True, key["Arn"])


@pytest.mark.parametrize(
    ("spec", "algorithm"),
    [
        ("RSA_2048", "RSASSA_PSS_SHA_384"),
        ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256"),
        ("ECC_NIST_P256", "ECDSA_SHA_256"),
        ("ECC_NIST_P521", "ECDSA_SHA_512"),
        ("ECC_SECG_P256K1", "ECDSA_SHA_256"),
    ],
)
def test_raw_and_digest_sign_the_same_thing(
    kms_m: Any, keys: dict[Any, Any], spec: str, algorithm: str
) -> None:
    key_id = keys[spec, "SIGN_VERIFY"]["KeyId"]
    digest = digest_of(algorithm, MESSAGE)
    by_digest = kms_m.sign(
        KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm=algorithm
    )["Signature"]
    by_raw = kms_m.sign(KeyId=key_id, Message=MESSAGE, SigningAlgorithm=algorithm)["Signature"]
    # Each verifies as the other kind, in keyledger and offline.
    for signature in (by_digest, by_raw):
        kms_m.verify(KeyId=key_id, Message=MESSAGE, Signature=signature, SigningAlgorithm=algorithm)
        kms_m.verify(
            KeyId=key_id,
            Message=digest,
            MessageType="DIGEST",
            Signature=signature,
            SigningAlgorithm=algorithm,
        )
        verify_offline(public_key(kms_m, key_id), algorithm, MESSAGE, signature)


def test_signatures_made_offline_verify_in_keyledger_only_with_the_right_key(
    kms_m: Any, keys: dict[Any, Any]
) -> None:
    """A signature from another key, and a signature over another message, are refused
    with KMSInvalidSignatureException and no message (AWS never answers false)."""
    key_id = keys["ECC_NIST_P256", "SIGN_VERIFY"]["KeyId"]
    stranger = ec.generate_private_key(ec.SECP256R1())
    foreign = stranger.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
    own = kms_m.sign(KeyId=key_id, Message=MESSAGE, SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    for message, signature in ((MESSAGE, foreign), (b"another message", own)):
        assert refused(
            kms_m.verify,
            KeyId=key_id,
            Message=message,
            Signature=signature,
            SigningAlgorithm="ECDSA_SHA_256",
        ) == ("KMSInvalidSignatureException", "")


def test_ml_dsa_signs_an_external_mu(kms_m: Any, keys: dict[Any, Any]) -> None:
    key_id = keys["ML_DSA_44", "SIGN_VERIFY"]["KeyId"]
    public = public_key(kms_m, key_id)
    assert isinstance(public, mldsa.MLDSA44PublicKey)
    hasher = mldsa.MLDSAMuHasher(public)
    hasher.update(MESSAGE)
    mu = hasher.finalize()
    signature = kms_m.sign(
        KeyId=key_id, Message=mu, MessageType="EXTERNAL_MU", SigningAlgorithm="ML_DSA_SHAKE_256"
    )["Signature"]
    public.verify(signature, MESSAGE)  # an external-mu signature is a signature of M
    kms_m.verify(
        KeyId=key_id, Message=MESSAGE, Signature=signature, SigningAlgorithm="ML_DSA_SHAKE_256"
    )


def test_ed25519_signature_is_64_bytes_and_public_key_44(kms_m: Any, keys: dict[Any, Any]) -> None:
    key_id = keys["ECC_NIST_EDWARDS25519", "SIGN_VERIFY"]["KeyId"]
    der = kms_m.get_public_key(KeyId=key_id)["PublicKey"]
    assert len(der) == 44
    assert isinstance(serialization.load_der_public_key(der), ed25519.Ed25519PublicKey)
    signature = kms_m.sign(KeyId=key_id, Message=MESSAGE, SigningAlgorithm="ED25519_SHA_512")
    assert len(signature["Signature"]) == 64


def sign_error(kms: Any, key_id: str, **params: Any) -> tuple[str, str]:
    return refused(kms.sign, KeyId=key_id, **{"Message": MESSAGE, **params})


def test_sign_error_matrix(shared: ThreadServer, kms_m: Any, keys: dict[Any, Any]) -> None:
    rsa_key = keys["RSA_2048", "SIGN_VERIFY"]
    ecc_key = keys["ECC_NIST_P256", "SIGN_VERIFY"]
    ed_key = keys["ECC_NIST_EDWARDS25519", "SIGN_VERIFY"]
    ml_key = keys["ML_DSA_44", "SIGN_VERIFY"]
    assert sign_error(kms_m, ecc_key["KeyId"], SigningAlgorithm="RSASSA_PSS_SHA_256") == (
        "InvalidKeyUsageException",
        "Algorithm RSASSA_PSS_SHA_256 is incompatible with key spec ECC_NIST_P256.",
    )
    assert sign_error(
        kms_m, rsa_key["KeyId"], SigningAlgorithm="RSASSA_PSS_SHA_256", MessageType="DIGEST"
    ) == ("ValidationException", "Digest is invalid length for algorithm RSASSA_PSS_SHA_256.")
    assert sign_error(
        kms_m,
        ecc_key["KeyId"],
        Message=b"\0" * 48,
        SigningAlgorithm="ECDSA_SHA_256",
        MessageType="DIGEST",
    ) == ("ValidationException", "Digest is invalid length for algorithm ECDSA_SHA_256.")
    assert sign_error(
        kms_m, ml_key["KeyId"], SigningAlgorithm="ML_DSA_SHAKE_256", MessageType="DIGEST"
    ) == ("ValidationException", "Message type DIGEST is incompatible with key spec ML_DSA_44.")
    assert sign_error(
        kms_m, ed_key["KeyId"], SigningAlgorithm="ED25519_SHA_512", MessageType="DIGEST"
    ) == (
        "ValidationException",
        "Message type DIGEST is incompatible with key spec ECC_NIST_EDWARDS25519.",
    )
    code, _ = sign_error(
        kms_m,
        ed_key["KeyId"],
        Message=b"\0" * 64,
        SigningAlgorithm="ED25519_PH_SHA_512",
        MessageType="DIGEST",
    )
    assert code == "UnsupportedOperationException"
    assert sign_error(
        kms_m,
        rsa_key["KeyId"],
        Message=b"\0" * 64,
        SigningAlgorithm="RSASSA_PSS_SHA_256",
        MessageType="EXTERNAL_MU",
    ) == ("ValidationException", "Message type EXTERNAL_MU is incompatible with key spec RSA_2048.")
    oversized = unvalidated(shared)
    assert sign_error(
        oversized, rsa_key["KeyId"], Message=b"m" * 4097, SigningAlgorithm="RSASSA_PSS_SHA_256"
    ) == (
        "ValidationException",
        "1 validation error detected: Value at 'message' failed to satisfy constraint: "
        "Member must have length less than or equal to 4096",
    )


def test_each_key_usage_refuses_the_operations_of_the_others(
    kms_m: Any, keys: dict[Any, Any]
) -> None:
    signing = keys["RSA_2048", "SIGN_VERIFY"]
    encrypting = keys["RSA_2048", "ENCRYPT_DECRYPT"]
    symmetric = keys["SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"]
    hmac_key = keys["HMAC_256", "GENERATE_VERIFY_MAC"]

    def usage(arn: str, usage: str, operation: str) -> tuple[str, str]:
        return (
            "InvalidKeyUsageException",
            f"{arn} key usage is {usage} which is not valid for {operation}.",
        )

    assert refused(kms_m.encrypt, KeyId=signing["KeyId"], Plaintext=b"p") == usage(
        signing["Arn"], "SIGN_VERIFY", "Encrypt"
    )
    assert sign_error(kms_m, encrypting["KeyId"], SigningAlgorithm="RSASSA_PSS_SHA_256") == usage(
        encrypting["Arn"], "ENCRYPT_DECRYPT", "Sign"
    )
    assert sign_error(kms_m, symmetric["KeyId"], SigningAlgorithm="RSASSA_PSS_SHA_256") == usage(
        symmetric["Arn"], "ENCRYPT_DECRYPT", "Sign"
    )
    assert refused(
        kms_m.generate_mac, KeyId=signing["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_256"
    ) == usage(signing["Arn"], "SIGN_VERIFY", "GenerateMac")
    assert refused(kms_m.generate_data_key, KeyId=hmac_key["KeyId"], KeySpec="AES_256") == usage(
        hmac_key["Arn"], "GENERATE_VERIFY_MAC", "GenerateDataKey"
    )
    code, _ = refused(kms_m.generate_data_key, KeyId=encrypting["KeyId"], KeySpec="AES_256")
    assert code == "InvalidKeyUsageException"
    for key in (symmetric, hmac_key):
        code, _ = refused(kms_m.get_public_key, KeyId=key["KeyId"])
        assert code == "UnsupportedOperationException"


def test_a_disabled_signing_key_neither_signs_nor_verifies_nor_shows_its_public_key(
    kms: Any,
) -> None:
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    signature = kms.sign(KeyId=key["KeyId"], Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    kms.disable_key(KeyId=key["KeyId"])
    disabled = ("DisabledException", f"{key['Arn']} is disabled.")
    assert sign_error(kms, key["KeyId"], SigningAlgorithm="ECDSA_SHA_256") == disabled
    assert (
        refused(
            kms.verify,
            KeyId=key["KeyId"],
            Message=b"m",
            Signature=signature["Signature"],
            SigningAlgorithm="ECDSA_SHA_256",
        )
        == disabled
    )
    assert refused(kms.get_public_key, KeyId=key["KeyId"]) == disabled
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    assert refused(kms.get_public_key, KeyId=key["KeyId"]) == (
        "KMSInvalidStateException",
        f"{key['Arn']} is pending deletion.",
    )


def test_sign_dry_run_checks_then_refuses(kms_m: Any, keys: dict[Any, Any]) -> None:
    key_id = keys["ECC_NIST_P384", "SIGN_VERIFY"]["KeyId"]
    assert sign_error(kms_m, key_id, SigningAlgorithm="ECDSA_SHA_384", DryRun=True) == (
        "DryRunOperationException",
        "The request would have succeeded, but the DryRun option is set.",
    )
    code, _ = sign_error(kms_m, key_id, SigningAlgorithm="ECDSA_SHA_256", DryRun=True)
    assert code == "InvalidKeyUsageException"


# ---------------------------------------------------------------- RSA encryption


@pytest.mark.parametrize("spec", RSA_SPECS)
@pytest.mark.parametrize("algorithm", OAEP)
def test_rsa_encryption_interoperates_with_the_public_key(
    shared: ThreadServer, kms_m: Any, keys: dict[Any, Any], spec: str, algorithm: str
) -> None:
    key = keys[spec, "ENCRYPT_DECRYPT"]
    public = public_key(kms_m, key["KeyId"])
    assert isinstance(public, rsa.RSAPublicKey)
    sha1 = algorithm.endswith("SHA_1")  # RSAES_OAEP_SHA_1 is one of AWS's algorithms
    chosen = hashes.SHA1() if sha1 else hashes.SHA256()  # noqa: S303
    oaep = padding.OAEP(mgf=padding.MGF1(chosen), algorithm=chosen, label=None)
    limit = public.key_size // 8 - 2 * chosen.digest_size - 2
    plaintext = b"p" * limit
    offline = public.encrypt(plaintext, oaep)
    opened = kms_m.decrypt(
        CiphertextBlob=offline, KeyId=key["KeyId"], EncryptionAlgorithm=algorithm
    )
    assert (opened["Plaintext"], opened["KeyId"]) == (plaintext, key["Arn"])
    assert opened["EncryptionAlgorithm"] == algorithm
    assert "KeyMaterialId" not in opened  # symmetric keys only (Decrypt API reference)
    sealed = kms_m.encrypt(KeyId=key["KeyId"], Plaintext=plaintext, EncryptionAlgorithm=algorithm)
    assert sealed["EncryptionAlgorithm"] == algorithm
    decrypted = kms_m.decrypt(
        CiphertextBlob=sealed["CiphertextBlob"], KeyId=key["Arn"], EncryptionAlgorithm=algorithm
    )
    assert decrypted["Plaintext"] == plaintext
    assert refused(
        unvalidated(shared).encrypt,
        KeyId=key["KeyId"],
        Plaintext=plaintext + b"!",
        EncryptionAlgorithm=algorithm,
    ) == (
        "ValidationException",
        f"Algorithm {algorithm} and key spec {spec} cannot encrypt data larger than {limit} bytes.",
    )


def test_rsa_encryption_errors(kms_m: Any, keys: dict[Any, Any]) -> None:
    key = keys["RSA_2048", "ENCRYPT_DECRYPT"]
    assert refused(kms_m.encrypt, KeyId=key["KeyId"], Plaintext=b"p") == (
        "InvalidKeyUsageException",
        "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048.",
    )
    sealed = kms_m.encrypt(KeyId=key["KeyId"], Plaintext=b"p", EncryptionAlgorithm=OAEP[1])
    blob = sealed["CiphertextBlob"]
    # The other OAEP hash, a tampered blob, or no KeyId: nothing to say but "invalid".
    for params in (
        {"KeyId": key["KeyId"], "EncryptionAlgorithm": OAEP[0]},
        {"KeyId": key["KeyId"], "EncryptionAlgorithm": OAEP[1], "CiphertextBlob": blob[::-1]},
        {"EncryptionAlgorithm": OAEP[1]},
    ):
        assert refused(kms_m.decrypt, **{"CiphertextBlob": blob, **params}) == (
            "InvalidCiphertextException",
            "",
        )
    code, _ = refused(
        kms_m.encrypt,
        KeyId=key["KeyId"],
        Plaintext=b"p",
        EncryptionAlgorithm=OAEP[1],
        EncryptionContext={"a": "b"},
    )
    assert code == "ValidationException"


def test_re_encrypt_between_symmetric_and_rsa_keys_both_ways(
    kms_m: Any, keys: dict[Any, Any]
) -> None:
    symmetric = keys["SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"]
    rsa_key = keys["RSA_3072", "ENCRYPT_DECRYPT"]
    blob = kms_m.encrypt(
        KeyId=symmetric["KeyId"], Plaintext=b"move me", EncryptionContext={"a": "1"}
    )["CiphertextBlob"]
    to_rsa = kms_m.re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext={"a": "1"},
        DestinationKeyId=rsa_key["KeyId"],
        DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256",
    )
    assert (to_rsa["SourceKeyId"], to_rsa["KeyId"]) == (symmetric["Arn"], rsa_key["Arn"])
    assert to_rsa["DestinationEncryptionAlgorithm"] == "RSAES_OAEP_SHA_256"
    back = kms_m.re_encrypt(
        CiphertextBlob=to_rsa["CiphertextBlob"],
        SourceKeyId=rsa_key["KeyId"],
        SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256",
        DestinationKeyId=symmetric["KeyId"],
        DestinationEncryptionContext={"b": "2"},
    )
    assert back["SourceEncryptionAlgorithm"] == "RSAES_OAEP_SHA_256"
    opened = kms_m.decrypt(CiphertextBlob=back["CiphertextBlob"], EncryptionContext={"b": "2"})
    assert opened["Plaintext"] == b"move me"


# ---------------------------------------------------------------- HMAC


@pytest.mark.parametrize("spec", HMAC_SPECS)
def test_mac_generate_and_verify(kms_m: Any, keys: dict[Any, Any], spec: str) -> None:
    key = keys[spec, "GENERATE_VERIFY_MAC"]
    algorithm = "HMAC_SHA_" + spec.removeprefix("HMAC_")
    made = kms_m.generate_mac(KeyId=key["KeyId"], Message=MESSAGE, MacAlgorithm=algorithm)
    assert (made["KeyId"], made["MacAlgorithm"]) == (key["Arn"], algorithm)
    assert len(made["Mac"]) == int(spec.removeprefix("HMAC_")) // 8
    again = kms_m.generate_mac(KeyId=key["KeyId"], Message=MESSAGE, MacAlgorithm=algorithm)
    assert again["Mac"] == made["Mac"]  # deterministic, as HMAC is
    checked = kms_m.verify_mac(
        KeyId=key["KeyId"], Message=MESSAGE, Mac=made["Mac"], MacAlgorithm=algorithm
    )
    assert (checked["MacValid"], checked["KeyId"]) == (True, key["Arn"])
    forged = hmac.new(b"not the key", MESSAGE, "sha" + spec.removeprefix("HMAC_")).digest()
    for message, tag in ((MESSAGE, forged), (b"other", made["Mac"])):
        assert refused(
            kms_m.verify_mac, KeyId=key["KeyId"], Message=message, Mac=tag, MacAlgorithm=algorithm
        ) == ("KMSInvalidMacException", "")


def test_mac_algorithm_must_fit_the_key_spec(kms_m: Any, keys: dict[Any, Any]) -> None:
    key_id = keys["HMAC_256", "GENERATE_VERIFY_MAC"]["KeyId"]
    assert refused(kms_m.generate_mac, KeyId=key_id, Message=b"m", MacAlgorithm="HMAC_SHA_512") == (
        "InvalidKeyUsageException",
        "Algorithm HMAC_SHA_512 is incompatible with key spec HMAC_256.",
    )


# ---------------------------------------------------------------- ECDH


@pytest.mark.parametrize(
    ("spec", "curve"),
    [
        ("ECC_NIST_P256", ec.SECP256R1),
        ("ECC_NIST_P384", ec.SECP384R1),
        ("ECC_NIST_P521", ec.SECP521R1),
    ],
)
def test_derived_shared_secret_matches_one_computed_offline(
    kms_m: Any, keys: dict[Any, Any], spec: str, curve: type[ec.EllipticCurve]
) -> None:
    key = keys[spec, "KEY_AGREEMENT"]
    ours = ec.generate_private_key(curve())
    spki = ours.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    answer = kms_m.derive_shared_secret(
        KeyId=key["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=spki
    )
    theirs = public_key(kms_m, key["KeyId"])
    assert answer["SharedSecret"] == ours.exchange(ec.ECDH(), theirs)
    assert (answer["KeyId"], answer["KeyAgreementAlgorithm"]) == (key["Arn"], "ECDH")


def test_derive_shared_secret_errors(kms_m: Any, keys: dict[Any, Any]) -> None:
    key_id = keys["ECC_NIST_P256", "KEY_AGREEMENT"]["KeyId"]
    other_curve = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for bad in (b"not a public key", other_curve):
        assert refused(
            kms_m.derive_shared_secret, KeyId=key_id, KeyAgreementAlgorithm="ECDH", PublicKey=bad
        ) == ("ValidationException", "")
    signing = keys["ECC_NIST_P256", "SIGN_VERIFY"]
    code, message = refused(
        kms_m.derive_shared_secret,
        KeyId=signing["KeyId"],
        KeyAgreementAlgorithm="ECDH",
        PublicKey=other_curve,
    )
    assert (code, message) == (
        "InvalidKeyUsageException",
        f"{signing['Arn']} key usage is SIGN_VERIFY which is not valid for DeriveSharedSecret.",
    )


# ---------------------------------------------------------------- data key pairs


@pytest.mark.parametrize(
    "pair_spec",
    [
        "RSA_2048",
        "RSA_3072",
        "RSA_4096",
        "ECC_NIST_P256",
        "ECC_NIST_P384",
        "ECC_NIST_P521",
        "ECC_SECG_P256K1",
        "ECC_NIST_EDWARDS25519",
    ],
)
def test_data_key_pairs_open_and_match(kms_m: Any, keys: dict[Any, Any], pair_spec: str) -> None:
    key = keys["SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"]
    context = {"purpose": "pair"}
    pair = kms_m.generate_data_key_pair(
        KeyId=key["KeyId"], KeyPairSpec=pair_spec, EncryptionContext=context
    )
    assert (pair["KeyId"], pair["KeyPairSpec"]) == (key["Arn"], pair_spec)
    private = serialization.load_der_private_key(pair["PrivateKeyPlaintext"], password=None)
    spki = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert spki == pair["PublicKey"]
    opened = kms_m.decrypt(
        CiphertextBlob=pair["PrivateKeyCiphertextBlob"], EncryptionContext=context
    )
    assert opened["Plaintext"] == pair["PrivateKeyPlaintext"]
    code, _ = refused(kms_m.decrypt, CiphertextBlob=pair["PrivateKeyCiphertextBlob"])
    assert code == "InvalidCiphertextException"


def test_data_key_pair_without_plaintext_dry_run_and_refusals(
    kms_m: Any, keys: dict[Any, Any]
) -> None:
    key = keys["SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"]
    pair = kms_m.generate_data_key_pair_without_plaintext(
        KeyId=key["KeyId"], KeyPairSpec="ECC_NIST_P256"
    )
    assert "PrivateKeyPlaintext" not in pair
    private_der = kms_m.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"])["Plaintext"]
    private = serialization.load_der_private_key(private_der, password=None)
    assert (
        private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == pair["PublicKey"]
    )
    assert refused(
        kms_m.generate_data_key_pair, KeyId=key["KeyId"], KeyPairSpec="RSA_2048", DryRun=True
    ) == (
        "DryRunOperationException",
        "The request would have succeeded, but the DryRun option is set.",
    )
    code, _ = refused(kms_m.generate_data_key_pair, KeyId=key["KeyId"], KeyPairSpec="SM2")
    assert code == "UnsupportedOperationException"
    rsa_key = keys["RSA_2048", "ENCRYPT_DECRYPT"]
    code, _ = refused(
        kms_m.generate_data_key_pair, KeyId=rsa_key["KeyId"], KeyPairSpec="ECC_NIST_P256"
    )
    assert code == "InvalidKeyUsageException"


# ---------------------------------------------------------------- key states


def test_every_new_operation_needs_an_enabled_key(kms: Any) -> None:
    """Key-state table: Sign, Verify, GenerateMac, VerifyMac, GetPublicKey,
    GenerateDataKeyPair* and (per the model) DeriveSharedSecret refuse a Disabled key."""

    def made(spec: str, usage: str) -> dict[str, Any]:
        return dict(kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"])

    mac_key = made("HMAC_224", "GENERATE_VERIFY_MAC")
    agreeing = made("ECC_NIST_P256", "KEY_AGREEMENT")
    encrypting = made("RSA_2048", "ENCRYPT_DECRYPT")
    symmetric = dict(kms.create_key()["KeyMetadata"])
    tag = kms.generate_mac(KeyId=mac_key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_224")
    blob = kms.encrypt(
        KeyId=encrypting["KeyId"], Plaintext=b"p", EncryptionAlgorithm="RSAES_OAEP_SHA_1"
    )["CiphertextBlob"]
    peer = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    calls = [
        (mac_key, lambda k: kms.generate_mac(KeyId=k, Message=b"m", MacAlgorithm="HMAC_SHA_224")),
        (
            mac_key,
            lambda k: kms.verify_mac(
                KeyId=k, Message=b"m", Mac=tag["Mac"], MacAlgorithm="HMAC_SHA_224"
            ),
        ),
        (
            agreeing,
            lambda k: kms.derive_shared_secret(
                KeyId=k, KeyAgreementAlgorithm="ECDH", PublicKey=peer
            ),
        ),
        (
            encrypting,
            lambda k: kms.decrypt(
                CiphertextBlob=blob, KeyId=k, EncryptionAlgorithm="RSAES_OAEP_SHA_1"
            ),
        ),
        (symmetric, lambda k: kms.generate_data_key_pair(KeyId=k, KeyPairSpec="ECC_NIST_P256")),
        (
            symmetric,
            lambda k: kms.generate_data_key_pair_without_plaintext(
                KeyId=k, KeyPairSpec="ECC_NIST_P256"
            ),
        ),
    ]
    for key, call in calls:
        call(key["KeyId"])  # works while Enabled
    for key in (mac_key, agreeing, encrypting, symmetric):
        kms.disable_key(KeyId=key["KeyId"])
    for key, call in calls:
        assert refused(call, k=key["KeyId"]) == ("DisabledException", f"{key['Arn']} is disabled.")


def test_update_alias_keeps_the_key_type_and_usage(kms: Any) -> None:
    """UpdateAlias: same type (symmetric, asymmetric, HMAC) and same key usage."""

    def made(**params: str) -> dict[str, Any]:
        return dict(kms.create_key(**params)["KeyMetadata"])

    p256 = made(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    kms.create_alias(AliasName="alias/signer", TargetKeyId=p256["KeyId"])
    rsa_signer = made(KeySpec="RSA_3072", KeyUsage="SIGN_VERIFY")
    kms.update_alias(AliasName="alias/signer", TargetKeyId=rsa_signer["KeyId"])  # both asymmetric
    for other in (
        made(),
        made(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT"),
        made(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC"),
    ):
        code, message = refused(
            kms.update_alias, AliasName="alias/signer", TargetKeyId=other["KeyId"]
        )
        assert code == "ValidationException" and other["Arn"] in message
    assert kms.describe_key(KeyId="alias/signer")["KeyMetadata"]["KeyId"] == rsa_signer["KeyId"]
