"""Grant commands of the KeyLedger: CreateGrant, RetireGrant, RevokeGrant.

They run on the writer thread like every command, so a grant's events are durable (and
are its audit record) before the answer, and limits are checked on the write model: two
requests racing for the last grant slot of a key never both succeed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain.authorization import identity_of
from domain.cmk import Cmk
from domain.errors import (
    DryRunOperationError,
    InvalidGrantTokenError,
    ValidationError,
)
from domain.grant_tokens import NONCE_BYTES, GrantTokens
from domain.grants import (
    EQUALS,
    SUBSET,
    Grant,
    GrantLimits,
    GrantRequest,
    check_grant_id,
    may_retire,
)
from domain.identity import Identity
from domain.values import KeyState, RequestContext
from eventstore.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from eventsourcing.domain import Aggregate


def grant_conditions(request: GrantRequest, identity: Identity) -> dict[str, Any]:
    """Condition keys of a CreateGrant request (conditions-kms.html: kms:GranteePrincipal,
    kms:RetiringPrincipal, kms:GrantOperations, kms:GrantConstraintType,
    kms:GrantIsForAWSResource)."""
    constraints = request.constraints or {}
    constraint_types = [kind for kind in (EQUALS, SUBSET) if kind in constraints]
    return {
        "kms:GranteePrincipal": request.grantee_principal,
        "kms:RetiringPrincipal": request.retiring_principal,
        "kms:GrantOperations": list(request.operations),
        "kms:GrantConstraintType": constraint_types or None,
        "kms:GrantIsForAWSResource": identity.via_service is not None,
    }


class GrantCommands:
    """Mixed into KeyLedger."""

    if TYPE_CHECKING:  # provided by KeyLedger
        tokens: GrantTokens
        grant_limits: GrantLimits

        def locate(
            self,
            get: Callable[[UUID], Aggregate | None],
            ctx: RequestContext,
            key_id: str,
            *,
            allow_alias: bool = True,
        ) -> tuple[Cmk, str | None]: ...

        def authorize(
            self,
            cmk: Cmk,
            ctx: RequestContext,
            operation: str,
            request_alias: str | None = None,
            *,
            grant_filter: Callable[[Grant], bool] | None = None,
        ) -> None: ...

    def create_grant(
        self,
        uow: UnitOfWork,
        ctx: RequestContext,
        key_id: str,
        request: GrantRequest,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """A principal allowed CreateGrant only by a grant may create grants no broader
        than that grant (create-grant-overview.html#grant-creategrant)."""
        cmk, _ = self.locate(uow.get, ctx, key_id, allow_alias=False)
        ctx = ctx.with_conditions(**grant_conditions(request, identity_of(ctx)))
        self.authorize(
            cmk,
            ctx,
            "CreateGrant",
            grant_filter=lambda grant: grant.no_broader(request.operations, request.constraints),
        )
        if dry_run:
            cmk.check_grant(request, self.grant_limits)
            raise DryRunOperationError
        grant_id = cmk.create_grant(request, os.urandom(32).hex(), self.grant_limits, ctx, uow.now)
        token = self.tokens.issue(cmk.id, grant_id, os.urandom(NONCE_BYTES))
        return {"KeyArn": cmk.arn, "GrantId": grant_id, "GrantToken": token}

    def retire_grant(
        self,
        uow: UnitOfWork,
        ctx: RequestContext,
        *,
        grant_token: str | None = None,
        key_id: str | None = None,
        grant_id: str | None = None,
        dry_run: bool = False,
    ) -> str:
        """RetireGrant by token, or by KeyId and GrantId. The grant's retiring principal,
        its grantee when it allows RetireGrant, and the key's account may retire it
        (grant-delete.html); otherwise a policy must allow kms:RetireGrant."""
        cmk, grant = self._retiring(uow, ctx, grant_token, key_id, grant_id)
        if not may_retire(grant, ctx.principal or "", cmk.account):
            self.authorize(cmk, ctx, "RetireGrant", grant_filter=lambda _grant: False)
        if dry_run:
            raise DryRunOperationError
        cmk.retire_grant(grant.grant_id, ctx, uow.now)
        return cmk.arn

    def _retiring(
        self,
        uow: UnitOfWork,
        ctx: RequestContext,
        grant_token: str | None,
        key_id: str | None,
        grant_id: str | None,
    ) -> tuple[Cmk, Grant]:
        if grant_token is not None:
            ref = self.tokens.read(grant_token)
            cmk = uow.get(ref.key_id)
            if not isinstance(cmk, Cmk) or cmk.region != ctx.region:
                raise InvalidGrantTokenError
            if cmk.state is KeyState.DELETED or ref.grant_id not in cmk.grants:
                raise InvalidGrantTokenError  # retired, revoked, or gone with its key
            return cmk, cmk.grants[ref.grant_id]
        if key_id is None or grant_id is None:
            raise ValidationError(
                "Either the GrantToken or both the KeyId and the GrantId must be specified."
            )
        check_grant_id(grant_id)
        cmk, _ = self.locate(uow.get, ctx, key_id, allow_alias=False)
        return cmk, cmk.grant(grant_id)

    def revoke_grant(
        self,
        uow: UnitOfWork,
        ctx: RequestContext,
        key_id: str,
        grant_id: str,
        dry_run: bool = False,
    ) -> str:
        """RevokeGrant is for key administrators: the key policy (and IAM) decide."""
        cmk, _ = self.locate(uow.get, ctx, key_id, allow_alias=False)
        self.authorize(cmk, ctx, "RevokeGrant")
        check_grant_id(grant_id)
        cmk.grant(grant_id)
        if dry_run:
            raise DryRunOperationError
        cmk.revoke_grant(grant_id, ctx, uow.now)
        return cmk.arn
