"""KeyLedger on the in-memory store and on real SQLite files."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from domain.cmk import Cmk
from domain.errors import AlreadyExistsError, NotFoundError
from domain.grant_tokens import GrantTokens
from domain.values import KeyState
from eventstore.clock import system_clock
from eventstore.keystore import Keystore
from eventstore.ledger import Done, KeyLedger
from tests.integration.stores import sqlite_env
from tests.unit.test_cmk import CTX

TOKENS = GrantTokens(b"t" * 32)


@pytest.fixture(params=["memory", "sqlite"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "memory":
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    return sqlite_env(tmp_path / "keyledger.db")


@pytest.fixture
def ledger(env: dict[str, str], tmp_path: Path) -> Iterator[KeyLedger]:
    app = KeyLedger(env, Keystore(str(tmp_path / "keystore.db"), b"r" * 32), system_clock, TOKENS)
    yield app
    app.close()


def create(ledger: KeyLedger, **kwargs: object) -> dict[str, object]:
    args = {"ctx": CTX, "description": "", "policy": None, "tags": {}} | kwargs
    return ledger.run(functools.partial(ledger.create_key, **args))


def test_commands_change_the_key_and_a_fresh_ledger_replays_it(
    ledger: KeyLedger, env: dict[str, str], tmp_path: Path
) -> None:
    key_id = create(ledger, description="first")["KeyId"]
    ledger.run(functools.partial(ledger.disable_key, ctx=CTX, key_id=key_id))
    ledger.run(functools.partial(ledger.tag_resource, ctx=CTX, key_id=key_id, tags={"a": "b"}))
    cmk = ledger.read_key(CTX, str(key_id), "DescribeKey")
    assert cmk.state is KeyState.DISABLED
    if env["PERSISTENCE_MODULE"] == "eventsourcing.popo":
        return
    reopened = KeyLedger(env, ledger.keystore, system_clock, TOKENS)
    again = reopened.read_key(CTX, str(key_id), "DescribeKey")
    assert again.metadata() == cmk.metadata()
    assert (again.tags, again.version) == ({"a": "b"}, 3)
    reopened.close()


def test_one_batch_can_touch_one_key_several_times(ledger: KeyLedger) -> None:
    key_id = create(ledger)["KeyId"]
    jobs = [
        functools.partial(ledger.disable_key, ctx=CTX, key_id=key_id),
        functools.partial(ledger.tag_resource, ctx=CTX, key_id=key_id, tags={"x": "1"}),
        functools.partial(ledger.enable_key, ctx=CTX, key_id="not-a-key"),
        functools.partial(ledger.enable_key, ctx=CTX, key_id=key_id),
    ]
    outcomes = ledger.run_batch(jobs)
    assert [type(o) for o in outcomes] == [Done, Done, NotFoundError, Done]
    assert all(o.recorded for o in outcomes if isinstance(o, Done))
    cmk = ledger.read_key(CTX, str(key_id), "DescribeKey")
    assert (cmk.version, cmk.state, cmk.tags) == (4, KeyState.ENABLED, {"x": "1"})


def test_two_ledgers_on_one_store_do_not_lose_each_others_writes(
    env: dict[str, str], tmp_path: Path
) -> None:
    if env["PERSISTENCE_MODULE"] == "eventsourcing.popo":
        pytest.skip("two processes share only a real store")
    keystore = Keystore(str(tmp_path / "keystore.db"), b"r" * 32)
    first, second = (KeyLedger(env, keystore, system_clock, TOKENS) for _ in range(2))
    key_id = create(first)["KeyId"]
    second.read_key(CTX, str(key_id), "DescribeKey")  # warm its cache at version 1
    first.run(functools.partial(first.tag_resource, ctx=CTX, key_id=key_id, tags={"a": "1"}))
    second.run(functools.partial(second.tag_resource, ctx=CTX, key_id=key_id, tags={"b": "2"}))
    cmk = first.read_key(CTX, str(key_id), "DescribeKey")
    assert (cmk.version, cmk.tags) == (3, {"a": "1", "b": "2"})


def test_an_alias_name_is_unique_per_account_and_region(ledger: KeyLedger) -> None:
    key_id = create(ledger)["KeyId"]
    ledger.run(
        functools.partial(ledger.create_alias, ctx=CTX, alias_name="alias/a", target_key_id=key_id)
    )
    with pytest.raises(AlreadyExistsError):
        ledger.run(
            functools.partial(
                ledger.create_alias, ctx=CTX, alias_name="alias/a", target_key_id=key_id
            )
        )
    cmk = ledger.read_key(CTX, "alias/a", "DescribeKey")
    assert isinstance(cmk, Cmk)
    assert str(cmk.id) == key_id


def test_the_keystore_cache_is_bounded_and_still_answers_every_key(tmp_path: Path) -> None:
    keystore = Keystore(str(tmp_path / "keystore.db"), b"r" * 32, cache_size=4)
    made = {}
    for n in range(10):
        key_id = uuid4()
        made[key_id, f"{n:032x}"] = keystore.new_wrapping_key(key_id, f"{n:032x}")
    keystore.store_staged([f"{n:032x}" for n in range(2, 10)])  # 0, 1: staged, not saved
    assert len(keystore._cache) <= 4
    for (key_id, material_id), wrapping_key in made.items():
        assert keystore.wrapping_key(key_id, material_id) == wrapping_key
    assert keystore.material_ids() == {f"{n:032x}" for n in range(2, 10)}
