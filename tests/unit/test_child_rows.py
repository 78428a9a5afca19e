"""ExplodeChildRows: a kept event's arrays out to one typed output per child table."""

import json
import typing

import apache_beam as beam
import pytest
from apache_beam import coders
from apache_beam.testing.util import assert_that, equal_to

from transforms.child_rows import ExplodeChildRows

pytestmark = pytest.mark.unit


class _Main(typing.NamedTuple):
    event_id: str
    payload: str


class _TagRow(typing.NamedTuple):
    event_id: str
    item_index: int
    tag: str


class _LinkRow(typing.NamedTuple):
    event_id: str
    item_index: int
    target: int
    run_id: str


coders.registry.register_coder(_TagRow, coders.RowCoder)
coders.registry.register_coder(_LinkRow, coders.RowCoder)


def _child_rows(event: dict, run_id: str) -> dict[str, list]:
    return {
        "tags": [_TagRow(event["id"], i, t) for i, t in enumerate(event["tags"])],
        "links": [_LinkRow(event["id"], i, n, run_id) for i, n in enumerate(event["links"])],
    }


def test_each_array_item_becomes_a_row_of_its_table(pipeline):
    # e1: tags x, y and link 1; e2: no tag, links 2 and 3.  Hand-expanded: tags
    # (e1, 0, x), (e1, 1, y); links (e1, 0, 1), (e2, 0, 2), (e2, 1, 3), each run r1.
    events = [
        {"id": "e1", "tags": ["x", "y"], "links": [1]},
        {"id": "e2", "tags": [], "links": [2, 3]},
    ]
    rows = [_Main(e["id"], json.dumps(e)) for e in events]
    with pipeline as p:
        out = (
            p
            | beam.Create(rows)
            | ExplodeChildRows(_child_rows, {"tags": _TagRow, "links": _LinkRow}, "r1")
        )
        assert set(out) == {"tags", "links"}
        assert (out["tags"].element_type, out["links"].element_type) == (_TagRow, _LinkRow)
        assert_that(
            out["tags"],
            equal_to([_TagRow("e1", 0, "x"), _TagRow("e1", 1, "y")]),
            label="CheckTags",
        )
        assert_that(
            out["links"],
            equal_to(
                [_LinkRow("e1", 0, 1, "r1"), _LinkRow("e2", 0, 2, "r1"), _LinkRow("e2", 1, 3, "r1")]
            ),
            label="CheckLinks",
        )


def test_no_child_table_is_refused():
    with pytest.raises(ValueError, match="at least one child table"):
        ExplodeChildRows(_child_rows, {}, "r1")
