"""aiobotocore (the async botocore used by aioboto3, s3fs, ...) against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from tests.support import ThreadServer, remember_secrets


@pytest.fixture
async def akms(server: ThreadServer) -> AsyncIterator[Any]:
    session = get_session()
    async with session.create_client(
        "kms",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=AioConfig(retries={"max_attempts": 1}, max_pool_connections=20),
    ) as client:
        yield remember_secrets(client)


async def test_create_key_returns_an_enabled_symmetric_key_that_describe_key_finds(
    akms: Any,
) -> None:
    created = (await akms.create_key(Description="async"))["KeyMetadata"]
    assert created["KeyState"] == "Enabled"
    assert created["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert created["Arn"].startswith("arn:aws:kms:us-east-1:")
    described = (await akms.describe_key(KeyId=created["Arn"]))["KeyMetadata"]
    assert described["KeyId"] == created["KeyId"]
    assert described["Description"] == "async"


async def test_encrypt_then_decrypt_round_trips_with_an_encryption_context(akms: Any) -> None:
    key = (await akms.create_key())["KeyMetadata"]
    context = {"purpose": "test", "tenant": "7"}
    sealed = await akms.encrypt(
        KeyId=key["KeyId"], Plaintext=b"async secret", EncryptionContext=context
    )
    assert sealed["KeyId"] == key["Arn"]
    assert b"async secret" not in sealed["CiphertextBlob"]
    opened = await akms.decrypt(CiphertextBlob=sealed["CiphertextBlob"], EncryptionContext=context)
    assert opened["Plaintext"] == b"async secret"
    assert opened["KeyId"] == key["Arn"]


async def test_decrypt_with_a_different_encryption_context_is_refused(akms: Any) -> None:
    key = (await akms.create_key())["KeyMetadata"]
    sealed = await akms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", EncryptionContext={"a": "b"})
    with pytest.raises(ClientError) as refused:
        await akms.decrypt(CiphertextBlob=sealed["CiphertextBlob"], EncryptionContext={"a": "c"})
    assert refused.value.response["Error"]["Code"] == "InvalidCiphertextException"


@pytest.mark.parametrize(
    ("size_argument", "expected_length"),
    [({"KeySpec": "AES_256"}, 32), ({"KeySpec": "AES_128"}, 16), ({"NumberOfBytes": 16}, 16)],
)
async def test_generate_data_key_returns_a_plaintext_of_the_requested_size_that_decrypts(
    akms: Any, size_argument: dict[str, Any], expected_length: int
) -> None:
    key = (await akms.create_key())["KeyMetadata"]
    generated = await akms.generate_data_key(
        KeyId=key["KeyId"], EncryptionContext={"file": "a.txt"}, **size_argument
    )
    assert len(generated["Plaintext"]) == expected_length
    assert generated["KeyId"] == key["Arn"]
    opened = await akms.decrypt(
        CiphertextBlob=generated["CiphertextBlob"], EncryptionContext={"file": "a.txt"}
    )
    assert opened["Plaintext"] == generated["Plaintext"]


async def test_fifty_concurrent_encrypts_all_decrypt_to_their_own_plaintexts(akms: Any) -> None:
    key = (await akms.create_key())["KeyMetadata"]
    plaintexts = [f"message {i}".encode() for i in range(50)]
    sealed = await asyncio.gather(
        *(
            akms.encrypt(KeyId=key["KeyId"], Plaintext=p, EncryptionContext={"i": str(i)})
            for i, p in enumerate(plaintexts)
        )
    )
    blobs = [s["CiphertextBlob"] for s in sealed]
    assert len(set(blobs)) == 50
    opened = await asyncio.gather(
        *(
            akms.decrypt(CiphertextBlob=blob, EncryptionContext={"i": str(i)})
            for i, blob in enumerate(blobs)
        )
    )
    assert [o["Plaintext"] for o in opened] == plaintexts


async def test_encrypting_with_a_disabled_key_raises_client_error_disabled_exception(
    akms: Any,
) -> None:
    key = (await akms.create_key())["KeyMetadata"]
    await akms.disable_key(KeyId=key["KeyId"])
    with pytest.raises(ClientError) as refused:
        await akms.encrypt(KeyId=key["KeyId"], Plaintext=b"nope")
    assert refused.value.response["Error"]["Code"] == "DisabledException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(akms.exceptions.DisabledException):
        await akms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")
