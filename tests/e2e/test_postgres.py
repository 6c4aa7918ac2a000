"""keyledger on PostgreSQL: a real server started as an unprivileged user, real
`keyledger serve --store postgresql://…` processes, real boto3."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.support import ProcessServer

ROOT_KEY = {"KEYLEDGER_ROOT_KEY": base64.b64encode(bytes(range(32))).decode()}


def _serve(data_dir: Path, store: str, *extra: str) -> ProcessServer:
    """Every process on one store shares the root key (here through the environment)."""
    return ProcessServer(data_dir, extra_args=("--store", store, *extra), env=ROOT_KEY).start()


def test_a_server_on_postgresql_serves_keys(tmp_path: Path, pg_store: str) -> None:
    server = _serve(tmp_path / "a", pg_store)
    try:
        kms = server.client()
        key_id = kms.create_key(Description="on pg")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName="alias/pg", TargetKeyId=key_id)
        blob = kms.encrypt(KeyId="alias/pg", Plaintext=b"hello")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"hello"
        assert [a["AliasName"] for a in kms.list_aliases(KeyId=key_id)["Aliases"]] == ["alias/pg"]
    finally:
        server.stop()
    # Restart on the same database (a new data directory: the views rebuild from its log).
    again = _serve(tmp_path / "b", pg_store)
    try:
        kms = again.client()
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"hello"
        assert kms.describe_key(KeyId="alias/pg")["KeyMetadata"]["Description"] == "on pg"
    finally:
        again.stop()
    assert not (tmp_path / "a" / "keyledger.db").exists()  # the ledgers are in PostgreSQL
