"""What every operation on one key's material does first: find the key the caller may use
for the operation, note it for the record, unwrap its material; and DryRun."""

from __future__ import annotations

from api.services import Call
from domain.cmk import Cmk
from domain.errors import DryRunOperationError


def key_in_use(call: Call, operation: str) -> tuple[Cmk, bytes]:
    """The request's KeyId, usable for ``operation`` (key state, key usage, policy), and
    its current material in the clear, for this call only."""
    keys = call.services.keys
    cmk = keys.usable_key(call.context, call.params["KeyId"], operation)
    call.key_arn = cmk.arn
    return cmk, keys.current_material(cmk)


def check_dry_run(call: Call) -> None:
    """DryRun: every check runs, then the request fails (KMS "Testing your permissions")."""
    if call.params.get("DryRun"):
        raise DryRunOperationError
