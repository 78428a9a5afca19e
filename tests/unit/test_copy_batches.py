"""The batched PostgreSQL writer's Python side: rows as COPY's CSV, batches per bundle.

The CSV is read back by PostgreSQL in tests/integration/test_copy_merge.py; here its
text is checked against what ``COPY … WITH (FORMAT csv)`` needs: NULL an unquoted
empty field, every value quoted otherwise.
"""

import typing

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import window

from schemas.records import DeadLetter
from transforms.sinks import CopyBatch, _ToCopyBatchesFn, csv_rows

pytestmark = pytest.mark.unit


class Row(typing.NamedTuple):
    text: typing.Optional[str]
    number: typing.Optional[int]
    ratio: typing.Optional[float]
    flag: typing.Optional[bool]
    raw: typing.Optional[bytes]


def _lines(rows):
    return csv_rows(rows, Row).decode().split("\n")


def test_null_is_an_empty_field_and_the_empty_string_is_quoted():
    assert _lines([Row(None, None, None, None, None), Row("", 0, 0.0, False, b"")]) == [
        ",,,,",
        '"","0","0","false","\\x"',
        "",
    ]


def test_quotes_are_doubled_and_newlines_and_end_markers_stay_inside_quotes():
    text = 'say "hi"\nthen\r\n\\.\nend, done'
    (line,) = csv_rows([Row(text, None, None, None, None)], Row).decode().split(",,,,\n")[:1]
    assert line == '"say ""hi""\nthen\r\n\\.\nend, done"'
    # A lone \. would end COPY's input: quoted, it is data.
    assert _lines([Row("\\.", None, None, None, None)])[0] == '"\\.",,,,'


def test_bytes_go_as_bytea_hex_and_text_as_utf8():
    lines = _lines([Row("ünï 😀", 1, None, True, b'\x00\xff\n"')])
    assert lines[0] == '"ünï 😀","1",,"true","\\x00ff0a22"'


def test_numbers_keep_every_digit():
    big, small = 2**63 - 1, -(2**63)
    ratios = [0.1, 1 / 3, -0.0, 5e-324, 1.7976931348623157e308, 1e16, 2.5]
    rows = [Row(None, big, r, None, None) for r in ratios] + [Row(None, small, None, None, None)]
    lines = _lines(rows)
    for line, r in zip(lines[: len(ratios)], ratios, strict=True):
        number, ratio = line.split(",")[1:3]
        assert int(number.strip('"')) == big
        assert float(ratio.strip('"')) == r and str(float(ratio.strip('"'))) == str(r)
    assert lines[len(ratios)].split(",")[1] == f'"{small}"'


def test_json_text_is_quoted_like_any_string():
    payload = '{"a": "x\\"y", "b": [1, 2.5, null], "c": "ü"}'
    (line, _) = _lines([Row(payload, None, None, None, None)])
    assert line == '"{""a"": ""x\\""y"", ""b"": [1, 2.5, null], ""c"": ""ü""}",,,,'


def test_a_dead_letter_renders_every_field_in_order():
    letter = DeadLetter(
        "decode", "not_utf8", "bad", b"\xc3", "\\xc3", "t", 2, 7, 1_000, None, "run", "v1", "ds"
    )
    (line, _) = csv_rows([letter], DeadLetter).decode().split("\n")
    assert line == ('"decode","not_utf8","bad","\\xc3","\\xc3","t","2","7","1000",,"run","v1","ds"')


def test_no_rows_is_no_text():
    assert csv_rows([], Row) == b""


def _batches(pipeline, rows, label="", max_rows=5_000, max_bytes=8 << 20):
    return (
        pipeline
        | f"Create{label}" >> beam.Create(rows, reshuffle=False)
        | f"Stamp{label}" >> beam.Map(lambda r: window.TimestampedValue(r, r.number))
        | f"Batch{label}"
        >> beam.ParDo(_ToCopyBatchesFn("t", Row, max_rows, max_bytes)).with_output_types(CopyBatch)
    )


def test_a_bundle_becomes_one_batch_in_the_global_window_at_its_earliest_row(pipeline):
    rows = [Row(f"r{i}", 100 - i, None, None, None) for i in range(10)]
    with pipeline:
        batches = _batches(pipeline, rows)
        assert_that(
            batches | beam.Map(lambda b: (b.table, b.rows, b.csv)),
            equal_to([("t", 10, csv_rows(rows, Row))]),
        )
        stamped = batches | "Stamped" >> beam.Map(
            lambda b, ts=beam.DoFn.TimestampParam, w=beam.DoFn.WindowParam: (ts.micros, w)
        )
        assert_that(stamped, equal_to([(91 * 1_000_000, window.GlobalWindow())]), label="stamped")


def test_batches_are_cut_at_the_row_cap_and_the_byte_cap_and_lose_no_row(pipeline):
    rows = [Row("x" * 100, i, None, None, b"\x01" * 50) for i in range(25)]
    with pipeline:
        by_rows = _batches(pipeline, rows, "A", max_rows=10)
        assert_that(by_rows | "RowsA" >> beam.Map(lambda b: b.rows), equal_to([10, 10, 5]))
        # 100 characters, 50 bytes (100 hex digits) and 4 a field: 220 a row.
        by_bytes = _batches(pipeline, rows, "B", max_bytes=1_000)
        assert_that(
            by_bytes | "RowsB" >> beam.Map(lambda b: b.rows), equal_to([5] * 5), label="bytes"
        )
        lines = (
            by_rows
            | "Csv" >> beam.Map(lambda b: b.csv)
            | beam.combiners.ToList()
            | beam.Map(lambda parts: sorted(b"".join(parts).split(b"\n")))
        )
        assert_that(lines, equal_to([sorted(csv_rows(rows, Row).split(b"\n"))]), label="all")
