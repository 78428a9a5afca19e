"""The contracts and what derives from them: one declaration, forms that agree."""

import dataclasses
import importlib
import io
import json

import fastavro
import jsonschema
import pytest

import datasets
from datasets import customer_events, customers
from schemas.contract import Aggregate, Contract, DedupPolicy
from schemas.ddl import create_statement, expected_columns
from schemas.fields import Column, Computed, ContractError, Field
from schemas.records import KafkaRecord
from schemas.tables import DatasetTables
from tests.samples import customer
from tools.event_producer import generate
from transforms.schema_check import compile_schema
from transforms.sinks import arrow_schema

pytestmark = pytest.mark.unit

CONTRACTS = [customer_events.CONTRACT, customers.CONTRACT]
START_MS = 1_795_323_600_000


def _events(n=40):
    batch = generate(n, "c1", 8, START_MS)
    return [json.loads(value) for _, value, _ in batch.messages]


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.name)
def test_every_derived_form_is_valid_for_its_tool(contract):
    schema = contract.json_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft202012Validator.check_schema(schema)
    compile_schema(schema)  # the validator's fast path supports every keyword used
    fastavro.parse_schema(contract.avro_schema())
    for table in DatasetTables.of(contract).all():
        arrow_schema(table.row_type)
        assert create_statement(table).startswith(f"CREATE TABLE IF NOT EXISTS {table.name} (")


@pytest.mark.parametrize("name", datasets.names())
def test_every_row_type_is_built_once_and_bound_in_its_dataset_module(name):
    # Beam pickles rows and the callables holding their types by reference.
    contract = datasets.get(name).contract
    module = importlib.import_module(contract.module)
    children = tuple(contract.child_row_types().values())
    for row_type in (contract.row_type(), *children, contract.aggregate_row_type()):
        assert getattr(module, row_type.__name__) is row_type
    assert contract.row_type() is contract.row_type()


def test_a_field_added_to_the_contract_appears_in_every_form():
    base = customer_events.CONTRACT
    added = dataclasses.replace(
        base,
        name="customer_events_v2",
        table="customer_events_v2",
        fields=base.fields + (Field("referrer", "string", required=False, default="direct"),),
        columns=base.columns + (Column("referrer", "referrer"),),
        children=(),
    )
    assert "referrer" in added.json_schema()["properties"]
    assert "referrer" not in added.json_schema()["required"]
    avro = {f["name"]: f for f in added.avro_schema()["fields"]}
    assert avro["referrer"] == {"name": "referrer", "type": ["null", "string"], "default": None}
    row_type = added.row_type()
    assert "referrer" in row_type._fields
    assert "referrer" in arrow_schema(row_type).names
    main = DatasetTables.of(added).main
    # Its default fills it whenever it is missing or null: never null in a new table.
    assert any(c.name == "referrer" and not c.nullable for c in expected_columns(main))
    assert "    referrer text NOT NULL,\n" in create_statement(main)


def test_producer_events_round_trip_through_the_avro_schema():
    schema = fastavro.parse_schema(customer_events.CONTRACT.avro_schema())
    for event in _events():
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, schema, event)
        buffer.seek(0)
        assert fastavro.schemaless_reader(buffer, schema) == event
        assert buffer.tell() == len(buffer.getvalue())


def test_enums_are_avro_strings_because_avro_symbols_cannot_hold_spaces():
    fields = {f["name"]: f for f in customer_events.CONTRACT.avro_schema()["fields"]}
    assert fields["event_type"]["type"] == "string"
    content = fields["content"]["type"]
    assert {f["name"]: f["type"] for f in content["fields"]}["episode"] == ["null", "long"]


def test_the_row_builder_normalises_timestamps_to_utc_and_keeps_the_payload():
    event = _events(1)[0]
    utc = event["timestamp"]
    event["timestamp"] = utc.replace("Z", "+00:00")  # same instant, other spelling
    event["user_action"] = [
        dict(a, timestamp=a["timestamp"].replace("Z", "+00:00")) for a in event["user_action"]
    ]
    record = KafkaRecord("customer_events", 2, 17, 5, b"k", b"{}")
    row = customer_events.to_customer_event(record, event, 123, "r1")
    payload = json.loads(row.payload)
    assert payload["timestamp"] == utc
    assert all(a["timestamp"].endswith("Z") for a in payload["user_action"])
    assert (row.event_time_ms, row.kafka_partition, row.kafka_offset, row.run_id) == (
        123,
        2,
        17,
        "r1",
    )
    assert (row.device_type, row.country) == (event["device"]["type"], event["location"]["country"])


def test_child_rows_fan_out_each_array_with_item_index_and_ms_timestamps():
    event = next(e for e in _events() if e["user_action"] and e["recommendations"])
    builder = customer_events.to_customer_event
    rows = builder.child_rows(builder.normalise(event), "r1")
    assert len(rows["customer_event_actions"]) == len(event["user_action"])
    assert len(rows["customer_event_recommendations"]) == len(event["recommendations"])
    first = rows["customer_event_actions"][0]
    assert isinstance(first, customer_events.CustomerEventActionsRow)
    assert (first.event_id, first.item_index, first.run_id) == (event["event_id"], 0, "r1")
    assert first.timestamp_ms % 1000 == int(event["user_action"][0]["timestamp"][20:23])


def test_customers_keep_the_latest_by_updated_at_and_compute_total_charges():
    contract = customers.CONTRACT
    assert (contract.dedup.kind, contract.dedup.order_by) == ("keep_latest", "updated_at")
    validator = jsonschema.Draft7Validator(contract.json_schema())
    assert validator.is_valid(customer())  # total_charges may be absent
    assert not validator.is_valid(customer(total_charges="12"))
    normalised = customers.to_customer_row.normalise(customer())
    # 70.35 × 12 months = 844.2; the time is rewritten in UTC (06:00+01:00 = 05:00Z).
    assert normalised["total_charges"] == pytest.approx(844.2)
    assert normalised["updated_at"] == "2026-11-22T05:00:00.000Z"
    given = customers.to_customer_row.normalise(customer(total_charges=900.0))
    assert given["total_charges"] == 900.0  # present: kept, not recomputed
    row = customers.to_customer_row(
        KafkaRecord("customers", 0, 1, 2, None, b""), customer(), 9, "r"
    )
    assert (row.total_charges, row.updated_at_ms) == (pytest.approx(844.2), 9)


def test_customers_fill_missing_and_null_values_with_their_documented_defaults():
    validator = jsonschema.Draft7Validator(customers.CONTRACT.json_schema())
    sparse = customer(partner=None, internet_service=None)
    del sparse["senior_citizen"], sparse["phone_service"]
    assert validator.is_valid(sparse)
    assert not validator.is_valid(customer(internet_service="Cable"))
    row = customers.to_customer_row(KafkaRecord("customers", 0, 1, 2, None, b""), sparse, 9, "r")
    assert (row.senior_citizen, row.partner, row.phone_service) == (False, False, False)
    assert row.internet_service == "No"
    assert row.dependents is False  # given: kept
    assert '"internet_service":"No"' in row.payload  # the payload is the normalised event
    # Never null in a row, so the rows, Parquet and the table say so.
    assert customers.CustomersRow.__annotations__["internet_service"] is str


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"fields": (Field("a", "string"), Field("a", "string"))}, "declared twice"),
        ({"columns": (Column("event_id", "event_id"), Column("at", "at"))}, "must end in _ms"),
        ({"columns": (Column("event_id", "event_id"), Column("run_id", "a"))}, "reserved"),
        ({"event_time_field": "a"}, "event-time field must be a timestamp"),
        ({"columns": (Column("a", "a"),)}, "the id field must be a column"),
        ({"computed": (Computed("a", "a", "*", "nope"),)}, "no field 'nope'"),
    ],
)
def test_a_contract_that_contradicts_itself_is_refused(changes, message):
    spec = {
        "name": "t",
        "title": "t",
        "module": __name__,
        "topic": "t",
        "table": "t",
        "fields": (Field("event_id", "string"), Field("a", "string"), Field("at", "timestamp")),
        "id_field": "event_id",
        "event_time_field": "at",
        "columns": (Column("event_id", "event_id"),),
    }
    with pytest.raises(ContractError, match=message):
        Contract(**{**spec, **changes})


@pytest.mark.parametrize(
    "aggregate, message",
    [
        (Aggregate("g", keys=()), "at least one key"),
        (Aggregate("g", keys=("nope",)), "nope is not a column"),
        (Aggregate("g", keys=("maybe",)), "key maybe must be a column that is never null"),
        (Aggregate("g", keys=("a",), means=("a",)), "mean a must be a numeric column never"),
        (Aggregate("g", keys=("a",), means=("maybe_n",)), "mean maybe_n must be a numeric"),
        (Aggregate("g", keys=("a", "n"), rollups=("event_id",)), "a rollup is one of"),
        (Aggregate("g", keys=("a",), rollups=("a",)), "a rollup is one of two or more keys"),
        (Aggregate("g", keys=("a",), count_column="a"), "column names collide"),
        (Aggregate("g", keys=("a",), means=("n",), count_column="sum_n"), "collide"),
    ],
)
def test_an_aggregate_that_cannot_be_a_table_is_refused(aggregate, message):
    fields = (
        Field("event_id", "string"),
        Field("a", "string"),
        Field("n", "number"),
        Field("maybe", "string", nullable=True),
        Field("maybe_n", "number", required=False),
        Field("at", "timestamp"),
    )
    columns = tuple(Column(f.name, f.name) for f in fields if f.name != "at")
    spec = dict(
        name="t", title="t", module=__name__, topic="t", table="t", fields=fields,
        id_field="event_id", event_time_field="at", columns=columns,
    )  # fmt: skip
    Contract(**spec, aggregates=(Aggregate("g", keys=("a", "n"), means=("n",), rollups=("a",)),))
    with pytest.raises(ContractError, match=message):
        Contract(**spec, aggregates=(aggregate,))
    with pytest.raises(ContractError, match="exactly one aggregate"):
        Contract(**spec, aggregates=(aggregate, aggregate))


def test_dedup_policies_are_checked():
    with pytest.raises(ContractError):
        DedupPolicy("keep_latest")
    with pytest.raises(ContractError):
        DedupPolicy("drop_later_copies", order_by="x")


def test_the_events_dataset_fills_its_source_and_computes_revenue():
    from datasets.events import DATASET as EVENTS

    base = {
        "event_id": "e-1",
        "user_id": "u-1",
        "run_id": "r",
        "event_type": "purchase",
        "timestamp": "2026-11-22T06:00:00+01:00",
        "session_id": "s-1",
        "page": "/checkout",
        "amount": 10.5,
        "quantity": 3,
    }
    record = KafkaRecord("events", 0, 7, 1, b"u-1", b"{}")
    purchase = EVENTS.to_row(record, dict(base), 1_795_323_600_000, "r")
    assert (purchase.source, purchase.revenue) == ("web", 31.5)  # 10.5 × 3, default source
    view = EVENTS.to_row(
        record,
        {**base, "event_type": "page_view", "amount": None, "quantity": 0, "source": "ios"},
        1,
        "r",
    )
    assert (view.source, view.revenue) == ("ios", None)
    assert json.loads(purchase.payload)["timestamp"] == "2026-11-22T05:00:00.000Z"
