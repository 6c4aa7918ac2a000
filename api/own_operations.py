"""keyledger's own JSON 1.1 operations on the KMS port (``KeyledgerAudit.*``,
``KeyledgerUsage.*``): each is recorded as ``<service>:<Operation>`` and takes a JSON object."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from api.services import Call
from domain.errors import UnsupportedOperationError, ValidationError

Handler = Callable[[Call, dict[str, Any]], Awaitable[dict[str, Any]]]


def own_operation(
    call: Call, service: str, operation: str, body: object, operations: Mapping[str, Handler]
) -> tuple[Handler, dict[str, Any]]:
    """Name the call for its record, then find its handler and check its body."""
    call.operation = f"{service}:{operation}"
    call.ctx = replace(call.context, operation=call.operation)
    handler = operations.get(operation)
    if handler is None:
        raise UnsupportedOperationError(f"{operation} is not a keyledger {service} operation.")
    if not isinstance(body, dict):
        raise ValidationError("The request body must be a JSON object.")
    call.params = body
    return handler, body
