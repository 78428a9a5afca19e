"""compile_schema: the check answers as jsonschema does, and refuses what it does not cover."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator
from jsonschema.exceptions import SchemaError

from transforms.schema_check import UnsupportedSchemaError, compile_schema

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "schema, error, message",
    [
        (
            {"type": "object", "patternProperties": {"^a": {}}},
            UnsupportedSchemaError,
            "patternProperties",
        ),
        ({"items": [{"type": "string"}]}, UnsupportedSchemaError, "items"),
        ({"enum": ["a", 1]}, UnsupportedSchemaError, "enums of strings \\(and null\\)"),
        (
            {"additionalProperties": {"type": "string"}},
            UnsupportedSchemaError,
            "additionalProperties",
        ),
        ({"type": "text"}, SchemaError, "text"),
    ],
)
def test_a_schema_it_does_not_cover_is_refused_when_compiling(schema, error, message):
    with pytest.raises(error, match=message):
        compile_schema(schema)


# Small schemas over the supported keywords, to check the compiler beyond the contract.
_KEYS = st.sampled_from(["a", "b", "c"])
_TYPES = st.sampled_from(["string", "integer", "number", "object", "array", "boolean", "null"])
_BOUND = st.integers(-3, 3) | st.sampled_from([0.5, -0.5, 2.0])
_LEAF_SCHEMAS = st.booleans() | st.fixed_dictionaries(
    {},
    optional={
        "type": _TYPES | st.lists(_TYPES, min_size=1, max_size=3, unique=True),
        "enum": st.lists(st.sampled_from(["a", "b", "", "1", None]), max_size=3),
        "minimum": _BOUND,
        "maximum": _BOUND,
        "minLength": st.integers(0, 3),
        "pattern": st.sampled_from(["^a", "[0-9]$", "^$", "b+", "^a?b$"]),
    },
)
_SCHEMAS = st.recursive(
    _LEAF_SCHEMAS,
    lambda children: st.fixed_dictionaries(
        {},
        optional={
            "type": _TYPES | st.lists(_TYPES, min_size=1, max_size=3, unique=True),
            "properties": st.dictionaries(_KEYS, children, max_size=3),
            "required": st.lists(_KEYS, max_size=3, unique=True),
            "additionalProperties": st.booleans(),
            "items": children,
            "minimum": _BOUND,
        },
    ),
    max_leaves=6,
)
_SMALL_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-4, 4)
    | st.sampled_from([0.5, -0.5, 1.0, 2.0, 3.5])
    | st.sampled_from(["", "a", "b", "ab", "1", "a1", "abc", "7\n"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_KEYS, children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=1000, deadline=None)
@given(_SCHEMAS, _SMALL_JSON)
def test_compiled_check_agrees_on_small_schemas(schema, instance):
    assert compile_schema(schema)(instance) is Draft7Validator(schema).is_valid(instance)
