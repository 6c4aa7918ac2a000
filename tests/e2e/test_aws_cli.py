"""The AWS CLI v1 (a separate process, as users run it) against a real server."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support import ThreadServer


def aws(server: ThreadServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_PAGER": "",
    }
    for leftover in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_KMS",
    ):
        env.pop(leftover, None)
    command = [sys.executable, "-m", "awscli", "--endpoint-url", server.endpoint]
    return subprocess.run(
        [*command, "--output", "json", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def aws_json(server: ThreadServer, *args: str) -> Any:
    done = aws(server, *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


def test_create_key_list_keys_alias_and_a_file_round_trip_through_encrypt_and_decrypt(
    server: ThreadServer, tmp_path: Path
) -> None:
    key = aws_json(server, "kms", "create-key", "--description", "cli")["KeyMetadata"]
    assert key["Description"] == "cli"
    assert key["KeyState"] == "Enabled"

    other = aws_json(server, "kms", "create-key")["KeyMetadata"]
    listed = aws_json(server, "kms", "list-keys")["Keys"]
    assert {"KeyId": key["KeyId"], "KeyArn": key["Arn"]} in listed
    # --page-size 1 makes the CLI follow NextMarker across pages.
    paged = aws_json(server, "kms", "list-keys", "--page-size", "1")["Keys"]
    assert sorted(k["KeyId"] for k in paged) == sorted([key["KeyId"], other["KeyId"]])

    alias_args = ["--alias-name", "alias/cli-test", "--target-key-id", key["KeyId"]]
    assert aws_json(server, "kms", "create-alias", *alias_args) is None  # no output on success
    aliases = aws_json(server, "kms", "list-aliases", "--key-id", key["KeyId"])["Aliases"]
    assert [a["AliasName"] for a in aliases] == ["alias/cli-test"]

    secret = bytes(range(256)) + b"binary \x00 secret\n"
    plain_file = tmp_path / "plain.bin"
    plain_file.write_bytes(secret)
    sealed = aws_json(
        server,
        "kms",
        "encrypt",
        "--key-id",
        "alias/cli-test",
        "--plaintext",
        f"fileb://{plain_file}",
        "--encryption-context",
        "app=cli",
    )
    assert sealed["KeyId"] == key["Arn"]
    assert sealed["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"

    blob_file = tmp_path / "ciphertext.bin"
    blob_file.write_bytes(base64.b64decode(sealed["CiphertextBlob"]))
    opened = aws_json(
        server,
        "kms",
        "decrypt",
        "--ciphertext-blob",
        f"fileb://{blob_file}",
        "--encryption-context",
        "app=cli",
    )
    assert opened["KeyId"] == key["Arn"]
    assert base64.b64decode(opened["Plaintext"]) == secret


def test_describe_key_shows_the_key_and_a_missing_key_exits_non_zero_with_not_found(
    server: ThreadServer,
) -> None:
    key = aws_json(server, "kms", "create-key", "--description", "cli")["KeyMetadata"]
    described = aws_json(server, "kms", "describe-key", "--key-id", key["Arn"])["KeyMetadata"]
    assert described["KeyId"] == key["KeyId"]
    assert described["Description"] == "cli"

    missing = aws(server, "kms", "describe-key", "--key-id", "1234abcd-12ab-34cd-56ef-1234567890ab")
    assert missing.returncode != 0
    assert "NotFoundException" in missing.stderr
    assert missing.stdout == ""


def test_encrypt_with_a_disabled_key_exits_non_zero_with_disabled_exception(
    server: ThreadServer,
) -> None:
    key = aws_json(server, "kms", "create-key")["KeyMetadata"]
    aws_json(server, "kms", "disable-key", "--key-id", key["KeyId"])
    refused = aws(server, "kms", "encrypt", "--key-id", key["KeyId"], "--plaintext", "hi")
    assert refused.returncode != 0
    assert "DisabledException" in refused.stderr
