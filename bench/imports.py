"""Figures for imported key material: GetParametersForImport latency per wrapping key spec
(an RSA key pair is generated per call), and ImportKeyMaterial latency (RSA decryption and
RFC 5649 unwrap on the key generation threads), one call after another.

    .venv/bin/python -m bench.imports --endpoint http://127.0.0.1:4599 --rounds 10

Run against a loopback server started with ``--no-quotas`` (the import operations' request
quota is 5 per second).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import boto3
from botocore.config import Config

from bench.loadgen import is_loopback_endpoint
from tests.e2e.byok import wrap


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint", default="http://127.0.0.1:4599")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    if not is_loopback_endpoint(args.endpoint):
        print("loopback endpoints only", file=sys.stderr)
        return 2
    kms = boto3.client(
        "kms",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}),
    )
    print("| wrapping key spec | GetParametersForImport p50 / max ms |", end="")
    print(" ImportKeyMaterial p50 / max ms |")
    print("|---|---|---|")
    for spec in ("RSA_2048", "RSA_3072", "RSA_4096"):
        params_ms, import_ms = [], []
        for _ in range(args.rounds):
            key_id = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
            start = time.perf_counter()
            params = kms.get_parameters_for_import(
                KeyId=key_id, WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256", WrappingKeySpec=spec
            )
            params_ms.append((time.perf_counter() - start) * 1000)
            encrypted = wrap(params["PublicKey"], "RSA_AES_KEY_WRAP_SHA_256", os.urandom(32))
            start = time.perf_counter()
            kms.import_key_material(
                KeyId=key_id, ImportToken=params["ImportToken"], EncryptedKeyMaterial=encrypted
            )
            import_ms.append((time.perf_counter() - start) * 1000)
        print(
            f"| {spec} | {statistics.median(params_ms):.0f} / {max(params_ms):.0f} "
            f"| {statistics.median(import_ms):.0f} / {max(import_ms):.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
