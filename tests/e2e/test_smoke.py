"""A first end-to-end pass: boto3 against a real server on SQLite."""

from __future__ import annotations

from typing import Any


def test_encrypt_then_decrypt_round_trips_through_boto3(kms: Any) -> None:
    key = kms.create_key(Description="smoke")["KeyMetadata"]
    sealed = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"hello", EncryptionContext={"a": "b"})
    opened = kms.decrypt(CiphertextBlob=sealed["CiphertextBlob"], EncryptionContext={"a": "b"})
    assert opened["Plaintext"] == b"hello"
    assert opened["KeyId"] == key["Arn"]
