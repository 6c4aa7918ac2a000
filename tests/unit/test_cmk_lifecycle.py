"""Rotation and deletion rules of the Cmk aggregate, with a frozen clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.cmk import Cmk
from domain.cmk_lifecycle import AUTOMATIC, ON_DEMAND
from domain.errors import (
    DisabledError,
    InvalidStateError,
    LimitExceededError,
    ValidationError,
)
from domain.values import KeyState, RequestContext
from tests.unit.test_cmk import CTX, NOW, new_key, replay

DAY = timedelta(days=1)
SERVICE = RequestContext.service("000000000000", "us-east-1", "svc-1")


def material(n: int) -> tuple[str, bytes]:
    return f"{n:064x}", bytes([n]) * 40


def test_enabling_rotation_sets_the_next_date_one_period_ahead() -> None:
    cmk = new_key()
    cmk.enable_rotation(90, CTX, NOW)
    assert cmk.rotation_status()["NextRotationDate"] == NOW + 90 * DAY
    assert cmk.rotation_status()["KeyRotationEnabled"] is True
    cmk.enable_rotation(90, CTX, NOW)  # same period again: nothing to record
    assert [type(e).__name__ for e in cmk.pending_events] == ["Created", "RotationEnabled"]


def test_rotation_is_due_only_for_enabled_keys_past_their_date() -> None:
    cmk = new_key()
    cmk.enable_rotation(90, CTX, NOW)
    assert not cmk.rotation_due(NOW + 90 * DAY - timedelta(seconds=1))
    assert cmk.rotation_due(NOW + 90 * DAY)
    cmk.disable(CTX, NOW)
    assert not cmk.rotation_due(NOW + 100 * DAY)


def test_automatic_rotation_advances_the_schedule_and_on_demand_does_not() -> None:
    cmk = new_key()
    cmk.enable_rotation(90, CTX, NOW)
    cmk.rotate(ON_DEMAND, *material(1), CTX, NOW + DAY)
    assert cmk.next_rotation == NOW + 90 * DAY
    cmk.rotate(AUTOMATIC, *material(2), SERVICE, NOW + 91 * DAY)
    assert cmk.next_rotation == NOW + 181 * DAY
    assert cmk.current_material_id == material(2)[0]
    assert set(cmk.materials) == {"ab" * 32, material(1)[0], material(2)[0]}
    assert [r["type"] for r in cmk.rotations] == [ON_DEMAND, AUTOMATIC]
    assert cmk.pending_events[-1].request["event_type"] == "AwsServiceEvent"
    assert replay(cmk).rotation_status() == cmk.rotation_status()


def test_an_automatic_rotation_that_is_not_due_is_refused() -> None:
    cmk = new_key()
    cmk.enable_rotation(90, CTX, NOW)
    with pytest.raises(InvalidStateError):
        cmk.rotate(AUTOMATIC, *material(1), SERVICE, NOW + DAY)


def test_the_twenty_sixth_on_demand_rotation_is_refused_with_aws_text() -> None:
    cmk = new_key()
    for n in range(25):
        cmk.rotate(ON_DEMAND, *material(n + 1), CTX, NOW)
    with pytest.raises(LimitExceededError) as refused:
        cmk.check_on_demand_rotation()
    assert refused.value.message.endswith(f"for this key: {cmk.arn}")


def test_rotation_commands_need_an_enabled_key() -> None:
    cmk = new_key()
    cmk.disable(CTX, NOW)
    with pytest.raises(DisabledError):
        cmk.enable_rotation(365, CTX, NOW)
    with pytest.raises(DisabledError):
        cmk.check_on_demand_rotation()


def test_scheduling_deletion_sets_the_date_and_a_second_schedule_is_refused() -> None:
    cmk = new_key()
    cmk.schedule_deletion(7, CTX, NOW)
    assert (cmk.state, cmk.deletion_date) == (KeyState.PENDING_DELETION, NOW + 7 * DAY)
    assert cmk.metadata()["Enabled"] is False
    assert cmk.metadata()["PendingDeletionWindowInDays"] == 7
    with pytest.raises(InvalidStateError, match=r"is pending deletion\."):
        cmk.schedule_deletion(7, CTX, NOW)


@pytest.mark.parametrize("days", [6, 31])
def test_the_waiting_period_is_seven_to_thirty_days(days: int) -> None:
    with pytest.raises(ValidationError, match="pendingWindowInDays"):
        new_key().schedule_deletion(days, CTX, NOW)


def test_cancelling_deletion_leaves_the_key_disabled() -> None:
    cmk = new_key()
    with pytest.raises(InvalidStateError, match=r"is not pending deletion\."):
        cmk.cancel_deletion(CTX, NOW)
    cmk.schedule_deletion(30, CTX, NOW)
    cmk.cancel_deletion(CTX, NOW + DAY)
    assert (cmk.state, cmk.deletion_date) == (KeyState.DISABLED, None)


def test_deletion_happens_only_once_the_waiting_period_is_over() -> None:
    cmk = new_key()
    cmk.schedule_deletion(7, CTX, NOW)
    assert not cmk.deletion_due(NOW + 7 * DAY - timedelta(seconds=1))
    with pytest.raises(InvalidStateError):
        cmk.delete(SERVICE, NOW + DAY)
    cmk.delete(SERVICE, NOW + 7 * DAY)
    assert cmk.state is KeyState.DELETED
    assert isinstance(cmk.pending_events[-1], Cmk.Deleted)
    assert replay(cmk).state is KeyState.DELETED


def test_a_key_pending_deletion_refuses_cryptographic_use() -> None:
    cmk = new_key()
    cmk.schedule_deletion(7, CTX, NOW)
    with pytest.raises(InvalidStateError) as refused:
        cmk.check_usable_for("Encrypt")
    assert refused.value.message == f"{cmk.arn} is pending deletion."
