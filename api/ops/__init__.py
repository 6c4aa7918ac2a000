"""The KMS operations keyledger answers, by X-Amz-Target operation name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from api.ops import (
    agreement,
    aliases,
    crypto,
    grants,
    imports,
    key_pairs,
    keys,
    lifecycle,
    mac,
    signing,
    tags,
    usage,
)
from api.services import Call

Operation = Callable[[Call], Awaitable[dict[str, Any]]]

OPERATIONS: dict[str, Operation] = {
    **keys.OPERATIONS,
    **crypto.OPERATIONS,
    **aliases.OPERATIONS,
    **tags.OPERATIONS,
    **lifecycle.OPERATIONS,
    **grants.OPERATIONS,
    **imports.OPERATIONS,
    **signing.OPERATIONS,
    **key_pairs.OPERATIONS,
    **mac.OPERATIONS,
    **agreement.OPERATIONS,
    **usage.OPERATIONS,
}
