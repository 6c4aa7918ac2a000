"""Cmk aggregate: given events, when a command, then events or a KMS error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from domain.cmk import Cmk
from domain.errors import DisabledError, InvalidStateError, TagError
from domain.values import KeyState, RequestContext

CTX = RequestContext(
    principal="arn:aws:iam::000000000000:root",
    account="000000000000",
    region="us-east-1",
    request_id="req-1",
    source_ip="127.0.0.1",
    user_agent="pytest",
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def new_key(**overrides: object) -> Cmk:
    args: dict[str, object] = {
        "key_id": uuid4(),
        "ctx": CTX,
        "now": NOW,
        "description": "d",
        "policy": "{}",
        "tags": {"team": "a"},
        "material_id": "ab" * 32,
        "wrapped_material": b"\x01wrapped",
    }
    args.update(overrides)
    return Cmk.create(**args)  # type: ignore[arg-type]


def replay(cmk: Cmk) -> Cmk:
    """Rebuild an aggregate from the events it has recorded so far."""
    events = cmk.collect_events()
    rebuilt = None
    for event in events:
        rebuilt = event.mutate(rebuilt)
    assert isinstance(rebuilt, Cmk)
    return rebuilt


def test_create_records_one_created_event_with_the_request_context() -> None:
    cmk = new_key()
    (event,) = cmk.pending_events
    assert isinstance(event, Cmk.Created)
    assert event.request == CTX.as_dict()
    assert event.timestamp == NOW
    assert cmk.state is KeyState.ENABLED
    assert cmk.metadata()["Arn"] == f"arn:aws:kms:us-east-1:000000000000:key/{cmk.id}"


def test_disable_then_enable_records_both_and_replays_to_the_same_state() -> None:
    cmk = new_key()
    cmk.disable(CTX, NOW + timedelta(seconds=1))
    cmk.enable(CTX, NOW + timedelta(seconds=2))
    cmk.tag({"env": "prod"}, CTX, NOW)
    cmk.untag(["team"], CTX, NOW)
    expected = cmk.metadata() | {"tags": dict(cmk.tags)}
    names = [type(e).__name__ for e in cmk.pending_events]
    assert names == ["Created", "Disabled", "Enabled", "TagsChanged", "TagsChanged"]
    rebuilt = replay(cmk)
    assert rebuilt.metadata() | {"tags": dict(rebuilt.tags)} == expected
    assert rebuilt.tags == {"env": "prod"}


def test_disabling_a_disabled_key_records_nothing() -> None:
    cmk = new_key()
    cmk.disable(CTX, NOW)
    cmk.collect_events()
    cmk.disable(CTX, NOW)
    assert cmk.pending_events == []


def test_a_disabled_key_refuses_cryptographic_use_with_aws_text() -> None:
    cmk = new_key()
    cmk.disable(CTX, NOW)
    with pytest.raises(DisabledError) as refused:
        cmk.check_usable_for("Encrypt")
    assert refused.value.message == f"{cmk.arn} is disabled."


def test_a_key_pending_deletion_refuses_enable_and_tagging() -> None:
    cmk = new_key()
    cmk.schedule_deletion(30, CTX, NOW)
    with pytest.raises(InvalidStateError, match="is pending deletion"):
        cmk.enable(CTX, NOW)
    with pytest.raises(InvalidStateError):
        cmk.tag({"a": "b"}, CTX, NOW)


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({"aws:x": "y"}, "Tags beginning with aws: are reserved"),
        ({f"k{i}": "v" for i in range(50)}, "Too many tags"),
    ],
)
def test_tag_rules_answer_tag_exception(tags: dict[str, str], message: str) -> None:
    cmk = new_key()
    with pytest.raises(TagError) as refused:
        cmk.tag(tags, CTX, NOW)
    assert refused.value.message == message
    assert len(cmk.pending_events) == 1  # only Created: a refused command records nothing


def test_metadata_has_every_member_aws_returns_for_a_symmetric_key() -> None:
    metadata = new_key().metadata()
    assert metadata["KeySpec"] == metadata["CustomerMasterKeySpec"] == "SYMMETRIC_DEFAULT"
    assert metadata["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert metadata["KeyManager"] == "CUSTOMER"
    assert metadata["MultiRegion"] is False
    assert metadata["CurrentKeyMaterialId"] == "ab" * 32
    assert metadata["CreationDate"] == NOW
