"""Durability: `keyledger serve` restarted on the same data directory, after SIGTERM and kill -9."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config

from tests.support import ProcessServer

pytestmark = pytest.mark.slow


@dataclass
class Sealed:
    """A ciphertext the server acknowledged, and how to open it."""

    blob: bytes
    plaintext: bytes
    key_arn: str
    context: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    """Everything a client was told was stored, to be checked after a restart."""

    keys: dict[str, dict[str, Any]] = field(default_factory=dict)  # KeyId -> CreateKey metadata
    states: dict[str, str] = field(default_factory=dict)  # KeyId -> KeyState
    aliases: dict[str, str] = field(default_factory=dict)  # alias name -> target KeyId
    tags: dict[str, dict[str, str]] = field(default_factory=dict)  # KeyId -> tags
    sealed: list[Sealed] = field(default_factory=list)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[ProcessServer]]:
    """Servers started by a test; any still running at the end is killed."""
    started: list[ProcessServer] = []
    yield started
    for server in started:
        if server.process is not None and server.process.poll() is None:
            server.stop(signal.SIGKILL)


def start(servers: list[ProcessServer], data_dir: Path) -> ProcessServer:
    server = ProcessServer(data_dir)
    servers.append(server)
    return server.start()


def populate(kms: Any) -> World:
    """Two keys (one disabled), an alias, tags, and ciphertexts of three kinds."""
    world = World()
    for name in ("active", "retired"):
        key = kms.create_key(
            Description=f"{name} key", Tags=[{"TagKey": "role", "TagValue": name}]
        )["KeyMetadata"]
        world.keys[key["KeyId"]] = key
        world.states[key["KeyId"]] = "Enabled"
        world.tags[key["KeyId"]] = {"role": name}
    active, retired = world.keys.values()

    kms.tag_resource(KeyId=active["KeyId"], Tags=[{"TagKey": "team", "TagValue": "payments"}])
    world.tags[active["KeyId"]]["team"] = "payments"
    kms.create_alias(AliasName="alias/restart-active", TargetKeyId=active["KeyId"])
    world.aliases["alias/restart-active"] = active["KeyId"]

    context = {"order": "1234"}
    for key, plaintext, ctx in (
        (active, b"with a context", context),
        (retired, b"sealed before the key was disabled", {}),
    ):
        blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=plaintext, EncryptionContext=ctx)
        world.sealed.append(Sealed(blob["CiphertextBlob"], plaintext, key["Arn"], ctx))
    via_alias = kms.encrypt(KeyId="alias/restart-active", Plaintext=b"sealed via the alias")
    assert via_alias["KeyId"] == active["Arn"]
    world.sealed.append(Sealed(via_alias["CiphertextBlob"], b"sealed via the alias", active["Arn"]))
    data_key = kms.generate_data_key(
        KeyId=active["Arn"], KeySpec="AES_256", EncryptionContext={"file": "f"}
    )
    world.sealed.append(
        Sealed(data_key["CiphertextBlob"], data_key["Plaintext"], active["Arn"], {"file": "f"})
    )

    kms.disable_key(KeyId=retired["KeyId"])
    world.states[retired["KeyId"]] = "Disabled"
    return world


def assert_world_survived(kms: Any, world: World) -> None:
    listed = {k["KeyId"] for k in kms.list_keys()["Keys"]}
    assert set(world.keys) <= listed

    for key_id, created in world.keys.items():
        described = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        assert described["Arn"] == created["Arn"]
        assert described["Description"] == created["Description"]
        assert described["CreationDate"] == created["CreationDate"]
        assert described["KeyState"] == world.states[key_id]
        assert described["Enabled"] == (world.states[key_id] == "Enabled")
        tags = kms.list_resource_tags(KeyId=key_id)["Tags"]
        assert {t["TagKey"]: t["TagValue"] for t in tags} == world.tags.get(key_id, {})

    listed = kms.list_aliases()["Aliases"]
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in listed}
    assert world.aliases.items() <= aliases.items()
    for alias, target in world.aliases.items():
        assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == target
        fresh = kms.encrypt(KeyId=alias, Plaintext=b"after restart")
        assert fresh["KeyId"] == world.keys[target]["Arn"]
        assert kms.decrypt(CiphertextBlob=fresh["CiphertextBlob"])["Plaintext"] == b"after restart"

    disabled_arns = {
        world.keys[k]["Arn"] for k, state in world.states.items() if state != "Enabled"
    }
    for sealed in world.sealed:
        if sealed.key_arn in disabled_arns:
            with pytest.raises(kms.exceptions.DisabledException):
                kms.decrypt(CiphertextBlob=sealed.blob, EncryptionContext=sealed.context)
            continue
        opened = kms.decrypt(CiphertextBlob=sealed.blob, EncryptionContext=sealed.context)
        assert opened["Plaintext"] == sealed.plaintext
        assert opened["KeyId"] == sealed.key_arn


def test_keys_states_aliases_tags_and_ciphertexts_survive_a_sigterm_restart(
    servers: list[ProcessServer], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = start(servers, data_dir)
    world = populate(first.client())
    assert first.stop(signal.SIGTERM) == 0

    second = start(servers, data_dir)
    assert second.port != first.port
    kms = second.client()
    assert_world_survived(kms, world)

    # The ciphertext of the disabled key opens once the key is enabled again.
    [retired] = [k for k, state in world.states.items() if state == "Disabled"]
    [sealed] = [s for s in world.sealed if s.key_arn == world.keys[retired]["Arn"]]
    kms.enable_key(KeyId=retired)
    assert kms.decrypt(CiphertextBlob=sealed.blob)["Plaintext"] == sealed.plaintext


def test_acknowledged_writes_survive_kill_9_of_a_restarted_server(
    servers: list[ProcessServer], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = start(servers, data_dir)
    world = populate(first.client())
    first.stop(signal.SIGTERM)

    second = start(servers, data_dir)
    kms = second.client()
    assert_world_survived(kms, world)
    key = kms.create_key(Description="acknowledged just before kill -9")["KeyMetadata"]
    world.keys[key["KeyId"]] = key
    world.states[key["KeyId"]] = "Enabled"
    sealed = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"acked", EncryptionContext={"k": "9"})
    world.sealed.append(Sealed(sealed["CiphertextBlob"], b"acked", key["Arn"], {"k": "9"}))
    assert second.stop(signal.SIGKILL) == -signal.SIGKILL

    third = start(servers, data_dir)
    assert_world_survived(third.client(), world)


def test_every_write_type_and_a_concurrent_burst_acknowledged_before_kill_9_survive(
    servers: list[ProcessServer], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = start(servers, data_dir)
    kms = first.client(config=Config(retries={"max_attempts": 1}, max_pool_connections=16))
    world = populate(kms)

    def create_and_encrypt(i: int) -> tuple[dict[str, Any], Sealed]:
        key = kms.create_key(Description=f"burst {i}")["KeyMetadata"]
        plaintext = f"burst message {i}".encode()
        blob = kms.encrypt(KeyId=key["Arn"], Plaintext=plaintext)["CiphertextBlob"]
        return key, Sealed(blob, plaintext, key["Arn"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        acknowledged = list(pool.map(create_and_encrypt, range(32)))
    for key, sealed in acknowledged:
        world.keys[key["KeyId"]] = key
        world.states[key["KeyId"]] = "Enabled"
        world.sealed.append(sealed)
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL

    second = start(servers, data_dir)
    assert_world_survived(second.client(), world)
