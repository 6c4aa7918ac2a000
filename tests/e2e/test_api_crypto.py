"""Cryptographic operations through boto3: Encrypt, Decrypt, ReEncrypt, GenerateDataKey*,
GenerateRandom, with KMS's limits, DryRun and key-state rules."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from tests.support import ThreadServer, refused, unvalidated

ACCOUNT = "000000000000"
REGION = "us-east-1"
DRY_RUN = (
    "DryRunOperationException",
    "The request would have succeeded, but the DryRun option is set.",
)
INVALID_CIPHERTEXT = ("InvalidCiphertextException", "")


@pytest.fixture
def key(kms: Any) -> dict[str, Any]:
    return dict(kms.create_key()["KeyMetadata"])


@pytest.fixture
def other_key(kms: Any) -> dict[str, Any]:
    return dict(kms.create_key()["KeyMetadata"])


# ---------------------------------------------------------------- Encrypt / Decrypt


def test_encrypt_and_decrypt_answer_with_the_key_arn_and_algorithm(
    kms: Any, key: dict[str, Any]
) -> None:
    sealed = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"secret")
    assert sealed["KeyId"] == key["Arn"]
    assert sealed["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert b"secret" not in sealed["CiphertextBlob"]
    opened = kms.decrypt(CiphertextBlob=sealed["CiphertextBlob"])
    assert opened["Plaintext"] == b"secret"
    assert opened["KeyId"] == key["Arn"]
    assert opened["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert opened["KeyMaterialId"] == key["CurrentKeyMaterialId"]


def test_encrypting_twice_gives_different_ciphertexts(kms: Any, key: dict[str, Any]) -> None:
    first = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"same")["CiphertextBlob"]
    second = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"same")["CiphertextBlob"]
    assert first != second


def test_encrypt_by_alias_and_alias_arn_answers_with_the_key_arn(
    kms: Any, key: dict[str, Any]
) -> None:
    kms.create_alias(AliasName="alias/crypto", TargetKeyId=key["KeyId"])
    for name in ("alias/crypto", f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/crypto", key["Arn"]):
        sealed = kms.encrypt(KeyId=name, Plaintext=b"p")
        assert sealed["KeyId"] == key["Arn"], name
        opened = kms.decrypt(CiphertextBlob=sealed["CiphertextBlob"], KeyId=name)
        assert (opened["Plaintext"], opened["KeyId"]) == (b"p", key["Arn"])


def test_decrypt_with_another_keys_key_id_is_an_incorrect_key(
    kms: Any, key: dict[str, Any], other_key: dict[str, Any]
) -> None:
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p")["CiphertextBlob"]
    assert refused(kms.decrypt, CiphertextBlob=blob, KeyId=other_key["KeyId"]) == (
        "IncorrectKeyException",
        "The key ID in the request does not identify a CMK that can perform this operation.",
    )


def test_decrypt_with_a_key_id_that_does_not_exist_is_not_found(
    kms: Any, key: dict[str, Any]
) -> None:
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p")["CiphertextBlob"]
    code, _ = refused(kms.decrypt, CiphertextBlob=blob, KeyId="alias/none")
    assert code == "NotFoundException"


@pytest.mark.parametrize(
    ("given", "label"),
    [
        (None, "missing"),
        ({"purpose": "other"}, "wrong value"),
        ({"Purpose": "test"}, "wrong key case"),
        ({"purpose": "test", "extra": "x"}, "extra pair"),
        ({"purpose": "tes", "t": ""}, "shifted boundary"),
    ],
)
def test_a_mismatched_encryption_context_is_an_invalid_ciphertext_without_message(
    kms: Any, key: dict[str, Any], given: dict[str, str] | None, label: str
) -> None:
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p", EncryptionContext={"purpose": "test"})[
        "CiphertextBlob"
    ]
    params: dict[str, Any] = {"CiphertextBlob": blob}
    if given is not None:
        params["EncryptionContext"] = given
    assert refused(kms.decrypt, **params) == INVALID_CIPHERTEXT, label


def test_an_encryption_context_is_matched_regardless_of_pair_order(
    kms: Any, key: dict[str, Any]
) -> None:
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p", EncryptionContext={"a": "1", "b": "2"})[
        "CiphertextBlob"
    ]
    opened = kms.decrypt(CiphertextBlob=blob, EncryptionContext={"b": "2", "a": "1"})
    assert opened["Plaintext"] == b"p"


def test_a_context_given_only_at_decrypt_is_an_invalid_ciphertext(
    kms: Any, key: dict[str, Any]
) -> None:
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p")["CiphertextBlob"]
    assert refused(kms.decrypt, CiphertextBlob=blob, EncryptionContext={"a": "b"}) == (
        INVALID_CIPHERTEXT
    )


def test_a_flipped_byte_anywhere_in_the_ciphertext_is_an_invalid_ciphertext(
    kms: Any, key: dict[str, Any]
) -> None:
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"attack at dawn")["CiphertextBlob"]
    answers: dict[int, tuple[str, str]] = {}
    for position in range(len(blob)):
        tampered = bytearray(blob)
        tampered[position] ^= 0x01
        answers[position] = refused(kms.decrypt, CiphertextBlob=bytes(tampered))
    wrong = sorted(pos for pos, answer in answers.items() if answer != INVALID_CIPHERTEXT)
    sample = answers[wrong[0]] if wrong else None
    assert not wrong, f"bytes {wrong} of {len(blob)} answered otherwise, e.g. {sample}"


def test_decrypt_without_a_ciphertext_blob_is_a_validation_error(
    server: ThreadServer, key: dict[str, Any]
) -> None:
    kms = unvalidated(server)
    expected = (
        "ValidationException",
        "1 validation error detected: Value null at 'ciphertextBlob' failed to satisfy "
        "constraint: Member must not be null",
    )
    assert refused(kms.decrypt, KeyId=key["KeyId"]) == expected
    assert refused(kms.decrypt) == expected


def test_a_unicode_encryption_context_round_trips(kms: Any, key: dict[str, Any]) -> None:
    context = {"région": "naïve ☃", "emoji": "🔑", "empty": ""}
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p", EncryptionContext=context)[
        "CiphertextBlob"
    ]
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"] == b"p"
    changed = {**context, "emoji": "🔒"}
    assert refused(kms.decrypt, CiphertextBlob=blob, EncryptionContext=changed) == (
        INVALID_CIPHERTEXT
    )


def test_a_truncated_or_extended_ciphertext_is_an_invalid_ciphertext(
    kms: Any, key: dict[str, Any]
) -> None:
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p")["CiphertextBlob"]
    for variant in (blob[:-1], blob[:20], blob + b"\x00", blob[:1]):
        assert refused(kms.decrypt, CiphertextBlob=variant) == INVALID_CIPHERTEXT


def test_a_garbage_ciphertext_is_an_invalid_ciphertext(kms: Any, key: dict[str, Any]) -> None:
    for garbage in (b"\x00" * 200, b"not a ciphertext blob at all", b"A" + os.urandom(150)):
        assert refused(kms.decrypt, CiphertextBlob=garbage) == INVALID_CIPHERTEXT
        code, _ = refused(kms.decrypt, CiphertextBlob=garbage, KeyId=key["KeyId"])
        assert code == "InvalidCiphertextException"


def test_a_4096_byte_plaintext_is_accepted_and_4097_is_a_validation_error(
    server: ThreadServer, kms: Any, key: dict[str, Any]
) -> None:
    plaintext = os.urandom(4096)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=plaintext)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext
    assert refused(kms.encrypt, KeyId=key["KeyId"], Plaintext=os.urandom(4097)) == (
        "ValidationException",
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length less than or equal to 4096",
    )


def test_an_empty_plaintext_is_a_validation_error(
    server: ThreadServer, key: dict[str, Any]
) -> None:
    assert refused(unvalidated(server).encrypt, KeyId=key["KeyId"], Plaintext=b"") == (
        "ValidationException",
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1",
    )


def test_a_ciphertext_longer_than_6144_bytes_is_a_validation_error(
    kms: Any, key: dict[str, Any]
) -> None:
    code, message = refused(kms.decrypt, CiphertextBlob=os.urandom(6145))
    assert code == "ValidationException"
    assert message == (
        "1 validation error detected: Value at 'ciphertextBlob' failed to satisfy constraint: "
        "Member must have length less than or equal to 6144"
    )


def test_a_symmetric_key_refuses_asymmetric_encryption_algorithms(
    kms: Any, key: dict[str, Any]
) -> None:
    code, _ = refused(
        kms.encrypt, KeyId=key["KeyId"], Plaintext=b"p", EncryptionAlgorithm="RSAES_OAEP_SHA_256"
    )
    assert code == "InvalidKeyUsageException"
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p", EncryptionAlgorithm="SYMMETRIC_DEFAULT")[
        "CiphertextBlob"
    ]
    code, _ = refused(kms.decrypt, CiphertextBlob=blob, EncryptionAlgorithm="RSAES_OAEP_SHA_1")
    assert code == "InvalidKeyUsageException"


# ---------------------------------------------------------------- ReEncrypt


def test_re_encrypt_moves_a_ciphertext_to_another_key_and_context(
    kms: Any, key: dict[str, Any], other_key: dict[str, Any]
) -> None:
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"moving", EncryptionContext={"a": "1"})[
        "CiphertextBlob"
    ]
    moved = kms.re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext={"a": "1"},
        DestinationKeyId=other_key["KeyId"],
        DestinationEncryptionContext={"b": "2"},
    )
    assert moved["SourceKeyId"] == key["Arn"]
    assert moved["KeyId"] == other_key["Arn"]
    assert moved["SourceEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert moved["DestinationEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert moved["SourceKeyMaterialId"] == key["CurrentKeyMaterialId"]
    assert moved["DestinationKeyMaterialId"] == other_key["CurrentKeyMaterialId"]
    opened = kms.decrypt(CiphertextBlob=moved["CiphertextBlob"], EncryptionContext={"b": "2"})
    assert (opened["Plaintext"], opened["KeyId"]) == (b"moving", other_key["Arn"])
    assert refused(kms.decrypt, CiphertextBlob=moved["CiphertextBlob"]) == INVALID_CIPHERTEXT
    code, _ = refused(
        kms.decrypt,
        CiphertextBlob=moved["CiphertextBlob"],
        EncryptionContext={"b": "2"},
        KeyId=key["KeyId"],
    )
    assert code == "IncorrectKeyException"


def test_re_encrypt_to_an_alias_answers_with_the_key_arn(
    kms: Any, key: dict[str, Any], other_key: dict[str, Any]
) -> None:
    kms.create_alias(AliasName="alias/destination", TargetKeyId=other_key["KeyId"])
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p")["CiphertextBlob"]
    moved = kms.re_encrypt(
        CiphertextBlob=blob, SourceKeyId=key["Arn"], DestinationKeyId="alias/destination"
    )
    assert moved["KeyId"] == other_key["Arn"]
    assert kms.decrypt(CiphertextBlob=moved["CiphertextBlob"])["Plaintext"] == b"p"


def test_re_encrypt_checks_the_source_key_id_and_context(
    kms: Any, key: dict[str, Any], other_key: dict[str, Any]
) -> None:
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p", EncryptionContext={"a": "1"})[
        "CiphertextBlob"
    ]
    code, _ = refused(
        kms.re_encrypt,
        CiphertextBlob=blob,
        SourceKeyId=other_key["KeyId"],
        SourceEncryptionContext={"a": "1"},
        DestinationKeyId=other_key["KeyId"],
    )
    assert code == "IncorrectKeyException"
    assert (
        refused(kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=other_key["KeyId"])
        == INVALID_CIPHERTEXT
    )


# ---------------------------------------------------------------- data keys and random


@pytest.mark.parametrize(("spec", "size"), [("AES_256", 32), ("AES_128", 16)])
def test_generate_data_key_by_key_spec_returns_a_key_of_that_size(
    kms: Any, key: dict[str, Any], spec: str, size: int
) -> None:
    answer = kms.generate_data_key(KeyId=key["KeyId"], KeySpec=spec, EncryptionContext={"c": "d"})
    assert answer["KeyId"] == key["Arn"]
    assert answer["KeyMaterialId"] == key["CurrentKeyMaterialId"]
    assert len(answer["Plaintext"]) == size
    opened = kms.decrypt(CiphertextBlob=answer["CiphertextBlob"], EncryptionContext={"c": "d"})
    assert opened["Plaintext"] == answer["Plaintext"]


@pytest.mark.parametrize("count", [1, 24, 1024])
def test_generate_data_key_by_number_of_bytes_returns_that_many(
    kms: Any, key: dict[str, Any], count: int
) -> None:
    answer = kms.generate_data_key(KeyId=key["KeyId"], NumberOfBytes=count)
    assert len(answer["Plaintext"]) == count
    assert kms.decrypt(CiphertextBlob=answer["CiphertextBlob"])["Plaintext"] == answer["Plaintext"]


def test_generate_data_key_without_plaintext_returns_only_the_ciphertext(
    kms: Any, key: dict[str, Any]
) -> None:
    kms.create_alias(AliasName="alias/dk", TargetKeyId=key["KeyId"])
    answer = kms.generate_data_key_without_plaintext(KeyId="alias/dk", KeySpec="AES_128")
    assert "Plaintext" not in answer
    assert answer["KeyId"] == key["Arn"]
    assert len(kms.decrypt(CiphertextBlob=answer["CiphertextBlob"])["Plaintext"]) == 16


def test_data_keys_are_random(kms: Any, key: dict[str, Any]) -> None:
    first = kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")["Plaintext"]
    second = kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")["Plaintext"]
    assert first != second


@pytest.mark.parametrize(
    "params",
    [{"KeySpec": "AES_256", "NumberOfBytes": 32}, {}],
    ids=["both", "neither"],
)
def test_generate_data_key_needs_exactly_one_of_key_spec_and_number_of_bytes(
    kms: Any, key: dict[str, Any], params: dict[str, Any]
) -> None:
    for call in (kms.generate_data_key, kms.generate_data_key_without_plaintext):
        code, _ = refused(call, KeyId=key["KeyId"], **params)
        assert code == "ValidationException"


def test_generate_data_key_number_of_bytes_outside_1_to_1024_is_a_validation_error(
    server: ThreadServer, key: dict[str, Any]
) -> None:
    kms = unvalidated(server)
    assert refused(kms.generate_data_key, KeyId=key["KeyId"], NumberOfBytes=0) == (
        "ValidationException",
        "1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy "
        "constraint: Member must have value greater than or equal to 1",
    )
    assert refused(kms.generate_data_key, KeyId=key["KeyId"], NumberOfBytes=1025) == (
        "ValidationException",
        "1 validation error detected: Value '1025' at 'numberOfBytes' failed to satisfy "
        "constraint: Member must have value less than or equal to 1024",
    )


def test_generate_data_key_with_an_unknown_key_spec_is_a_validation_error(
    server: ThreadServer, key: dict[str, Any]
) -> None:
    code, message = refused(
        unvalidated(server).generate_data_key, KeyId=key["KeyId"], KeySpec="AES_512"
    )
    assert code == "ValidationException"
    assert message == (
        "1 validation error detected: Value 'AES_512' at 'keySpec' failed to satisfy "
        "constraint: Member must satisfy enum value set: [AES_256, AES_128]"
    )


@pytest.mark.parametrize("count", [1, 16, 1024])
def test_generate_random_returns_the_number_of_bytes_asked_for(kms: Any, count: int) -> None:
    assert len(kms.generate_random(NumberOfBytes=count)["Plaintext"]) == count


def test_generate_random_outside_1_to_1024_is_a_validation_error(server: ThreadServer) -> None:
    kms = unvalidated(server)
    assert refused(kms.generate_random, NumberOfBytes=0) == (
        "ValidationException",
        "1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy "
        "constraint: Member must have value greater than or equal to 1",
    )
    assert refused(kms.generate_random, NumberOfBytes=1025) == (
        "ValidationException",
        "1 validation error detected: Value '1025' at 'numberOfBytes' failed to satisfy "
        "constraint: Member must have value less than or equal to 1024",
    )


def test_generate_random_without_number_of_bytes_is_a_validation_error(kms: Any) -> None:
    assert refused(kms.generate_random) == ("ValidationException", "NumberOfBytes is required.")


def test_generate_random_differs_between_calls(kms: Any) -> None:
    assert (
        kms.generate_random(NumberOfBytes=32)["Plaintext"]
        != kms.generate_random(NumberOfBytes=32)["Plaintext"]
    )


# ---------------------------------------------------------------- DryRun


def test_dry_run_of_each_crypto_operation_would_have_succeeded(
    kms: Any, key: dict[str, Any], other_key: dict[str, Any]
) -> None:
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p")["CiphertextBlob"]
    calls: list[tuple[Callable[..., Any], dict[str, Any]]] = [
        (kms.encrypt, {"KeyId": key["KeyId"], "Plaintext": b"p"}),
        (kms.decrypt, {"CiphertextBlob": blob}),
        (kms.generate_data_key, {"KeyId": key["KeyId"], "KeySpec": "AES_256"}),
        (kms.generate_data_key_without_plaintext, {"KeyId": key["KeyId"], "NumberOfBytes": 8}),
        (kms.re_encrypt, {"CiphertextBlob": blob, "DestinationKeyId": other_key["KeyId"]}),
    ]
    for call, params in calls:
        assert refused(call, DryRun=True, **params) == DRY_RUN, call
        with_false = call(DryRun=False, **params)
        assert with_false["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_dry_run_against_a_disabled_key_is_disabled(
    kms: Any, key: dict[str, Any], other_key: dict[str, Any]
) -> None:
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p")["CiphertextBlob"]
    kms.disable_key(KeyId=key["KeyId"])
    disabled = ("DisabledException", f"{key['Arn']} is disabled.")
    assert refused(kms.encrypt, KeyId=key["KeyId"], Plaintext=b"p", DryRun=True) == disabled
    assert refused(kms.decrypt, CiphertextBlob=blob, DryRun=True) == disabled
    assert (
        refused(kms.generate_data_key, KeyId=key["KeyId"], KeySpec="AES_256", DryRun=True)
        == disabled
    )
    assert (
        refused(
            kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=other_key["KeyId"], DryRun=True
        )
        == disabled
    )


def test_dry_run_still_reports_validation_errors_first(kms: Any, key: dict[str, Any]) -> None:
    code, _ = refused(kms.generate_data_key, KeyId=key["KeyId"], DryRun=True)
    assert code == "ValidationException"
    code, _ = refused(kms.encrypt, KeyId="alias/missing", Plaintext=b"p", DryRun=True)
    assert code == "NotFoundException"


def test_decrypt_and_re_encrypt_dry_runs_still_validate_the_ciphertext(
    kms: Any, key: dict[str, Any]
) -> None:
    """Without IGNORE_CIPHERTEXT, "KMS performs ... ciphertext validation" (Decrypt docs)."""
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p", EncryptionContext={"a": "1"})[
        "CiphertextBlob"
    ]
    assert refused(kms.decrypt, CiphertextBlob=blob, DryRun=True) == INVALID_CIPHERTEXT
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    assert (
        refused(kms.decrypt, CiphertextBlob=tampered, EncryptionContext={"a": "1"}, DryRun=True)
        == INVALID_CIPHERTEXT
    )
    assert (
        refused(kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=key["KeyId"], DryRun=True)
        == INVALID_CIPHERTEXT
    )


def test_decrypt_dry_run_ignoring_the_ciphertext_checks_only_the_key(
    server: ThreadServer, key: dict[str, Any], other_key: dict[str, Any]
) -> None:
    kms = unvalidated(server)
    modifiers = {"DryRun": True, "DryRunModifiers": ["IGNORE_CIPHERTEXT"]}
    garbage = b"not a ciphertext"
    assert refused(kms.decrypt, CiphertextBlob=garbage, KeyId=key["KeyId"], **modifiers) == DRY_RUN
    assert refused(kms.decrypt, KeyId=key["Arn"], **modifiers) == DRY_RUN
    code, _ = refused(kms.decrypt, CiphertextBlob=garbage, **modifiers)
    assert code == "ValidationException"
    code, _ = refused(kms.decrypt, KeyId="alias/missing", **modifiers)
    assert code == "NotFoundException"
    kms.disable_key(KeyId=other_key["KeyId"])
    assert refused(kms.decrypt, KeyId=other_key["KeyId"], **modifiers) == (
        "DisabledException",
        f"{other_key['Arn']} is disabled.",
    )


def test_a_nitro_enclave_recipient_is_unsupported(kms: Any, key: dict[str, Any]) -> None:
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p")["CiphertextBlob"]
    recipient = {"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": b"doc"}
    code, _ = refused(kms.decrypt, CiphertextBlob=blob, Recipient=recipient)
    assert code == "UnsupportedOperationException"
    code, _ = refused(
        kms.generate_data_key, KeyId=key["KeyId"], KeySpec="AES_256", Recipient=recipient
    )
    assert code == "UnsupportedOperationException"
    code, _ = refused(kms.generate_random, NumberOfBytes=8, Recipient=recipient)
    assert code == "UnsupportedOperationException"


# ---------------------------------------------------------------- key state


def test_a_disabled_key_refuses_every_crypto_operation_until_enabled(
    kms: Any, key: dict[str, Any], other_key: dict[str, Any]
) -> None:
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p")["CiphertextBlob"]
    other_blob = kms.encrypt(KeyId=other_key["KeyId"], Plaintext=b"q")["CiphertextBlob"]
    kms.disable_key(KeyId=key["KeyId"])
    disabled = ("DisabledException", f"{key['Arn']} is disabled.")
    assert refused(kms.encrypt, KeyId=key["KeyId"], Plaintext=b"p") == disabled
    assert refused(kms.decrypt, CiphertextBlob=blob) == disabled
    assert refused(kms.generate_data_key, KeyId=key["KeyId"], KeySpec="AES_256") == disabled
    assert (
        refused(kms.generate_data_key_without_plaintext, KeyId=key["KeyId"], NumberOfBytes=16)
        == disabled
    )
    # ReEncrypt refuses a disabled source and a disabled destination
    assert refused(kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=other_key["KeyId"]) == (
        disabled
    )
    assert refused(kms.re_encrypt, CiphertextBlob=other_blob, DestinationKeyId=key["KeyId"]) == (
        disabled
    )
    # GenerateRandom uses no key; the other key still works
    assert len(kms.generate_random(NumberOfBytes=4)["Plaintext"]) == 4
    assert kms.decrypt(CiphertextBlob=other_blob)["Plaintext"] == b"q"
    kms.enable_key(KeyId=key["KeyId"])
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"p"


def test_crypto_operations_on_unknown_keys_are_not_found(kms: Any) -> None:
    missing = "11111111-2222-3333-4444-555555555555"
    expected = (
        "NotFoundException",
        f"Key 'arn:aws:kms:{REGION}:{ACCOUNT}:key/{missing}' does not exist",
    )
    assert refused(kms.encrypt, KeyId=missing, Plaintext=b"p") == expected
    assert refused(kms.generate_data_key, KeyId=missing, KeySpec="AES_256") == expected
    assert refused(kms.encrypt, KeyId="nope", Plaintext=b"p") == (
        "NotFoundException",
        "Invalid keyId 'nope'",
    )
    assert refused(kms.encrypt, KeyId="alias/nope", Plaintext=b"p") == (
        "NotFoundException",
        f"Alias arn:aws:kms:{REGION}:{ACCOUNT}:alias/nope is not found.",
    )
