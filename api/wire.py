"""KMS JSON 1.1 codec: requests checked against botocore's model, responses serialized."""

# Message formats (AWS JSON 1.1 / Coral; aws-kms-api.md section c):
# - A wrong JSON type raises SerializationError, before any constraint is reported:
#     object where none is expected: "Start of structure or map found where not expected."
#     array where none is expected:  "Start of list found where not expected."
#     wrong scalar: "<STRING|NUMBER|BOOLEAN>_VALUE can not be converted to <a String |
#       an Integer | a Long | a Boolean | a Blob | a Timestamp | a List | a Map |
#       a Structure>"; a body that is a string or number gets "... to a Structure".
#     undecodable blob: "Value at '<path>' is not valid base64."
# - Constraint violations are collected over the whole input, then raised as ONE
#   ValidationError: "<n> validation error(s) detected: <violation>; <violation>".
#     "Value '<value>' at '<path>' failed to satisfy constraint: <constraint>"
#     "Value at '<path>' failed to ..."  for blobs and `sensitive` shapes
#     "Value null at '<path>' failed to satisfy constraint: Member must not be null"
#   Paths camelCase member names and nest as "tags.1.member.tagKey" (1-based index).
#   Items of scalar lists and map keys/values report once per container, Coral style:
#     "Value '[a, b]' at 'grantTokens' failed to satisfy constraint: Member must
#     satisfy constraint: [<every item constraint>]"; likewise "Map keys must ..."
#     and "Map value must ...". Structured map values nest as "<map>.<key>.<member>".
# - Order: model member order; within one value enum, max, min, then pattern.
# - JSON null means absent: a null body is an empty input, null items are dropped.

from __future__ import annotations

import base64
import binascii
import enum
import functools
import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import botocore.loaders
import botocore.model

from domain.errors import SerializationError, UnknownOperationError, ValidationError

Errors = list[str]
Parser = Callable[[Any, str, Errors], Any]
Serializer = Callable[[Any], Any]
Constraint = tuple[str, Callable[[Any], bool]]  # (AWS text, "is violated" test)
Shape = botocore.model.Shape

_LENGTH_TYPES = frozenset({"string", "blob", "list", "map"})
_RANGE_TYPES = frozenset({"integer", "long"})
_NESTED_TYPES = frozenset({"structure", "list", "map"})
_INT_BITS = {"integer": 32, "long": 64}
_TARGETS = {
    "string": "a String",
    "integer": "an Integer",
    "long": "a Long",
    "boolean": "a Boolean",
    "blob": "a Blob",
    "timestamp": "a Timestamp",
    "float": "a Float",
    "double": "a Double",
    "list": "a List",
    "map": "a Map",
    "structure": "a Structure",
}


class WireModel:
    """A botocore service model compiled lazily into cached parsers/serializers."""

    def __init__(self, service_model: botocore.model.ServiceModel) -> None:
        self._model = service_model
        self._operations = frozenset(service_model.operation_names)
        self._compiling = threading.RLock()
        self._requests: dict[str, Parser] = {}
        self._responses: dict[str, Serializer] = {}
        self._parsers: dict[str, Parser] = {}
        self._serializers: dict[str, Serializer] = {}

    def has_operation(self, name: str) -> bool:
        return name in self._operations

    def enum(self, shape_name: str) -> frozenset[str]:
        """The values a string shape allows (e.g. KeyLastUsageTrackingOperation)."""
        return frozenset(self._model.shape_for(shape_name).enum)

    def parse_request(self, operation: str, body: object) -> dict[str, Any]:
        """Type-check and convert ``body``; one ValidationError lists all violations."""
        parser = self._requests.get(operation) or self._request_parser(operation)
        errors: Errors = []
        result = parser({} if body is None else body, "", errors)
        if errors:
            raise ValidationError(_summary(errors))
        return result

    def serialize_response(self, operation: str, result: Mapping[str, Any]) -> dict[str, Any]:
        """JSON-ready: blobs base64, datetimes epoch, None and unmodelled dropped."""
        serializer = self._responses.get(operation) or self._response_writer(operation)
        return serializer(result)

    def _operation(self, name: str) -> botocore.model.OperationModel:
        if name not in self._operations:
            raise UnknownOperationError(f"Operation {name} is not supported.")
        return self._model.operation_model(name)

    def _request_parser(self, operation: str) -> Parser:
        shape = self._operation(operation).input_shape
        with self._compiling:
            parser = self._parser(shape) if shape is not None else _empty_parser
            self._requests[operation] = parser
        return parser

    def _response_writer(self, operation: str) -> Serializer:
        shape = self._operation(operation).output_shape
        with self._compiling:
            writer = self._serializer(shape) if shape is not None else _empty_writer
            self._responses[operation] = writer
        return writer

    def _parser(self, shape: Shape) -> Parser:
        """One parser per shape name; a forward reference covers recursive shapes."""
        parser = self._parsers.get(shape.name)
        if parser is None:
            name = shape.name
            self._parsers[name] = _late(self._parsers, name)
            parser = self._parsers[name] = self._build_parser(shape)
        return parser

    def _build_parser(self, shape: Shape) -> Parser:
        kind = shape.type_name
        if kind == "structure":
            return self._structure_parser(shape)
        if kind == "list":
            return self._list_parser(shape)
        if kind == "map":
            return self._map_parser(shape)
        return _scalar_parser(_converter(kind), _constraints(shape), _is_hidden(shape))

    def _structure_parser(self, shape: botocore.model.StructureShape) -> Parser:
        members = [
            (name, _camel(name), self._parser(target)) for name, target in shape.members.items()
        ]
        required = frozenset(shape.required_members)

        def parse(value: Any, path: str, errors: Errors) -> dict[str, Any]:
            if not isinstance(value, dict):
                raise _mismatch(value, "a Structure")
            prefix = f"{path}." if path else ""
            out: dict[str, Any] = {}
            for name, camel, member in members:  # unknown names ignored, as AWS does
                item = value.get(name)
                if item is not None:
                    out[name] = member(item, prefix + camel, errors)
                elif name in required:
                    errors.append(_missing(prefix + camel))
            return out

        return parse

    def _list_parser(self, shape: botocore.model.ListShape) -> Parser:
        own = _scalar_parser(_as_list, _constraints(shape), _is_hidden(shape))
        member = self._parser(shape.member)
        if shape.member.type_name in _NESTED_TYPES:
            return _nested_list_parser(own, member)
        summary = _member_constraint(shape.member, "Member")
        return _flat_list_parser(own, member, summary, _is_hidden(shape))

    def _map_parser(self, shape: botocore.model.MapShape) -> Parser:
        own = _scalar_parser(_as_map, _constraints(shape), _is_hidden(shape))
        keys = self._parser(shape.key), _member_constraint(shape.key, "Map keys")
        values = self._parser(shape.value), _member_constraint(shape.value, "Map value")
        nested = shape.value.type_name in _NESTED_TYPES
        return _map_entries_parser(own, keys, values, nested, _is_hidden(shape))

    def _serializer(self, shape: Shape) -> Serializer:
        writer = self._serializers.get(shape.name)
        if writer is None:
            name = shape.name
            self._serializers[name] = _late(self._serializers, name)
            writer = self._serializers[name] = self._build_serializer(shape)
        return writer

    def _build_serializer(self, shape: Shape) -> Serializer:
        kind = shape.type_name
        if kind == "structure":
            members = {n: self._serializer(s) for n, s in shape.members.items()}
            return functools.partial(_write_structure, members)
        if kind == "list":
            return functools.partial(_write_list, self._serializer(shape.member))
        if kind == "map":
            return functools.partial(_write_map, self._serializer(shape.value))
        return _SCALAR_WRITERS.get(kind, _write_plain)


def _late(table: Mapping[str, Callable[..., Any]], name: str) -> Callable[..., Any]:
    """A forward reference for recursive shapes: finds the finished function at call time."""

    def call(*args: Any) -> Any:
        return table[name](*args)

    return call


@functools.cache
def load_kms_model() -> WireModel:
    """botocore's own data/kms/2014-11-01/service-2.json, loaded once."""
    return load_model("kms")


def load_model(service: str) -> WireModel:
    """Any JSON 1.1 service botocore ships (kms, cloudtrail)."""
    loader = botocore.loaders.create_loader()
    description = loader.load_service_model(service, "service-2")
    return WireModel(botocore.model.ServiceModel(description, service_name=service))


# --- request parsing -------------------------------------------------------------


def _summary(errors: Errors) -> str:
    """AWS's text: "2 validation errors detected: <first>; <second>"."""
    noun = "validation error" if len(errors) == 1 else "validation errors"
    return f"{len(errors)} {noun} detected: {'; '.join(errors)}"


def _camel(name: str) -> str:
    """Coral's path: first letter lower-cased (NumberOfBytes -> numberOfBytes)."""
    return name[:1].lower() + name[1:]


def missing_member(name: str) -> ValidationError:
    """A member the model leaves optional but the operation needs (AWS answers with the
    same text as for a required one)."""
    return ValidationError(_summary([_missing(_camel(name))]))


def _missing(path: str) -> str:
    return f"Value null at '{path}' failed to satisfy constraint: Member must not be null"


def _violation(value: Any, hidden: bool, path: str, constraint: str) -> str:
    shown = "" if hidden else f" '{_render(value)}'"
    return f"Value{shown} at '{path}' failed to satisfy constraint: {constraint}"


def _render(value: Any) -> str:
    """Java toString: strings bare, booleans lower-case, "[a, b]", maps "{k=v}"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + ", ".join(_render(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = (f"{key}={_render(item)}" for key, item in value.items())
        return "{" + ", ".join(pairs) + "}"
    return str(value)


def _scalar_parser(
    convert: Callable[[Any], Any], constraints: tuple[Constraint, ...], hidden: bool
) -> Parser:
    def parse(value: Any, path: str, errors: Errors) -> Any:
        try:
            out = convert(value)
        except _Base64Error:
            raise SerializationError(f"Value at '{path}' is not valid base64.") from None
        for text, violated in constraints:
            if violated(out):
                errors.append(_violation(out, hidden, path, text))
        return out

    return parse


def _nested_list_parser(own: Parser, member: Parser) -> Parser:
    """Structured items report their members as "<list>.<n>.member.<name>"."""

    def parse(value: Any, path: str, errors: Errors) -> list[Any]:
        items = own(value, path, errors)
        return [
            member(item, f"{path}.{n}.member", errors)
            for n, item in enumerate(items, 1)
            if item is not None
        ]

    return parse


def _flat_list_parser(own: Parser, member: Parser, summary: str | None, hidden: bool) -> Parser:
    """Scalar items report one violation for the whole list (Coral's form)."""

    def parse(value: Any, path: str, errors: Errors) -> list[Any]:
        items = own(value, path, errors)
        item_errors: Errors = []
        out = [member(item, path, item_errors) for item in items if item is not None]
        if item_errors and summary is not None:
            errors.append(_violation(out, hidden, path, summary))
        return out

    return parse


def _map_entries_parser(
    own: Parser,
    keys: tuple[Parser, str | None],
    values: tuple[Parser, str | None],
    nested: bool,
    hidden: bool,
) -> Parser:
    """Scalar keys/values report once per map; structured values nest by key."""
    (key_parser, key_summary), (value_parser, value_summary) = keys, values

    def parse(value: Any, path: str, errors: Errors) -> dict[str, Any]:
        entries = own(value, path, errors)
        key_errors: Errors = []
        value_errors: Errors = errors if nested else []
        out: dict[str, Any] = {}
        for key, item in entries.items():
            if item is not None:
                item_path = f"{path}.{key}" if nested else path
                parsed = value_parser(item, item_path, value_errors)
                out[key_parser(key, path, key_errors)] = parsed
        for found, summary in ((key_errors, key_summary), (value_errors, value_summary)):
            if found and summary is not None:
                errors.append(_violation(out, hidden, path, summary))
        return out

    return parse


def _empty_parser(value: Any, path: str, errors: Errors) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _mismatch(value, "a Structure")
    return {}


def _member_constraint(shape: Shape, subject: str) -> str | None:
    """Coral's container form: "Member must satisfy constraint: [Member must ...]"."""
    if shape.type_name in _NESTED_TYPES:
        return None
    texts = ", ".join(text for text, _ in _constraints(shape))
    return f"{subject} must satisfy constraint: [{texts}]" if texts else None


# --- type conversion (SerializationException texts) -------------------------------


def _token(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN_VALUE"
    if isinstance(value, (int, float)):
        return "NUMBER_VALUE"
    return "STRING_VALUE" if isinstance(value, str) else "UNKNOWN_VALUE"


def _mismatch(value: Any, target: str) -> SerializationError:
    if isinstance(value, dict):
        return SerializationError("Start of structure or map found where not expected.")
    if isinstance(value, list):
        return SerializationError("Start of list found where not expected.")
    return SerializationError(f"{_token(value)} can not be converted to {target}")


def _converter(kind: str) -> Callable[[Any], Any]:
    target = _TARGETS.get(kind, "a String")
    if kind in _INT_BITS:
        return _integer_converter(_INT_BITS[kind], target)
    if kind == "timestamp":
        return _to_timestamp
    if kind in ("float", "double"):
        return functools.partial(_to_float, target=target)
    if kind == "blob":
        return _to_blob
    expected = bool if kind == "boolean" else str  # strings and enums are JSON strings

    def convert(value: Any) -> Any:
        if isinstance(value, expected):
            return value
        raise _mismatch(value, target)

    return convert


def _integer_converter(bits: int, target: str) -> Callable[[Any], int]:
    """Integer is a Java int, Long a Java long; 5.0 is accepted, 5.5 is not."""
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def convert(value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        raise _mismatch(value, target)

    return convert


def _to_float(value: Any, target: str) -> float:
    """Timestamps are epoch seconds as a JSON number, fractions allowed (section c)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise _mismatch(value, target)


def _to_timestamp(value: Any) -> float:
    """Epoch seconds of a date a datetime can hold (years 1 to 9999): one outside, such as
    -1.4e16, cannot be a Timestamp and is refused while the request is read, as any value
    that cannot be converted, instead of failing later in the operation (found by the
    fuzzer: ImportKeyMaterial ValidTo)."""
    seconds = _to_float(value, "a Timestamp")
    try:
        datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise SerializationError(f"{_token(value)} can not be converted to a Timestamp") from None
    return seconds


class _Base64Error(Exception):
    """Raised by _to_blob; the scalar parser re-raises it with the member path."""


def _to_blob(value: Any) -> bytes:
    """Standard base64 with padding (section c); missing padding is tolerated."""
    if not isinstance(value, str):
        raise _mismatch(value, "a Blob")
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _Base64Error from None


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    raise _mismatch(value, "a List")


def _as_map(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise _mismatch(value, "a Map")


# --- constraints (model traits: enum, min, max, pattern, sensitive) ----------------


def _constraints(shape: Shape) -> tuple[Constraint, ...]:
    meta = shape.metadata
    kind = shape.type_name
    found: list[Constraint] = []
    if meta.get("enum"):
        found.append(_enum_constraint(meta["enum"]))
    if kind in _LENGTH_TYPES:
        found += _bounds(meta, "length", len)
    elif kind in _RANGE_TYPES:
        found += _bounds(meta, "value", int)
    if kind == "string" and "pattern" in meta:
        found += _pattern_constraint(meta["pattern"])
    return tuple(found)


def _enum_constraint(values: list[str]) -> Constraint:
    """Model order; real AWS sometimes prints another order (aws-kms-api.md b)."""
    allowed = frozenset(values)
    text = f"Member must satisfy enum value set: [{', '.join(values)}]"
    return text, lambda v: v not in allowed


def _bounds(meta: Mapping[str, Any], noun: str, measure: Callable[[Any], int]) -> list[Constraint]:
    """Strings count code points (Smithy length trait); blobs count decoded bytes."""
    found: list[Constraint] = []
    if "max" in meta:
        high = _whole(meta["max"])
        text = f"Member must have {noun} less than or equal to {high}"
        found.append((text, lambda v: measure(v) > high))
    if "min" in meta:
        low = _whole(meta["min"])
        text = f"Member must have {noun} greater than or equal to {low}"
        found.append((text, lambda v: measure(v) < low))
    return found


def _whole(number: float) -> float:
    """Model bounds print as Java longs ("4096", never "4096.0")."""
    return int(number) if float(number).is_integer() else number


def _pattern_constraint(pattern: str) -> list[Constraint]:
    """Whole-value match (Java Pattern.matches); \\w, \\d, \\s are ASCII as in Java."""
    try:
        compiled = re.compile(pattern, re.ASCII)
    except re.error:  # a Java-only construct: skip rather than reject valid input
        return []
    text = f"Member must satisfy regular expression pattern: {pattern}"
    return [(text, lambda v: compiled.fullmatch(v) is None)]


def _is_hidden(shape: Shape, seen: frozenset[str] = frozenset()) -> bool:
    """Blobs and `sensitive` shapes (e.g. PlaintextType) never show their value."""
    if shape.type_name == "blob" or shape.metadata.get("sensitive"):
        return True
    if shape.name in seen:
        return False
    seen = seen | {shape.name}
    if shape.type_name == "list":
        return _is_hidden(shape.member, seen)
    if shape.type_name == "map":
        return _is_hidden(shape.value, seen)
    if shape.type_name == "structure":
        return any(_is_hidden(member, seen) for member in shape.members.values())
    return False


# --- response serialization --------------------------------------------------------


def _write_structure(members: Mapping[str, Serializer], value: Mapping[str, Any]) -> dict[str, Any]:
    """Only modelled members leave, so internal keys never leak; None is absent."""
    out: dict[str, Any] = {}
    for name, item in value.items():
        writer = members.get(name)
        if writer is not None and item is not None:
            out[name] = writer(item)
    return out


def _write_list(member: Serializer, value: Any) -> list[Any]:
    return [member(item) for item in value if item is not None]


def _write_map(member: Serializer, value: Mapping[str, Any]) -> dict[str, Any]:
    return {str(key): member(item) for key, item in value.items() if item is not None}


def _write_blob(value: Any) -> Any:
    """Blobs travel as standard base64 with padding (aws-kms-api.md section c)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(value).decode("ascii")
    return value


def _write_timestamp(value: Any) -> Any:
    """Epoch seconds as a JSON number (section c); a naive datetime is taken as UTC."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.timestamp()
    return value


def _write_plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _empty_writer(value: Mapping[str, Any]) -> dict[str, Any]:
    return {}


_SCALAR_WRITERS: dict[str, Serializer] = {
    "blob": _write_blob,
    "timestamp": _write_timestamp,
}
