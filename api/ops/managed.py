"""AWS managed keys come into being on first use of their predefined alias."""

from __future__ import annotations

import functools

from api.services import Call
from domain import managed_keys
from domain.errors import KmsError
from domain.values import parse_key_ref


async def ensure_managed_key(call: Call, key_id: str | None) -> None:
    """DescribeKey or a cryptographic call naming alias/aws/<service> creates that AWS
    managed key if it does not exist yet (DescribeKey API reference). The creation is
    recorded by its own events; the request itself is recorded as usual."""
    if key_id is None or "alias/aws/" not in key_id:
        return
    try:
        ref = parse_key_ref(key_id, call.context)
    except KmsError:
        return  # the operation itself reports a malformed KeyId
    if ref.alias_name is None or managed_keys.service_of(ref.alias_name) is None:
        return
    if ref.account != call.context.account:
        return
    ledger = call.services.ledger
    job = functools.partial(ledger.ensure_managed_key, ctx=call.context, alias_name=ref.alias_name)
    await call.services.commands(job)
