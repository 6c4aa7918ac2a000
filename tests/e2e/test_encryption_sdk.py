"""The AWS Encryption SDK for Python (master key providers) using keyledger as its KMS."""

from __future__ import annotations

from typing import Any

import aws_encryption_sdk
import pytest
from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy
from aws_encryption_sdk.key_providers.kms import KMSMasterKey, StrictAwsKmsMasterKeyProvider

from tests.support import ThreadServer

MESSAGE = b"The Encryption SDK envelope-encrypts this with a data key from keyledger. " * 40
CONTEXT = {"purpose": "esdk-e2e", "tenant": "42"}


def _kms_calls(client: Any) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Record each call a boto3 client makes: (operation, request params, parsed response)."""
    calls: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    requests: list[dict[str, Any]] = []

    def before(params: dict[str, Any], **_: Any) -> None:
        requests.append(dict(params))

    def after(model: Any, parsed: dict[str, Any], **_: Any) -> None:
        calls.append((model.name, requests.pop(0), parsed))

    client.meta.events.register("provide-client-params.kms.*", before)
    client.meta.events.register("after-call.kms.*", after)
    return calls


@pytest.mark.parametrize(
    ("algorithm", "data_key_bytes"),
    [
        (Algorithm.AES_128_GCM_IV12_TAG16_HKDF_SHA256, 16),
        (Algorithm.AES_192_GCM_IV12_TAG16_HKDF_SHA256, 24),
        (Algorithm.AES_256_GCM_IV12_TAG16_HKDF_SHA256, 32),
        (Algorithm.AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384, 32),
    ],
    ids=lambda value: value.name if isinstance(value, Algorithm) else str(value),
)
def test_non_committing_suites_encrypt_and_decrypt_through_a_kms_master_key(
    kms: Any, algorithm: Algorithm, data_key_bytes: int
) -> None:
    key_arn = kms.create_key(Description="esdk")["KeyMetadata"]["Arn"]
    calls = _kms_calls(kms)
    master_key = KMSMasterKey(key_id=key_arn, client=kms)
    esdk = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT
    )

    ciphertext, encrypt_header = esdk.encrypt(
        source=MESSAGE, key_provider=master_key, algorithm=algorithm, encryption_context=CONTEXT
    )
    assert encrypt_header.algorithm == algorithm
    assert MESSAGE[:32] not in ciphertext
    [edk] = encrypt_header.encrypted_data_keys
    assert edk.key_provider.provider_id == "aws-kms"
    assert edk.key_provider.key_info == key_arn.encode()

    # A fresh master key (no cached data key) must ask keyledger to decrypt the EDK.
    plaintext, decrypt_header = esdk.decrypt(
        source=ciphertext, key_provider=KMSMasterKey(key_id=key_arn, client=kms)
    )
    assert plaintext == MESSAGE
    assert decrypt_header.algorithm == algorithm
    assert CONTEXT.items() <= decrypt_header.encryption_context.items()
    assert [name for name, _, _ in calls] == ["GenerateDataKey", "Decrypt"]
    (_, generate_request, generated), (_, _, decrypted) = calls
    # The SDK asks for the suite's key length; keyledger must hand out exactly that.
    assert generate_request["NumberOfBytes"] == data_key_bytes
    assert len(generated["Plaintext"]) == data_key_bytes
    assert decrypted["Plaintext"] == generated["Plaintext"]
    assert generate_request["EncryptionContext"] == encrypt_header.encryption_context


def test_the_default_committing_suite_round_trips_through_a_strict_provider_via_env_endpoint(
    server: ThreadServer, kms: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """StrictAwsKmsMasterKeyProvider builds its own clients: AWS_ENDPOINT_URL_KMS points them."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/keyledger-test-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/keyledger-test-credentials")
    for leftover in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        monkeypatch.delenv(leftover, raising=False)
    key_arn = kms.create_key(Description="esdk strict")["KeyMetadata"]["Arn"]
    esdk = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )

    ciphertext, encrypt_header = esdk.encrypt(
        source=MESSAGE,
        key_provider=StrictAwsKmsMasterKeyProvider(key_ids=[key_arn]),
        encryption_context=CONTEXT,
    )
    assert encrypt_header.algorithm == Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
    plaintext, decrypt_header = esdk.decrypt(
        source=ciphertext, key_provider=StrictAwsKmsMasterKeyProvider(key_ids=[key_arn])
    )
    assert plaintext == MESSAGE
    assert CONTEXT.items() <= decrypt_header.encryption_context.items()
    assert "aws-crypto-public-key" in decrypt_header.encryption_context


def test_a_message_for_a_disabled_key_cannot_be_decrypted(kms: Any) -> None:
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    esdk = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    ciphertext, _ = esdk.encrypt(
        source=MESSAGE,
        key_provider=KMSMasterKey(key_id=key_arn, client=kms),
        algorithm=Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
        encryption_context=CONTEXT,
    )
    kms.disable_key(KeyId=key_arn)
    calls = _kms_calls(kms)
    with pytest.raises(aws_encryption_sdk.exceptions.DecryptKeyError):
        esdk.decrypt(source=ciphertext, key_provider=KMSMasterKey(key_id=key_arn, client=kms))
    [(name, _, answer)] = calls
    assert name == "Decrypt"
    assert answer["Error"]["Code"] == "DisabledException"
