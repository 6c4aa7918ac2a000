"""Bring your own key with the AWS CLI and openssl, as the README's worked example does."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_aws_cli import aws, aws_json
from tests.support import ThreadServer

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def _import_args(key_id: str, encrypted: Path, token: Path) -> tuple[str, ...]:
    return (
        "kms",
        "import-key-material",
        "--key-id",
        key_id,
        "--encrypted-key-material",
        f"fileb://{encrypted}",
        "--import-token",
        f"fileb://{token}",
        "--expiration-model",
        "KEY_MATERIAL_DOES_NOT_EXPIRE",
    )


def test_get_parameters_for_import_and_import_key_material_with_openssl(
    server: ThreadServer, tmp_path: Path
) -> None:
    key = aws_json(server, "kms", "create-key", "--origin", "EXTERNAL")["KeyMetadata"]
    assert key["KeyState"] == "PendingImport"
    params = aws_json(
        server,
        "kms",
        "get-parameters-for-import",
        "--key-id",
        key["KeyId"],
        "--wrapping-algorithm",
        "RSAES_OAEP_SHA_256",
        "--wrapping-key-spec",
        "RSA_2048",
    )
    public, token = tmp_path / "PublicKey.bin", tmp_path / "ImportToken.bin"
    public.write_bytes(base64.b64decode(params["PublicKey"]))
    token.write_bytes(base64.b64decode(params["ImportToken"]))
    material, encrypted = tmp_path / "PlaintextKeyMaterial.bin", tmp_path / "Encrypted.bin"
    openssl("rand", "-out", str(material), "32")
    openssl(
        "pkeyutl", "-encrypt", "-in", str(material), "-out", str(encrypted),
        "-inkey", str(public), "-keyform", "DER", "-pubin",
        "-pkeyopt", "rsa_padding_mode:oaep",
        "-pkeyopt", "rsa_oaep_md:sha256",
        "-pkeyopt", "rsa_mgf1_md:sha256",
    )  # fmt: skip
    imported = aws_json(server, *_import_args(key["KeyId"], encrypted, token))
    assert imported["KeyId"] == key["Arn"]
    described = aws_json(server, "kms", "describe-key", "--key-id", key["KeyId"])["KeyMetadata"]
    assert described["KeyState"] == "Enabled"
    assert described["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    plain = tmp_path / "plain.txt"
    plain.write_text("bring your own key")
    blob = aws_json(
        server, "kms", "encrypt", "--key-id", key["KeyId"], "--plaintext", f"fileb://{plain}"
    )["CiphertextBlob"]
    # The same token again: spent.
    again = aws(server, *_import_args(key["KeyId"], encrypted, token))
    assert again.returncode != 0 and "InvalidImportTokenException" in again.stderr
    deleted = aws_json(server, "kms", "delete-imported-key-material", "--key-id", key["KeyId"])
    assert deleted["KeyId"] == key["Arn"]
    blob_file = tmp_path / "blob.bin"
    blob_file.write_bytes(base64.b64decode(blob))
    refused = aws(server, "kms", "decrypt", "--ciphertext-blob", f"fileb://{blob_file}")
    assert refused.returncode != 0 and "KMSInvalidStateException" in refused.stderr
