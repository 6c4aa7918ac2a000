"""DryRun: every check runs, then the request fails (KMS "Testing your permissions" guide)."""

from __future__ import annotations

from api.services import Call
from domain.errors import DryRunOperationError


def check_dry_run(call: Call) -> None:
    if call.params.get("DryRun"):
        raise DryRunOperationError
