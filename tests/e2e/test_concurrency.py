"""Conflicting requests from many clients at once (issue 15): no lost update, one winner
of an alias race, and a DisableKey racing Encrypt is either before or after, never half."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from tests.support import ThreadServer

CLIENTS = 12


def _together(count: int, work: Any) -> list[Any]:
    """Run ``work(i)`` on ``count`` threads released at the same moment."""
    gate = threading.Barrier(count)

    def run(index: int) -> Any:
        gate.wait()
        try:
            return work(index)
        except ClientError as error:
            return error.response["Error"]["Code"]

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_conflicting_tag_changes_on_one_key_lose_no_update(server: ThreadServer) -> None:
    key_id = server.client().create_key()["KeyMetadata"]["KeyId"]
    clients = [server.client() for _ in range(CLIENTS)]

    def tag(index: int) -> str:
        for n in range(3):
            tags = [{"TagKey": f"c{index}-{n}", "TagValue": str(index)}]
            clients[index].tag_resource(KeyId=key_id, Tags=tags)
        clients[index].update_key_description(KeyId=key_id, Description=f"by {index}")
        return "ok"

    assert _together(CLIENTS, tag) == ["ok"] * CLIENTS
    tags = server.client().list_resource_tags(KeyId=key_id)["Tags"]
    assert sorted(t["TagKey"] for t in tags) == sorted(
        f"c{i}-{n}" for i in range(CLIENTS) for n in range(3)
    )
    description = server.client().describe_key(KeyId=key_id)["KeyMetadata"]["Description"]
    assert description in {f"by {i}" for i in range(CLIENTS)}


def test_an_alias_race_has_one_winner(server: ThreadServer) -> None:
    kms = server.client()
    keys = [kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(4)]
    clients = [server.client() for _ in range(CLIENTS)]

    def create(index: int) -> str:
        clients[index].create_alias(AliasName="alias/race", TargetKeyId=keys[index % 4])
        return f"won {keys[index % 4]}"

    outcomes = _together(CLIENTS, create)
    winners = [o for o in outcomes if o.startswith("won")]
    assert len(winners) == 1, outcomes
    assert sorted(set(outcomes) - set(winners)) == ["AlreadyExistsException"]
    aliases = [a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == "alias/race"]
    assert [a["TargetKeyId"] for a in aliases] == [winners[0].removeprefix("won ")]


def test_a_disable_racing_encrypt_is_either_before_or_after(server: ThreadServer) -> None:
    kms = server.client()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    clients = [server.client() for _ in range(CLIENTS)]
    disabled_at: list[float] = []
    results: list[tuple[float, str, bytes | None]] = []
    lock = threading.Lock()

    def encrypt(index: int) -> str:
        if index == 0:
            time.sleep(0.3)
            clients[0].disable_key(KeyId=key_id)
            disabled_at.append(time.monotonic())
            return "disabled"
        for n in range(40):
            began = time.monotonic()
            try:
                blob = clients[index].encrypt(KeyId=key_id, Plaintext=f"{index}/{n}".encode())
                outcome, sealed = "ok", blob["CiphertextBlob"]
            except ClientError as error:
                outcome, sealed = error.response["Error"]["Code"], None
            with lock:
                results.append((began, outcome, sealed))
        return "done"

    _together(CLIENTS, encrypt)
    assert disabled_at
    outcomes = {outcome for _, outcome, _ in results}
    assert outcomes <= {"ok", "DisabledException"}, outcomes
    assert "ok" in outcomes and "DisabledException" in outcomes
    # A request sent after DisableKey was answered never succeeds ...
    late = [r for r in results if r[0] > disabled_at[0] and r[1] == "ok"]
    assert late == []
    # ... and every success is whole: its ciphertext decrypts once the key is enabled again.
    kms.enable_key(KeyId=key_id)
    for _, outcome, sealed in results:
        if outcome == "ok":
            assert kms.decrypt(CiphertextBlob=sealed)["KeyId"].endswith(key_id)
