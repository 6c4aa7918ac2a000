"""Request validation and response serialization against botocore's KMS model."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import botocore.session
import orjson
import pytest
from botocore.parsers import create_parser

from api.wire import WireModel, load_kms_model
from domain.errors import SerializationError, UnknownOperationError, ValidationError

KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture(scope="module")
def wire() -> WireModel:
    return load_kms_model()


def validation_message(wire: WireModel, operation: str, body: object) -> str:
    with pytest.raises(ValidationError) as caught:
        wire.parse_request(operation, body)
    return caught.value.message


def serialization_message(wire: WireModel, operation: str, body: object) -> str:
    with pytest.raises(SerializationError) as caught:
        wire.parse_request(operation, body)
    return caught.value.message


# --- valid requests ------------------------------------------------------------------


def test_blobs_decode_to_bytes_and_members_keep_their_model_names(wire: WireModel) -> None:
    body = {"KeyId": KEY, "Plaintext": b64(b"secret"), "EncryptionContext": {"app": "x"}}

    request = wire.parse_request("Encrypt", body)

    assert request == {"KeyId": KEY, "Plaintext": b"secret", "EncryptionContext": {"app": "x"}}


def test_unknown_members_are_ignored_and_absent_members_stay_absent(wire: WireModel) -> None:
    request = wire.parse_request("DescribeKey", {"KeyId": KEY, "Internal": True})

    assert request == {"KeyId": KEY}


def test_null_members_count_as_absent(wire: WireModel) -> None:
    assert wire.parse_request("ListKeys", {"Limit": None}) == {}


def test_a_null_body_is_an_empty_request(wire: WireModel) -> None:
    assert wire.parse_request("ListKeys", None) == {}


def test_nested_structures_and_lists_are_converted(wire: WireModel) -> None:
    body = {"Tags": [{"TagKey": "team", "TagValue": "blue"}], "MultiRegion": False}

    request = wire.parse_request("CreateKey", body)

    assert request == {"Tags": [{"TagKey": "team", "TagValue": "blue"}], "MultiRegion": False}


def test_base64_without_padding_is_tolerated(wire: WireModel) -> None:
    request = wire.parse_request("Decrypt", {"CiphertextBlob": "YWJj" + "ZA"})

    assert request["CiphertextBlob"] == b"abcd"


def test_integral_floats_are_integers(wire: WireModel) -> None:
    assert wire.parse_request("GenerateRandom", {"NumberOfBytes": 32.0}) == {"NumberOfBytes": 32}


def test_timestamps_become_floats(wire: WireModel) -> None:
    body = {
        "KeyId": KEY,
        "ImportToken": b64(b"t"),
        "EncryptedKeyMaterial": b64(b"m"),
        "ValidTo": 1700000000,
    }

    request = wire.parse_request("ImportKeyMaterial", body)

    assert request["ValidTo"] == 1700000000.0
    assert isinstance(request["ValidTo"], float)


# --- ValidationException texts -------------------------------------------------------


def test_plaintext_over_4096_bytes_withholds_the_value(wire: WireModel) -> None:
    body = {"KeyId": KEY, "Plaintext": b64(b"x" * 4097)}

    assert validation_message(wire, "Encrypt", body) == (
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length less than or equal to 4096"
    )


def test_plaintext_of_exactly_4096_bytes_is_accepted(wire: WireModel) -> None:
    request = wire.parse_request("Encrypt", {"KeyId": KEY, "Plaintext": b64(b"x" * 4096)})

    assert len(request["Plaintext"]) == 4096


def test_empty_plaintext_breaks_the_minimum(wire: WireModel) -> None:
    assert validation_message(wire, "Encrypt", {"KeyId": KEY, "Plaintext": ""}) == (
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1"
    )


@pytest.mark.parametrize(
    ("number", "constraint"),
    [
        (1025, "Member must have value less than or equal to 1024"),
        (0, "Member must have value greater than or equal to 1"),
    ],
)
def test_generate_random_number_of_bytes_range(
    wire: WireModel, number: int, constraint: str
) -> None:
    assert validation_message(wire, "GenerateRandom", {"NumberOfBytes": number}) == (
        f"1 validation error detected: Value '{number}' at 'numberOfBytes' "
        f"failed to satisfy constraint: {constraint}"
    )


def test_data_key_spec_enum_lists_the_model_values(wire: WireModel) -> None:
    body = {"KeyId": KEY, "KeySpec": "AES_512"}

    assert validation_message(wire, "GenerateDataKey", body) == (
        "1 validation error detected: Value 'AES_512' at 'keySpec' failed to satisfy "
        "constraint: Member must satisfy enum value set: [AES_256, AES_128]"
    )


def test_key_usage_enum_uses_the_model_order(wire: WireModel) -> None:
    model = botocore.session.get_session().get_service_model("kms")
    usages = ", ".join(model.shape_for("KeyUsageType").enum)

    assert validation_message(wire, "CreateKey", {"KeyUsage": "RANDOM"}) == (
        "1 validation error detected: Value 'RANDOM' at 'keyUsage' failed to satisfy "
        f"constraint: Member must satisfy enum value set: [{usages}]"
    )


def test_missing_required_member_is_null(wire: WireModel) -> None:
    assert validation_message(wire, "DescribeKey", {}) == (
        "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_every_violation_is_reported_at_once(wire: WireModel) -> None:
    body = {"Plaintext": b64(b"x" * 5000)}

    assert validation_message(wire, "Encrypt", body) == (
        "2 validation errors detected: "
        "Value null at 'keyId' failed to satisfy constraint: Member must not be null; "
        "Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length less than or equal to 4096"
    )


def test_tag_key_path_names_the_list_item(wire: WireModel) -> None:
    body = {"Tags": [{"TagKey": "k" * 129, "TagValue": "v"}]}

    assert validation_message(wire, "CreateKey", body) == (
        f"1 validation error detected: Value '{'k' * 129}' at 'tags.1.member.tagKey' "
        "failed to satisfy constraint: Member must have length less than or equal to 128"
    )


def test_missing_tag_value_path_uses_the_item_index(wire: WireModel) -> None:
    body = {"KeyId": KEY, "Tags": [{"TagKey": "a", "TagValue": ""}, {"TagKey": "b"}]}

    assert validation_message(wire, "TagResource", body) == (
        "1 validation error detected: Value null at 'tags.2.member.tagValue' "
        "failed to satisfy constraint: Member must not be null"
    )


def test_alias_name_must_match_the_model_pattern(wire: WireModel) -> None:
    body = {"AliasName": "alias/has space", "TargetKeyId": KEY}

    assert validation_message(wire, "CreateAlias", body) == (
        "1 validation error detected: Value 'alias/has space' at 'aliasName' failed to "
        "satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"
    )


def test_pattern_must_match_the_whole_value(wire: WireModel) -> None:
    body = {"AliasName": "alias/ok\n", "TargetKeyId": KEY}

    assert "regular expression pattern" in validation_message(wire, "CreateAlias", body)


def test_ciphertext_over_6144_bytes_is_rejected(wire: WireModel) -> None:
    body = {"CiphertextBlob": b64(b"c" * 6145)}

    assert validation_message(wire, "Decrypt", body) == (
        "1 validation error detected: Value at 'ciphertextBlob' failed to satisfy constraint: "
        "Member must have length less than or equal to 6144"
    )


def test_scalar_list_items_report_once_for_the_list(wire: WireModel) -> None:
    body = {"KeyId": KEY, "Plaintext": b64(b"p"), "GrantTokens": ["t", ""]}

    assert validation_message(wire, "Encrypt", body) == (
        "1 validation error detected: Value '[t, ]' at 'grantTokens' failed to satisfy "
        "constraint: Member must satisfy constraint: [Member must have length less than or "
        "equal to 8192, Member must have length greater than or equal to 1]"
    )


def test_list_length_is_checked(wire: WireModel) -> None:
    body = {"KeyId": KEY, "Plaintext": b64(b"p"), "GrantTokens": ["t"] * 11}

    assert validation_message(wire, "Encrypt", body).endswith(
        "at 'grantTokens' failed to satisfy constraint: "
        "Member must have length less than or equal to 10"
    )


def test_a_model_from_a_botocore_session_validates_the_same() -> None:
    wire = WireModel(botocore.session.get_session().get_service_model("kms"))

    message = validation_message(wire, "DescribeKey", {"GrantTokens": [""]})

    assert message.startswith("2 validation errors detected: Value null at 'keyId'")
    assert message.endswith("Member must have length greater than or equal to 1]")


# --- SerializationException texts ----------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "body", "message"),
    [
        (
            "GenerateRandom",
            {"NumberOfBytes": "5"},
            "STRING_VALUE can not be converted to an Integer",
        ),
        (
            "GenerateRandom",
            {"NumberOfBytes": 5.5},
            "NUMBER_VALUE can not be converted to an Integer",
        ),
        (
            "GenerateRandom",
            {"NumberOfBytes": True},
            "BOOLEAN_VALUE can not be converted to an Integer",
        ),
        ("DescribeKey", {"KeyId": 5}, "NUMBER_VALUE can not be converted to a String"),
        ("DescribeKey", {"KeyId": False}, "BOOLEAN_VALUE can not be converted to a String"),
        ("CreateKey", {"MultiRegion": "true"}, "STRING_VALUE can not be converted to a Boolean"),
        ("Decrypt", {"CiphertextBlob": 7}, "NUMBER_VALUE can not be converted to a Blob"),
        ("CreateKey", {"Tags": "x"}, "STRING_VALUE can not be converted to a List"),
        ("CreateKey", {"Tags": ["x"]}, "STRING_VALUE can not be converted to a Structure"),
        ("DescribeKey", {"KeyId": {"a": 1}}, "Start of structure or map found where not expected."),
        ("DescribeKey", {"KeyId": ["a"]}, "Start of list found where not expected."),
        ("CreateKey", {"Tags": {}}, "Start of structure or map found where not expected."),
        (
            "Encrypt",
            {"EncryptionContext": {"a": 1}},
            "NUMBER_VALUE can not be converted to a String",
        ),
        ("Encrypt", {"EncryptionContext": []}, "Start of list found where not expected."),
    ],
)
def test_wrong_json_types_are_serialization_errors(
    wire: WireModel, operation: str, body: object, message: str
) -> None:
    assert serialization_message(wire, operation, body) == message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "Start of list found where not expected."),
        ("KeyId", "STRING_VALUE can not be converted to a Structure"),
        (42, "NUMBER_VALUE can not be converted to a Structure"),
    ],
)
def test_a_body_that_is_not_an_object_is_a_serialization_error(
    wire: WireModel, body: object, message: str
) -> None:
    assert serialization_message(wire, "DescribeKey", body) == message


@pytest.mark.parametrize("blob", ["not base64!", "abcde", "YW=J"])
def test_invalid_base64_is_a_serialization_error(wire: WireModel, blob: str) -> None:
    assert serialization_message(wire, "Decrypt", {"CiphertextBlob": blob}) == (
        "Value at 'ciphertextBlob' is not valid base64."
    )


def test_type_errors_win_over_constraint_errors(wire: WireModel) -> None:
    body = {"KeyId": "", "Plaintext": 1}

    assert serialization_message(wire, "Encrypt", body) == (
        "NUMBER_VALUE can not be converted to a Blob"
    )


# --- operations ----------------------------------------------------------------------


def test_has_operation(wire: WireModel) -> None:
    assert wire.has_operation("Encrypt")
    assert not wire.has_operation("Explode")


def test_unknown_operation_is_rejected(wire: WireModel) -> None:
    with pytest.raises(UnknownOperationError):
        wire.parse_request("Explode", {})


def test_the_model_is_loaded_once() -> None:
    assert load_kms_model() is load_kms_model()


# --- responses -----------------------------------------------------------------------


def test_response_blobs_are_base64(wire: WireModel) -> None:
    result = {"CiphertextBlob": b"\x01\x02", "KeyId": KEY, "EncryptionAlgorithm": None}

    out = wire.serialize_response("Encrypt", result)

    assert out == {"CiphertextBlob": "AQI=", "KeyId": KEY}


def test_response_drops_members_outside_the_output_shape(wire: WireModel) -> None:
    result = {"KeyId": KEY, "Plaintext": b"k", "material": b"secret", "_version": 3}

    assert wire.serialize_response("Decrypt", result) == {"KeyId": KEY, "Plaintext": "aw=="}


def test_response_timestamps_are_epoch_seconds(wire: WireModel) -> None:
    metadata = {
        "KeyId": KEY,
        "CreationDate": datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC),
        "DeletionDate": datetime(2024, 1, 2, 3, 4, 5),  # naive: taken as UTC
        "ValidTo": 1700000000.25,
        "Description": None,
        "Enabled": True,
        "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        "Internal": "leak",
    }

    out = wire.serialize_response("DescribeKey", {"KeyMetadata": metadata})

    assert out == {
        "KeyMetadata": {
            "KeyId": KEY,
            "CreationDate": 1704164645.5,
            "DeletionDate": 1704164645.0,
            "ValidTo": 1700000000.25,
            "Enabled": True,
            "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        }
    }


def test_response_lists_of_structures_are_walked(wire: WireModel) -> None:
    aliases = [{"AliasName": "alias/a", "TargetKeyId": KEY, "Secret": 1}, None]

    out = wire.serialize_response("ListAliases", {"Aliases": aliases, "Truncated": False})

    assert out == {"Aliases": [{"AliasName": "alias/a", "TargetKeyId": KEY}], "Truncated": False}


def test_operations_without_output_serialize_to_an_empty_object(wire: WireModel) -> None:
    assert wire.serialize_response("CreateAlias", {"anything": 1}) == {}


def test_botocore_reads_what_we_write(wire: WireModel) -> None:
    created = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    result = {"KeyMetadata": {"KeyId": KEY, "CreationDate": created, "Enabled": True}}
    body = orjson.dumps(wire.serialize_response("DescribeKey", result))
    model = botocore.session.get_session().get_service_model("kms")

    parsed = create_parser("json").parse(
        {"status_code": 200, "headers": {}, "body": body},
        model.operation_model("DescribeKey").output_shape,
    )

    assert parsed["KeyMetadata"]["CreationDate"] == created
    assert parsed["KeyMetadata"]["KeyId"] == KEY
