"""The AWS CLI v1 signs, verifies and fetches a public key; the signature checks offline."""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.e2e.test_aws_cli import aws, aws_json
from tests.support import ThreadServer


def test_cli_sign_verify_and_get_public_key(server: ThreadServer, tmp_path: Path) -> None:
    key = aws_json(
        server, "kms", "create-key", "--key-spec", "ECC_NIST_P256", "--key-usage", "SIGN_VERIFY"
    )["KeyMetadata"]
    assert key["SigningAlgorithms"] == ["ECDSA_SHA_256"]
    message = tmp_path / "message.bin"
    message.write_bytes(b"signed by the CLI \x00\xff")
    signed = aws_json(
        server,
        "kms",
        "sign",
        "--key-id",
        key["KeyId"],
        "--message",
        f"fileb://{message}",
        "--message-type",
        "RAW",
        "--signing-algorithm",
        "ECDSA_SHA_256",
    )
    assert signed["KeyId"] == key["Arn"]
    signature = base64.b64decode(signed["Signature"])
    signature_file = tmp_path / "signature.bin"
    signature_file.write_bytes(signature)
    verify = [
        "kms",
        "verify",
        "--key-id",
        key["KeyId"],
        "--signature",
        f"fileb://{signature_file}",
        "--signing-algorithm",
        "ECDSA_SHA_256",
    ]
    checked = aws_json(server, *verify, "--message", f"fileb://{message}")
    assert checked["SignatureValid"] is True
    other = tmp_path / "other.bin"
    other.write_bytes(b"not what was signed")
    refused = aws(server, *verify, "--message", f"fileb://{other}")
    assert refused.returncode != 0
    assert "KMSInvalidSignatureException" in refused.stderr

    public = aws_json(server, "kms", "get-public-key", "--key-id", key["KeyId"])
    assert (public["KeyId"], public["KeySpec"], public["KeyUsage"]) == (
        key["Arn"],
        "ECC_NIST_P256",
        "SIGN_VERIFY",
    )
    assert public["SigningAlgorithms"] == ["ECDSA_SHA_256"]
    loaded = serialization.load_der_public_key(base64.b64decode(public["PublicKey"]))
    assert isinstance(loaded, ec.EllipticCurvePublicKey)
    loaded.verify(signature, message.read_bytes(), ec.ECDSA(hashes.SHA256()))
