"""The KMS operations keyledger answers, by X-Amz-Target operation name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from api.ops import aliases, crypto, grants, keys, lifecycle, tags, usage
from api.services import Call

Operation = Callable[[Call], Awaitable[dict[str, Any]]]

OPERATIONS: dict[str, Operation] = {
    **keys.OPERATIONS,
    **crypto.OPERATIONS,
    **aliases.OPERATIONS,
    **tags.OPERATIONS,
    **lifecycle.OPERATIONS,
    **grants.OPERATIONS,
    **usage.OPERATIONS,
}
