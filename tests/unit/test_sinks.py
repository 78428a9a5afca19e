"""Sinks: pyarrow schemas and tables of row types, Parquet writes, the JDBC target."""

import typing

import pyarrow as pa
import pytest

from beam_pipeline import driver
from beam_pipeline.settings import MissingPasswordError, StackSettings
from schemas.records import DeadLetter
from transforms.sinks import JdbcTarget, arrow_schema, rows_to_table

pytestmark = pytest.mark.unit


def test_arrow_schema_follows_the_row_type():
    schema = arrow_schema(DeadLetter)
    assert schema.names == list(DeadLetter._fields)
    assert schema.field("payload").type == pa.binary() and schema.field("payload").nullable
    offset = schema.field("kafka_offset")
    assert offset.type == pa.int64() and not offset.nullable


def test_arrow_schema_refuses_an_unknown_type():
    class Row(typing.NamedTuple):
        when: object

    with pytest.raises(TypeError, match="Row.when"):
        arrow_schema(Row)


def test_rows_become_the_table_arrow_builds_from_their_dicts():
    class Row(typing.NamedTuple):
        name: str
        count: int
        ratio: typing.Optional[float]
        flag: bool
        raw: typing.Optional[bytes]

    rows = [Row("a", 1, 0.5, True, b"\x00"), Row("é", -(2**63), None, False, None)]
    schema = arrow_schema(Row)
    table = rows_to_table(rows, schema)
    assert table.equals(pa.Table.from_pylist([r._asdict() for r in rows], schema=schema))
    assert table.to_pylist()[1] == rows[1]._asdict()
    assert rows_to_table([], schema).num_rows == 0
    with pytest.raises(pa.ArrowInvalid):  # a value of the wrong type is refused, not cast
        rows_to_table([Row("a", "not a number", None, True, None)], schema)


@pytest.mark.parametrize(
    "reference",
    [{}, {"password_file": "/run/secrets/pg", "password_env": "PGPASSWORD"}],
)
def test_target_names_exactly_one_place_for_the_password(reference):
    with pytest.raises(ValueError, match="exactly one of password_file and password_env"):
        JdbcTarget("jdbc:postgresql://h/db", "u", **reference)


def test_password_reference_names_the_variable_or_the_file_never_the_value(tmp_path):
    settings = StackSettings.from_env({"BEAMLINE_HOME": str(tmp_path)})
    with pytest.raises(MissingPasswordError, match="BEAMLINE_PG_WRITER_PASSWORD"):
        settings.writer_password_reference({})
    assert settings.writer_password_reference({"BEAMLINE_PG_WRITER_PASSWORD": "s3cret"}) == {
        "password_env": "BEAMLINE_PG_WRITER_PASSWORD"
    }
    settings.writer_password_file.parent.mkdir()
    settings.writer_password_file.write_text("s3cret\n")
    assert settings.writer_password_reference({}) == {
        "password_file": str(settings.writer_password_file)
    }


def test_the_pipeline_writes_as_the_writer_role_not_the_owner(tmp_path, monkeypatch):
    monkeypatch.delenv("BEAMLINE_PG_WRITER_PASSWORD", raising=False)
    settings = StackSettings.from_env({"BEAMLINE_HOME": str(tmp_path), "BEAMLINE_PG_WRITER": "w1"})
    settings.writer_password_file.parent.mkdir()
    settings.writer_password_file.write_text("s3cret")
    target = driver.jdbc_target(settings)
    assert (target.username, target.password_file) == ("w1", str(settings.writer_password_file))


# --- Parquet writes, read back ------------------------------------------------------

HOUR_MS = 3_600_000
T0 = 1_795_323_600_000  # 2026-11-22T05:00:00Z


def _customer_rows(times_ms):
    from datasets.customers import DATASET as CUSTOMERS
    from schemas.records import KafkaRecord
    from tests.samples import customer

    return [
        CUSTOMERS.to_row(
            KafkaRecord("customers", 0, n, ms, None, b"{}"),
            customer(customer_id=f"c-{n}"),
            ms,
            "r1",
        )
        for n, ms in enumerate(times_ms)
    ]


def _read_back(folder) -> dict[str, list[str]]:
    """Relative folder of each file → the customer ids in it (files of one folder merged)."""
    import pyarrow.parquet as pq

    found: dict[str, list[str]] = {}
    for f in sorted(folder.rglob("*.parquet")):
        ids = pq.read_table(f, partitioning=None).column("customer_id").to_pylist()
        found.setdefault(str(f.parent.relative_to(folder)), []).extend(ids)
    return {k: sorted(v) for k, v in found.items()}


def test_a_bounded_write_reads_back_every_row(pipeline, tmp_path):
    import apache_beam as beam

    from datasets.customers import CustomersRow
    from transforms.sinks import WriteParquetFiles

    rows = _customer_rows([T0, T0 + 1, T0 + HOUR_MS])
    with pipeline as p:
        _ = p | beam.Create(rows) | WriteParquetFiles(f"{tmp_path}/customers/part", CustomersRow)
    assert _read_back(tmp_path / "customers") == {".": ["c-0", "c-1", "c-2"]}
    (f,) = (tmp_path / "customers").glob("*.parquet")
    assert f.name == "part-00000-of-00001.parquet"


def test_a_partitioned_bounded_write_puts_each_row_in_its_hour_folder(pipeline, tmp_path):
    import apache_beam as beam

    from datasets.customers import DATASET as CUSTOMERS
    from datasets.customers import CustomersRow
    from transforms.sinks import WriteParquetFiles

    # 05:00 and 05:59:59.999 in one hour; 06:00 the next; a day later, another day.
    rows = _customer_rows([T0, T0 + HOUR_MS - 1, T0 + HOUR_MS, T0 + 24 * HOUR_MS])
    with pipeline as p:
        _ = (
            p
            | beam.Create(rows)
            | WriteParquetFiles(
                f"{tmp_path}/customers/part", CustomersRow, partition_of=CUSTOMERS.partition_of
            )
        )
    assert _read_back(tmp_path / "customers") == {
        "year=2026/month=11/day=22/hour=05": ["c-0", "c-1"],
        "year=2026/month=11/day=22/hour=06": ["c-2"],
        "year=2026/month=11/day=23/hour=05": ["c-3"],
    }
    # The folders are what Hive-style readers take them for.
    import pyarrow.dataset as ds

    table = ds.dataset(tmp_path / "customers", partitioning="hive").to_table()
    hours, ids = table.column("hour").to_pylist(), table.column("customer_id").to_pylist()
    assert sorted(zip(hours, ids, strict=True)) == [(5, "c-0"), (5, "c-1"), (5, "c-3"), (6, "c-2")]


def test_a_streaming_write_files_every_pane_once_per_partition(stream_pipeline, tmp_path):
    from apache_beam.testing.test_stream import TestStream
    from apache_beam.transforms.window import TimestampedValue

    from datasets.customers import DATASET as CUSTOMERS
    from datasets.customers import CustomersRow
    from transforms.sinks import WriteParquetFiles

    # Rows are filed by arrival time, so which file holds which row depends on the
    # clock; each row must be in exactly one file, in its event hour's folder.
    rows = _customer_rows([T0, T0 + HOUR_MS, T0 + 2])
    stream = (
        TestStream()
        .add_elements([TimestampedValue(rows[0], T0 / 1000), TimestampedValue(rows[1], T0 / 1000)])
        .add_elements([TimestampedValue(rows[2], T0 / 1000)])
        .advance_watermark_to_infinity()
    )
    with stream_pipeline as p:
        _ = (
            p
            | stream
            | WriteParquetFiles(
                f"{tmp_path}/customers/part", CustomersRow, 60, partition_of=CUSTOMERS.partition_of
            )
        )
    assert _read_back(tmp_path / "customers") == {
        "year=2026/month=11/day=22/hour=05": ["c-0", "c-2"],
        "year=2026/month=11/day=22/hour=06": ["c-1"],
    }
    names = [f.name for f in (tmp_path / "customers").rglob("*.parquet")]
    assert all(n.startswith("part-") and "-pane" in n for n in names), names
    assert not list((tmp_path / "customers").rglob("*.tmp"))
