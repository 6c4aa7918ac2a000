"""Key policy and IAM policy evaluation for KMS: grammar, matching, conditions, decisions.

Pure: the request (principal, action, resource, condition context incl. ``aws:CurrentTime``)
is the only input. Rules and their sources (AWS documentation pages):

- grammar: IAM User Guide "IAM JSON policy element reference" (``reference_policies_elements_*``);
- conditions: "IAM JSON policy elements: Condition operators"
  (``reference_policies_elements_condition_operators``), "Condition with multiple context keys
  or values" and "Single-valued vs. multivalued context keys";
- decisions: "Policy evaluation logic" (``reference_policies_evaluation-logic``) and the KMS
  Developer Guide pages "Determining access to KMS keys" (``determining-access``), "Default key
  policy" (``key-policy-default``) and "Allowing users in other accounts to use a KMS key"
  (``key-policy-modifying-external-accounts``);
- KMS specifics: "AWS KMS condition keys" (``conditions-kms``), "Quotas" (32 KB key policies).

Not supported: policy variables such as ``${aws:username}`` are compared literally.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum, StrEnum
from functools import lru_cache
from typing import Any

from domain.errors import LimitExceededError, MalformedPolicyDocumentError

ConditionValue = str | bool | int | float | datetime | Sequence[str] | None
Scalar = str | bool | int | float | datetime

INVALID_PRINCIPALS = "Policy contains a statement with one or more invalid principals."
INVALID_ACTIONS = "Policy contains a statement with one or more invalid actions."
LOCKOUT = "The new key policy will not allow you to update the key policy in the future."
DENY_IN_RESOURCE_POLICY = "an explicit deny in a resource-based policy"
DENY_IN_IDENTITY_POLICY = "an explicit deny in an identity-based policy"

_VERSIONS = ("2012-10-17", "2008-10-17")
_POLICY_ELEMENTS = frozenset({"Version", "Id", "Statement"})
_STATEMENT_ELEMENTS = frozenset(
    {
        *("Sid", "Effect", "Condition"),
        *("Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource"),
    }
)
_ACCOUNT_ID = re.compile(r"\d{12}")
_ROOT_ARN = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):root")
_SESSION_ARN = re.compile(r"arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/.+")
_EPOCH = re.compile(r"-?\d+(\.\d+)?")


# --------------------------------------------------------------------------- request / outcome


@dataclass(frozen=True)
class Principal:
    arn: str  # "arn:aws:iam::111122223333:root" | ":user/alice" | ":role/app" | "s3.amazonaws.com"
    account: str  # 12 digits ("" for a service principal)
    is_service: bool = False


@dataclass(frozen=True)
class AccessRequest:
    principal: Principal
    action: str  # "kms:Encrypt"
    resource: str  # the key ARN (or the alias ARN for alias checks)
    resource_account: str
    context: Mapping[str, ConditionValue]  # condition key -> value; names are case-insensitive


class Decision(StrEnum):
    ALLOW = "Allow"
    EXPLICIT_DENY = "ExplicitDeny"
    IMPLICIT_DENY = "ImplicitDeny"


@dataclass(frozen=True)
class Outcome:
    allowed: bool
    reason: str  # the tail of AWS's AccessDeniedException text ("" when allowed)

    @property
    def decision(self) -> Decision:
        if self.allowed:
            return Decision.ALLOW
        if self.reason.startswith("an explicit deny"):
            return Decision.EXPLICIT_DENY
        return Decision.IMPLICIT_DENY

    def message(self, request: AccessRequest) -> str:
        """AccessDeniedException text as KMS words it ("because ..." / "with an explicit deny")."""
        if self.allowed:
            return ""
        joiner = "with" if self.decision is Decision.EXPLICIT_DENY else "because"
        return (
            f"User: {request.principal.arn} is not authorized to perform: {request.action} "
            f"on resource: {request.resource} {joiner} {self.reason}"
        )


def no_policy_allows(kind: str, action: str) -> str:
    """``kind`` is "identity" or "resource"."""
    return f"no {kind}-based policy allows the {action} action"


# --------------------------------------------------------------------------- parsed policy


@dataclass(frozen=True)
class Principals:
    """One Principal/NotPrincipal block; account ids and root ARNs both land in ``accounts``."""

    wildcard: bool = False
    accounts: frozenset[str] = frozenset()
    arns: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()  # lower case
    others: frozenset[str] = frozenset()  # Federated / CanonicalUser: never match a KMS caller


@dataclass(frozen=True)
class Condition:
    operator: str  # as written, e.g. "ForAnyValue:StringLikeIfExists"
    test: str  # family in _TESTS, e.g. "StringLike", or "Null"
    negated: bool
    qualifier: str  # "", "ForAnyValue" or "ForAllValues"
    if_exists: bool
    key: str  # lower case: condition key names are case-insensitive
    values: tuple[Any, ...]  # parsed per family (str, Decimal, datetime, bool, ip network)


@dataclass(frozen=True)
class Statement:
    effect: str  # "Allow" | "Deny"
    actions: tuple[str, ...]
    not_action: bool = False
    principals: Principals | None = None  # None: no Principal element (identity policy)
    not_principal: bool = False
    resources: tuple[str, ...] | None = None  # None: no Resource element
    not_resource: bool = False
    conditions: tuple[Condition, ...] = ()
    sid: str | None = None


@dataclass(frozen=True)
class Policy:
    statements: tuple[Statement, ...]
    version: str | None = None
    id: str | None = None


# --------------------------------------------------------------------------- values


def _request_values(value: object) -> list[Scalar]:
    """A context value as a list: absent (None) and empty lists are both "no value"."""
    if value is None:
        return []
    if isinstance(value, str | bool | int | float | datetime):
        return [value]
    if isinstance(value, Sequence):
        return [v for v in value if v is not None]
    return [str(value)]


def _as_text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _to_decimal(value: object) -> Decimal:
    """Raises ValueError for anything that is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError(value)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(value) from None
    if not number.is_finite():
        raise ValueError(value)
    return number


def _to_datetime(value: object) -> datetime:
    """ISO 8601 or epoch seconds (Condition operators: date); naive times are UTC."""
    if isinstance(value, str) and _EPOCH.fullmatch(value.strip()):
        value = Decimal(value.strip())
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        try:
            moment = datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError):
            raise ValueError(value) from None
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value.strip())
    else:
        raise ValueError(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(value)


def _to_network(value: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if not isinstance(value, str):
        raise ValueError(value)
    return ipaddress.ip_network(value.strip(), strict=False)


@lru_cache(maxsize=4096)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """``*`` and ``?`` are wildcards; every other character is literal (fully escaped)."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _like(pattern: str, text: str, ignore_case: bool = False) -> bool:
    return _glob(pattern, ignore_case).fullmatch(text) is not None


# --------------------------------------------------------------------------- condition tests


def _string_equals(value: Scalar, wanted: str) -> bool:
    return _as_text(value) == wanted


def _string_equals_ignore_case(value: Scalar, wanted: str) -> bool:
    return _as_text(value).casefold() == wanted.casefold()


def _string_like(value: Scalar, pattern: str) -> bool:
    return _like(pattern, _as_text(value))


def _arn_like(value: Scalar, pattern: str) -> bool:
    """ARN operators: each of the six colon-delimited parts is matched on its own, with
    wildcards, case-sensitively; ArnEquals and ArnLike behave alike (Condition operators: ARN).
    A value or pattern that is not ARN-shaped is matched as a whole string."""
    text = _as_text(value)
    got, want = text.split(":", 5), pattern.split(":", 5)
    if len(got) == len(want) == 6:
        return all(_like(p, g) for p, g in zip(want, got, strict=True))
    return _like(pattern, text)


def _ip_in(value: Scalar, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        address = ipaddress.ip_address(_as_text(value).strip())
    except ValueError:
        return False
    return address.version == network.version and address in network


def _numeric(compare: Callable[[Decimal, Decimal], bool]) -> Callable[[Scalar, Decimal], bool]:
    def test(value: Scalar, wanted: Decimal) -> bool:
        try:
            return compare(_to_decimal(value), wanted)
        except ValueError:
            return False

    return test


def _date(compare: Callable[[datetime, datetime], bool]) -> Callable[[Scalar, datetime], bool]:
    def test(value: Scalar, wanted: datetime) -> bool:
        try:
            return compare(_to_datetime(value), wanted)
        except ValueError:
            return False

    return test


def _bool_equals(value: Scalar, wanted: bool) -> bool:
    try:
        return _to_bool(value) == wanted
    except ValueError:
        return False


@dataclass(frozen=True)
class _Test:
    parse: Callable[[str], Any]  # policy value (as text) -> comparable; ValueError if invalid
    match: Callable[[Any, Any], bool]  # (request value, parsed policy value) -> bool


_COMPARISONS = {
    "Equals": operator.eq,
    "LessThan": operator.lt,
    "LessThanEquals": operator.le,
    "GreaterThan": operator.gt,
    "GreaterThanEquals": operator.ge,
}
_TESTS: dict[str, _Test] = {
    "StringEquals": _Test(str, _string_equals),
    "StringEqualsIgnoreCase": _Test(str, _string_equals_ignore_case),
    "StringLike": _Test(str, _string_like),
    "BinaryEquals": _Test(str, _string_equals),
    "Bool": _Test(_to_bool, _bool_equals),
    "IpAddress": _Test(_to_network, _ip_in),
    "ArnLike": _Test(str, _arn_like),
    "Null": _Test(_to_bool, _bool_equals),  # evaluated by _null_holds
    **{f"Numeric{n}": _Test(_to_decimal, _numeric(c)) for n, c in _COMPARISONS.items()},
    **{f"Date{n}": _Test(_to_datetime, _date(c)) for n, c in _COMPARISONS.items()},
}
# operator name (lower case) -> (test family, negated)
_OPERATORS: dict[str, tuple[str, bool]] = {
    **{name.lower(): (name, False) for name in _TESTS},
    "arnequals": ("ArnLike", False),
    "stringnotequals": ("StringEquals", True),
    "stringnotequalsignorecase": ("StringEqualsIgnoreCase", True),
    "stringnotlike": ("StringLike", True),
    "numericnotequals": ("NumericEquals", True),
    "datenotequals": ("DateEquals", True),
    "notipaddress": ("IpAddress", True),
    "arnnotequals": ("ArnLike", True),
    "arnnotlike": ("ArnLike", True),
}


def _condition_holds(condition: Condition, context: Mapping[str, ConditionValue]) -> bool:
    """One (operator, key) pair; several policy values for the key are ORed, and a negated
    operator holds when no value matches (Condition with multiple context keys or values)."""
    values = _request_values(context.get(condition.key))
    if condition.test == "Null":
        # Null: true means the key must be absent, false that it must be present.
        return any(wanted == (not values) for wanted in condition.values)
    if not values:
        return _absent_key_outcome(condition)
    test = _TESTS[condition.test]
    hits = [
        any(test.match(v, wanted) for wanted in condition.values) != condition.negated
        for v in values
    ]
    if condition.qualifier == "ForAllValues":
        return all(hits)
    if condition.qualifier == "ForAnyValue":
        return any(hits)
    return all(hits) if condition.negated else any(hits)


def _absent_key_outcome(condition: Condition) -> bool:
    """Condition operators: "If the key that you specify in a policy condition is not present in
    the request context, the values do not match and the condition is false. If the policy
    condition requires that the key is not matched, such as StringNotLike or ArnNotLike, and the
    right key is not present, the condition is true." ...IfExists: a missing key is true.
    Set operators: ForAllValues is true without the key, ForAnyValue is false."""
    if condition.if_exists or condition.qualifier == "ForAllValues":
        return True
    if condition.qualifier == "ForAnyValue":
        return False
    return condition.negated


def _conditions_hold(statement: Statement, context: Mapping[str, ConditionValue]) -> bool:
    # All operators AND, all keys within an operator AND (multiple context keys or values).
    return all(_condition_holds(c, context) for c in statement.conditions)


def _lowered(context: Mapping[str, ConditionValue]) -> dict[str, ConditionValue]:
    """Key names are case-insensitive, including the ``<k>`` of ``kms:EncryptionContext:<k>``
    (conditions-kms); two request keys that differ only in case pool their values."""
    lowered: dict[str, ConditionValue] = {}
    for key, value in context.items():
        name = key.lower()
        if name in lowered:
            pooled = [*_request_values(lowered[name]), *_request_values(value)]
            lowered[name] = [_as_text(v) for v in pooled]
        else:
            lowered[name] = value
    return lowered


# --------------------------------------------------------------------------- statement matching


class _Reach(Enum):
    """How a statement's Principal element covers the caller."""

    NONE = "none"
    DIRECT = "direct"  # names the caller (or "*"), or no Principal element at all
    DELEGATED = "delegated"  # names only the caller's account: IAM policies must allow too


def _is_root(principal: Principal) -> bool:
    found = _ROOT_ARN.fullmatch(principal.arn)
    return not principal.is_service and found is not None and found[1] == principal.account


def _names(principal: Principal) -> frozenset[str]:
    """The caller's ARN, plus its role ARN for an assumed-role session (role paths are lost)."""
    session = _SESSION_ARN.fullmatch(principal.arn)
    if session is None:
        return frozenset({principal.arn})
    partition, account, role = session.groups()
    return frozenset({principal.arn, f"arn:{partition}:iam::{account}:role/{role}"})


def _named(block: Principals, principal: Principal) -> _Reach:
    """Principal element: an account (root ARN or bare id) delegates to that account's IAM
    policies except for the root itself (key-policy-default); "*" and {"AWS": "*"} are
    equivalent and cover everyone (reference_policies_elements_principal, "All principals")."""
    if block.wildcard:
        return _Reach.DIRECT
    if principal.is_service:
        return _Reach.DIRECT if principal.arn.lower() in block.services else _Reach.NONE
    if _names(principal) & block.arns:
        return _Reach.DIRECT
    if principal.account in block.accounts:
        return _Reach.DIRECT if _is_root(principal) else _Reach.DELEGATED
    return _Reach.NONE


def _excluded(block: Principals, principal: Principal) -> bool:
    """NotPrincipal: an IAM user or role is exempt only if its account is listed too
    ("you must also specify the account ARN of the not-excluded principal")."""
    if block.wildcard:
        return True
    if principal.is_service:
        return principal.arn.lower() in block.services
    account_listed = principal.account in block.accounts
    if _is_root(principal):
        return account_listed
    return account_listed and bool(_names(principal) & block.arns)


def _reach(statement: Statement, principal: Principal) -> _Reach:
    if statement.principals is None:
        return _Reach.DIRECT
    if statement.not_principal:
        return _Reach.NONE if _excluded(statement.principals, principal) else _Reach.DIRECT
    return _named(statement.principals, principal)


def _action_matches(statement: Statement, action: str) -> bool:
    # Action: case-insensitive, * and ? wildcards (reference_policies_elements_action).
    hit = any(_like(pattern, action, ignore_case=True) for pattern in statement.actions)
    return hit != statement.not_action


def _resource_matches(statement: Statement, resource: str) -> bool:
    # Resource: ARNs are case-sensitive, * and ? wildcards (reference_policies_elements_resource).
    if statement.resources is None:
        return True
    hit = any(_like(pattern, resource) for pattern in statement.resources)
    return hit != statement.not_resource


def _applies(statement: Statement, request: AccessRequest, context: Mapping[str, Any]) -> bool:
    """Action, resource and conditions match (the principal is checked separately)."""
    return (
        _action_matches(statement, request.action)
        and _resource_matches(statement, request.resource)
        and _conditions_hold(statement, context)
    )


def _decide(policy: Policy, request: AccessRequest, context: Mapping[str, Any]) -> Decision:
    effects = {
        s.effect
        for s in policy.statements
        if _reach(s, request.principal) is not _Reach.NONE and _applies(s, request, context)
    }
    if "Deny" in effects:
        return Decision.EXPLICIT_DENY
    return Decision.ALLOW if "Allow" in effects else Decision.IMPLICIT_DENY


def evaluate(policy: Policy, request: AccessRequest) -> Decision:
    """One policy on its own: explicit Deny > Allow > implicit deny (policy evaluation logic).
    A statement naming the caller's account counts as covering the caller here."""
    return _decide(policy, request, _lowered(request.context))


def _key_policy_reach(
    policy: Policy, request: AccessRequest, context: Mapping[str, Any]
) -> tuple[bool, _Reach]:
    """(denied, best reach of a matching Allow). A Deny naming an account covers all of it."""
    denied, best = False, _Reach.NONE
    for statement in policy.statements:
        if statement.principals is None:  # not a valid key policy statement: applies to no one
            continue
        reach = _reach(statement, request.principal)
        if reach is _Reach.NONE or not _applies(statement, request, context):
            continue
        if statement.effect == "Deny":
            denied = True
        elif reach is _Reach.DIRECT or best is _Reach.NONE:
            best = reach
    return denied, best


def authorize(
    key_policy: Policy, identity_policies: Sequence[Policy], request: AccessRequest
) -> Outcome:
    """Determining access to KMS keys: an explicit Deny anywhere wins; the key policy must allow
    the caller directly, or allow its account so that its IAM policies may grant access; a
    caller from another account needs its own IAM allow as well (unless it is that root)."""
    context = _lowered(request.context)
    denied, reach = _key_policy_reach(key_policy, request, context)
    if denied:
        return Outcome(False, DENY_IN_RESOURCE_POLICY)
    decisions = {_decide(p, request, context) for p in identity_policies}
    if Decision.EXPLICIT_DENY in decisions:
        return Outcome(False, DENY_IN_IDENTITY_POLICY)
    if reach is _Reach.NONE:
        return Outcome(False, no_policy_allows("resource", request.action))
    principal = request.principal
    same_account = principal.is_service or principal.account == request.resource_account
    needs_iam = reach is _Reach.DELEGATED or not (same_account or _is_root(principal))
    if needs_iam and Decision.ALLOW not in decisions:
        return Outcome(False, no_policy_allows("identity", request.action))
    return Outcome(True, "")


# --------------------------------------------------------------------------- grammar


def _malformed(message: str) -> MalformedPolicyDocumentError:
    return MalformedPolicyDocumentError(message)


def _strings(raw: object, element: str, problem: str | None = None) -> tuple[str, ...]:
    """A string or a non-empty list of strings (the shape AWS allows for most elements)."""
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, list) and raw and all(isinstance(v, str) for v in raw):
        return tuple(raw)
    raise _malformed(problem or f"The {element} element must be a string or a list of strings.")


def _aws_principals(values: tuple[str, ...], found: dict[str, set[str]]) -> bool:
    """Sorts AWS principal values; returns True when "*" is among them."""
    wildcard = False
    for value in values:
        root = _ROOT_ARN.fullmatch(value)
        if value == "*":
            wildcard = True
        elif _ACCOUNT_ID.fullmatch(value) or root:
            found["accounts"].add(root[1] if root else value)
        elif value.startswith("arn:") and not any(c in value for c in "*?"):
            found["arns"].add(value)
        else:
            raise _malformed(INVALID_PRINCIPALS)
    return wildcard


def _parse_principals(raw: object) -> Principals:
    """Principal element: "*" or {"AWS"|"Service"|"Federated"|"CanonicalUser": str|[str]}."""
    if raw == "*":
        return Principals(wildcard=True)
    if not isinstance(raw, dict) or not raw:
        raise _malformed(INVALID_PRINCIPALS)
    found: dict[str, set[str]] = {"accounts": set(), "arns": set(), "services": set()}
    others: set[str] = set()
    wildcard = False
    for kind, value in raw.items():
        values = _strings(value, "Principal", INVALID_PRINCIPALS)
        if kind == "AWS":
            wildcard = _aws_principals(values, found) or wildcard
        elif kind == "Service" and all(v and "*" not in v for v in values):
            found["services"].update(v.lower() for v in values)
        elif kind in ("Federated", "CanonicalUser"):
            others.update(values)
        else:
            raise _malformed(INVALID_PRINCIPALS)
    frozen = {name: frozenset(items) for name, items in found.items()}
    return Principals(wildcard=wildcard, others=frozenset(others), **frozen)


def _condition_values(raw: object, operator_name: str, key: str) -> tuple[str, ...]:
    """Condition values: a string, number or boolean, or a list of them; kept as text."""
    items = raw if isinstance(raw, list) else [raw]
    texts: list[str] = []
    for item in items:
        if isinstance(item, bool):
            texts.append("true" if item else "false")
        elif isinstance(item, str | int | float):
            texts.append(str(item))
        else:
            raise _malformed(f"Condition {operator_name} has an invalid value for key {key}.")
    return tuple(texts)


def _split_operator(name: str) -> tuple[str, str, bool]:
    """Splits e.g. ForAnyValue:StringLikeIfExists into ("ForAnyValue", "stringlike", True)."""
    qualifier, _, base = name.rpartition(":")
    qualifiers = {"": "", "foranyvalue": "ForAnyValue", "forallvalues": "ForAllValues"}
    if qualifier.lower() not in qualifiers:
        raise _malformed(f"Condition operator {name} is not supported.")
    base = base.lower()
    if_exists = base.endswith("ifexists") and base != "ifexists"
    base = base.removesuffix("ifexists") if if_exists else base
    return qualifiers[qualifier.lower()], base, if_exists


def _parse_condition(name: str, key: str, raw: object) -> Condition:
    qualifier, base, if_exists = _split_operator(name)
    if base not in _OPERATORS or (base == "null" and (if_exists or qualifier)):
        raise _malformed(f"Condition operator {name} is not supported.")
    test, negated = _OPERATORS[base]
    texts = _condition_values(raw, name, key)
    try:
        values = tuple(_TESTS[test].parse(t) for t in texts)
    except ValueError:
        raise _malformed(f"Condition {name} has an invalid value for key {key}.") from None
    return Condition(name, test, negated, qualifier, if_exists, key.lower(), values)


def _parse_conditions(raw: object) -> tuple[Condition, ...]:
    if not isinstance(raw, dict):
        raise _malformed("The Condition element must be an object.")
    conditions: list[Condition] = []
    for name, block in raw.items():
        if not isinstance(block, dict):
            raise _malformed(f"Condition {name} must map condition keys to values.")
        conditions.extend(_parse_condition(name, key, value) for key, value in block.items())
    return tuple(conditions)


def _one_of(raw: dict[str, Any], plain: str, negated: str, required: bool) -> tuple[Any, bool]:
    """(value, is_negated) for an element pair such as Action/NotAction."""
    if plain in raw and negated in raw:
        raise _malformed(f"A statement cannot have both {plain} and {negated}.")
    if negated in raw:
        return raw[negated], True
    if plain not in raw and required:
        raise _malformed(f"A statement must have an {plain} or {negated} element.")
    return raw.get(plain), False


def _parse_actions(raw: object) -> tuple[str, ...]:
    actions = _strings(raw, "Action", INVALID_ACTIONS)
    if any(a != "*" and (":" not in a or a.startswith(":")) for a in actions):
        raise _malformed(INVALID_ACTIONS)
    return actions


def _parse_statement(raw: object) -> Statement:
    if not isinstance(raw, dict):
        raise _malformed("Each statement must be a JSON object.")
    unknown = sorted(set(raw) - _STATEMENT_ELEMENTS)
    if unknown:
        raise _malformed(f"Policy statement has an unsupported element: {unknown[0]}.")
    if raw.get("Effect") not in ("Allow", "Deny"):
        raise _malformed("Policy statement Effect must be Allow or Deny.")
    if "Sid" in raw and not isinstance(raw["Sid"], str):
        raise _malformed("Policy statement Sid must be a string.")
    actions, not_action = _one_of(raw, "Action", "NotAction", required=True)
    principal, not_principal = _one_of(raw, "Principal", "NotPrincipal", required=False)
    resources, not_resource = _one_of(raw, "Resource", "NotResource", required=False)
    return Statement(
        effect=raw["Effect"],
        actions=_parse_actions(actions),
        not_action=not_action,
        principals=None if principal is None else _parse_principals(principal),
        not_principal=not_principal,
        resources=None if resources is None else _strings(resources, "Resource"),
        not_resource=not_resource,
        conditions=_parse_conditions(raw.get("Condition", {})),
        sid=raw.get("Sid"),
    )


def _reject_constant(name: str) -> object:
    raise ValueError(name)


def _load_json(text: str) -> object:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, ValueError, RecursionError):
        raise _malformed("The policy is not valid JSON.") from None


def parse_policy(text: str) -> Policy:
    """Parses a key policy or an IAM policy; MalformedPolicyDocumentError on bad JSON/grammar."""
    document = _load_json(text)
    if not isinstance(document, dict):
        raise _malformed("The policy must be a JSON object with a Statement.")
    unknown = sorted(set(document) - _POLICY_ELEMENTS)
    if unknown:
        raise _malformed(f"The policy has an unsupported element: {unknown[0]}.")
    version, policy_id = document.get("Version"), document.get("Id")
    if version is not None and version not in _VERSIONS:
        raise _malformed("The policy Version must be 2012-10-17 or 2008-10-17.")
    if policy_id is not None and not isinstance(policy_id, str):
        raise _malformed("The policy Id must be a string.")
    raw = document.get("Statement")
    items = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else None
    if not items:
        raise _malformed("The policy must be a JSON object with a Statement.")
    return Policy(tuple(_parse_statement(s) for s in items), version, policy_id)


# --------------------------------------------------------------------------- key policies


def _overly_permissive(condition: Condition) -> str | None:
    """conditions-kms: ForAllValues with a single-valued key is refused in key policies."""
    if condition.qualifier != "ForAllValues":
        return None
    if condition.key.startswith("kms:encryptioncontext:"):
        return "encryption context"
    return "tag" if condition.key.startswith("aws:requesttag/") else None


def _check_key_statement(statement: Statement, known_principal: Callable[[str], bool]) -> None:
    if statement.principals is None:
        raise _malformed("A key policy statement must have a Principal or NotPrincipal element.")
    if any(a != "*" and not a.lower().startswith("kms:") for a in statement.actions):
        raise _malformed(INVALID_ACTIONS)
    if not all(known_principal(arn) for arn in sorted(statement.principals.arns)):
        raise _malformed(INVALID_PRINCIPALS)
    for condition in statement.conditions:
        what = _overly_permissive(condition)
        if what:
            raise _malformed(
                "OverlyPermissiveCondition: Using the ForAllValues set operator with a "
                f"single-valued condition key matches requests without the specified {what} "
                f"or with an unspecified {what}. To fix, remove ForAllValues."
            )


def validate_key_policy(
    text: str, *, known_principal: Callable[[str], bool], max_bytes: int = 32768
) -> Policy:
    """CreateKey/PutKeyPolicy checks: 32 KB (Quotas), grammar, principals that exist, kms
    actions only. ``known_principal`` is asked about user/role ARNs, never about "*",
    accounts or services."""
    if len(text.encode("utf-8")) > max_bytes:
        # A quota, so LimitExceededException (the model's documentation of Policy).
        raise LimitExceededError(
            f"The request was rejected because the key policy exceeds the quota of "
            f"{max_bytes} bytes."
        )
    policy = parse_policy(text)
    for statement in policy.statements:
        _check_key_statement(statement, known_principal)
    return policy


_ALLOW_EVERYTHING = Policy((Statement(effect="Allow", actions=("*",), resources=("*",)),))


def _resource_is_this_key(policy: Policy) -> Policy:
    """In a key policy, Resource always means the key the policy is attached to."""
    return dataclasses.replace(
        policy,
        statements=tuple(
            dataclasses.replace(s, resources=None, not_resource=False) for s in policy.statements
        ),
    )


def would_lock_out(
    policy: Policy,
    principal: Principal,
    account_root_may_use_iam: bool = True,
    *,
    key_arn: str | None = None,
    context: Mapping[str, ConditionValue] | None = None,
) -> bool:
    """Lockout safety check (PutKeyPolicy BypassPolicyLockoutSafetyCheck): True when, under the
    new policy, ``principal`` could not call kms:PutKeyPolicy again. When delegation applies,
    the caller's IAM policies are assumed to allow everything if ``account_root_may_use_iam``.
    ``context`` is the condition context of the PutKeyPolicy call itself (default: empty)."""
    checked = policy if key_arn else _resource_is_this_key(policy)
    request = AccessRequest(
        principal=principal,
        action="kms:PutKeyPolicy",
        resource=key_arn or "*",
        resource_account=principal.account,
        context=context or {},
    )
    identity = [_ALLOW_EVERYTHING] if account_root_may_use_iam else []
    return not authorize(checked, identity, request).allowed
