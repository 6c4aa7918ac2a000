"""Condition keys of the new operations in key policies: kms:SigningAlgorithm,
kms:MessageType, kms:MacAlgorithm, kms:KeyAgreementAlgorithm, kms:KeySpec, kms:KeyUsage
(https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html)."""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support import refused

ROOT = "arn:aws:iam::000000000000:root"


def policy(*denied: tuple[str, dict[str, str]]) -> str:
    """The account may do everything, except the actions denied under each condition."""
    statements: list[dict[str, Any]] = [
        {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}
    ]
    for action, condition in denied:
        statements.append(
            {
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": action,
                "Resource": "*",
                "Condition": {"StringEquals": condition},
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def denied(call: Any, **params: Any) -> bool:
    code, _ = refused(call, **params)
    return code == "AccessDeniedException"


def test_signing_algorithm_and_message_type_conditions(kms: Any) -> None:
    key_id = kms.create_key(
        KeySpec="RSA_2048",
        KeyUsage="SIGN_VERIFY",
        Policy=policy(
            ("kms:Sign", {"kms:MessageType": "DIGEST"}),
            ("kms:*", {"kms:SigningAlgorithm": "RSASSA_PKCS1_V1_5_SHA_256"}),
        ),
    )["KeyMetadata"]["KeyId"]
    signed = kms.sign(KeyId=key_id, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")
    assert denied(
        kms.sign,
        KeyId=key_id,
        Message=b"\0" * 32,
        MessageType="DIGEST",
        SigningAlgorithm="RSASSA_PSS_SHA_256",
    )
    assert denied(
        kms.sign, KeyId=key_id, Message=b"m", SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256"
    )
    assert denied(
        kms.verify,
        KeyId=key_id,
        Message=b"m",
        Signature=signed["Signature"],
        SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256",
    )
    kms.verify(
        KeyId=key_id,
        Message=b"m",
        Signature=signed["Signature"],
        SigningAlgorithm="RSASSA_PSS_SHA_256",
    )


def test_mac_and_key_agreement_algorithm_conditions(kms: Any) -> None:
    mac_key = kms.create_key(
        KeySpec="HMAC_256",
        KeyUsage="GENERATE_VERIFY_MAC",
        Policy=policy(("kms:GenerateMac", {"kms:MacAlgorithm": "HMAC_SHA_256"})),
    )["KeyMetadata"]["KeyId"]
    assert denied(kms.generate_mac, KeyId=mac_key, Message=b"m", MacAlgorithm="HMAC_SHA_256")
    agreeing = kms.create_key(
        KeySpec="ECC_NIST_P256",
        KeyUsage="KEY_AGREEMENT",
        Policy=policy(("kms:DeriveSharedSecret", {"kms:KeyAgreementAlgorithm": "ECDH"})),
    )["KeyMetadata"]["KeyId"]
    peer = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert denied(
        kms.derive_shared_secret, KeyId=agreeing, KeyAgreementAlgorithm="ECDH", PublicKey=peer
    )
    kms.get_public_key(KeyId=agreeing)  # other operations stay allowed


def test_key_spec_and_key_usage_conditions(kms: Any) -> None:
    text = policy(
        ("kms:GetPublicKey", {"kms:KeySpec": "ECC_NIST_P384", "kms:KeyUsage": "SIGN_VERIFY"})
    )
    p384 = kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY", Policy=text)
    p256 = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY", Policy=text)
    assert denied(kms.get_public_key, KeyId=p384["KeyMetadata"]["KeyId"])
    kms.get_public_key(KeyId=p256["KeyMetadata"]["KeyId"])
