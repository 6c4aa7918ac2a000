"""Rotation and scheduled deletion rules of the Cmk aggregate (its lifecycle over time)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from domain.errors import (
    DisabledError,
    InvalidStateError,
    LimitExceededError,
    UnsupportedOperationError,
    ValidationError,
)
from domain.values import (
    AWS_KMS,
    EXTERNAL,
    MAX_ON_DEMAND_ROTATIONS,
    PENDING_WINDOW_DAYS,
    SYMMETRIC_DEFAULT,
    KeyState,
    RequestContext,
)

AUTOMATIC, ON_DEMAND = "AUTOMATIC", "ON_DEMAND"


class Lifecycle:
    """Mixed into Cmk: each command checks the KMS rule, then records one of Cmk's
    events (RotationEnabled, Rotated, DeletionScheduled, ...)."""

    if TYPE_CHECKING:  # provided by Cmk (typed loosely: this module imports no Cmk)
        arn: str
        key_spec: str
        origin: str
        state: KeyState
        rotation_period_days: int | None
        next_rotation: datetime | None
        rotations: list[dict[str, Any]]
        deletion_date: datetime | None
        RotationEnabled: type[Any]
        RotationDisabled: type[Any]
        Rotated: type[Any]
        DeletionScheduled: type[Any]
        DeletionCancelled: type[Any]
        Deleted: type[Any]

        def check_not_pending(self) -> None: ...

        def check_not_pending_deletion(self) -> None: ...

        def pending_rotation_material(self) -> str | None: ...

        def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None: ...

    # -- rotation (https://docs.aws.amazon.com/kms/latest/developerguide/rotate-keys.html) --

    def check_can_rotate(self, *, imported: bool = False) -> None:
        """Rotation is for symmetric encryption keys with AWS_KMS material; others answer
        UnsupportedOperationException (AWS sends it with no message for key specs).
        On-demand rotation and ListKeyRotations also take symmetric EXTERNAL keys
        (``imported``; rotate-keys-import.html)."""
        if self.key_spec != SYMMETRIC_DEFAULT:
            raise UnsupportedOperationError("")
        if self.origin != AWS_KMS and not (imported and self.origin == EXTERNAL):
            raise UnsupportedOperationError(
                f"{self.arn} origin is {self.origin} which is not valid for this operation."
            )

    def check_rotation_allowed(self, *, imported: bool = False) -> None:
        """Enable/DisableKeyRotation and RotateKeyOnDemand need an Enabled key."""
        self.check_can_rotate(imported=imported)
        if self.state is KeyState.DISABLED:
            raise DisabledError(f"{self.arn} is disabled.")
        self.check_not_pending()

    def enable_rotation(self, period_days: int, ctx: RequestContext, now: datetime) -> None:
        self.check_rotation_allowed()
        if self.rotation_period_days == period_days:
            return
        self.trigger_event(
            self.RotationEnabled,
            timestamp=now,
            request=ctx.as_dict(),
            period_days=period_days,
            next_rotation=now + timedelta(days=period_days),
        )

    def disable_rotation(self, ctx: RequestContext, now: datetime) -> None:
        self.check_rotation_allowed()
        if self.rotation_period_days is not None:
            self.trigger_event(self.RotationDisabled, timestamp=now, request=ctx.as_dict())

    @property
    def on_demand_rotations(self) -> int:
        return sum(1 for rotation in self.rotations if rotation["type"] == ON_DEMAND)

    def check_on_demand_rotation(self) -> None:
        """Imported keys rotate to material imported beforehand as NEW_KEY_MATERIAL,
        waiting in PENDING_ROTATION (rotate-keys-import.html)."""
        self.check_rotation_allowed(imported=True)
        if self.origin == EXTERNAL and self.pending_rotation_material() is None:
            raise UnsupportedOperationError(
                f"{self.arn} has no imported key material in PENDING_ROTATION state."
            )
        if self.on_demand_rotations >= MAX_ON_DEMAND_ROTATIONS:
            raise LimitExceededError(
                "The on-demand rotations limit has been reached for the given keyId. "
                f"No more on-demand rotations can be performed for this key: {self.arn}"
            )

    def rotation_due(self, now: datetime) -> bool:
        """Automatic rotation skips keys that are not Enabled; a key enabled again after
        its date passed rotates at the next opportunity."""
        return (
            self.state is KeyState.ENABLED
            and self.next_rotation is not None
            and self.next_rotation <= now
        )

    def rotate(
        self,
        rotation_type: str,
        material_id: str,
        wrapped_material: bytes,
        ctx: RequestContext,
        now: datetime,
    ) -> None:
        """Record a new current material version. On demand, the automatic schedule
        does not move (RotateKeyOnDemand reference); automatically, it advances."""
        next_rotation = None
        if rotation_type == AUTOMATIC:
            if not self.rotation_due(now):
                raise InvalidStateError(f"{self.arn} is not due for rotation.")
            next_rotation = now + timedelta(days=self.rotation_period_days or 365)
        else:
            self.check_on_demand_rotation()
        self.trigger_event(
            self.Rotated,
            timestamp=now,
            request=ctx.as_dict(),
            material_id=material_id,
            wrapped_material=wrapped_material,
            rotation_type=rotation_type,
            next_rotation=next_rotation,
        )

    # -- deletion (https://docs.aws.amazon.com/kms/latest/developerguide/deleting-keys.html) --

    def schedule_deletion(self, window_days: int, ctx: RequestContext, now: datetime) -> None:
        self.check_not_pending_deletion()
        low, high, _ = PENDING_WINDOW_DAYS
        if not low <= window_days <= high:
            bound = (
                f"greater than or equal to {low}"
                if window_days < low
                else (f"less than or equal to {high}")
            )
            raise ValidationError(
                f"1 validation error detected: Value '{window_days}' at 'pendingWindowInDays' "
                f"failed to satisfy constraint: Member must have value {bound}"
            )
        self.trigger_event(
            self.DeletionScheduled,
            timestamp=now,
            request=ctx.as_dict(),
            deletion_date=now + timedelta(days=window_days),
            pending_window_days=window_days,
        )

    def cancel_deletion(self, ctx: RequestContext, now: datetime) -> None:
        if self.state is not KeyState.PENDING_DELETION:
            raise InvalidStateError(f"{self.arn} is not pending deletion.")
        self.trigger_event(self.DeletionCancelled, timestamp=now, request=ctx.as_dict())

    def deletion_due(self, now: datetime) -> bool:
        return (
            self.state is KeyState.PENDING_DELETION
            and self.deletion_date is not None
            and self.deletion_date <= now
        )

    def delete(self, ctx: RequestContext, now: datetime) -> None:
        if not self.deletion_due(now):
            raise InvalidStateError(f"{self.arn} is not due for deletion.")
        self.trigger_event(self.Deleted, timestamp=now, request=ctx.as_dict())
