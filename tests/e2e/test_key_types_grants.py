"""Grants on the new key types: a grantee signs, verifies, fetches the public key and makes
MACs through a grant token; CreateGrant refuses operations that do not fit the key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.e2e.authz_config import CAST, World, settings
from tests.e2e.test_grants import denied
from tests.support import ThreadServer, refused

NOBODY = CAST["nobody"].arn


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    data_dir = tmp_path / "data"
    running = World(ThreadServer(settings(data_dir)).start(), data_dir)
    yield running
    running.server.stop()


def test_a_grant_token_lets_a_grantee_sign_verify_and_fetch_the_public_key(world: World) -> None:
    admin, grantee = world("root-a"), world("nobody")
    key = admin.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    sign = {"KeyId": key, "Message": b"m", "SigningAlgorithm": "ECDSA_SHA_256"}
    denied(grantee.sign, **sign)
    token = admin.create_grant(
        KeyId=key, GranteePrincipal=NOBODY, Operations=["Sign", "GetPublicKey"]
    )["GrantToken"]
    signature = grantee.sign(**sign, GrantTokens=[token])["Signature"]
    public = grantee.get_public_key(KeyId=key, GrantTokens=[token])["PublicKey"]
    loaded = serialization.load_der_public_key(public)
    assert isinstance(loaded, ec.EllipticCurvePublicKey)
    loaded.verify(signature, b"m", ec.ECDSA(hashes.SHA256()))
    # Verify was not granted.
    denied(grantee.verify, **sign, Signature=signature, GrantTokens=[token])


def test_a_grant_token_lets_a_grantee_make_macs(world: World) -> None:
    admin, grantee = world("root-a"), world("nobody")
    key = admin.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    token = admin.create_grant(
        KeyId=key["Arn"], GranteePrincipal=NOBODY, Operations=["GenerateMac", "VerifyMac"]
    )["GrantToken"]
    mac = grantee.generate_mac(
        KeyId=key["Arn"], Message=b"m", MacAlgorithm="HMAC_SHA_256", GrantTokens=[token]
    )["Mac"]
    assert grantee.verify_mac(
        KeyId=key["Arn"], Message=b"m", Mac=mac, MacAlgorithm="HMAC_SHA_256", GrantTokens=[token]
    )["MacValid"]


@pytest.mark.parametrize(
    ("spec", "usage", "unfit"),
    [
        ("RSA_2048", "SIGN_VERIFY", "Encrypt"),
        ("RSA_2048", "ENCRYPT_DECRYPT", "GenerateDataKey"),
        ("HMAC_256", "GENERATE_VERIFY_MAC", "GetPublicKey"),
        ("ECC_NIST_P384", "KEY_AGREEMENT", "Sign"),
    ],
)
def test_create_grant_refuses_operations_the_key_cannot_do(
    world: World, spec: str, usage: str, unfit: str
) -> None:
    admin = world("root-a")
    key = admin.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["Arn"]
    code, message = refused(
        admin.create_grant, KeyId=key, GranteePrincipal=NOBODY, Operations=[unfit]
    )
    assert code == "ValidationException" and unfit in message
